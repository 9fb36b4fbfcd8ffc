//! Grants (one authorization and its refresh-token family) and refresh tokens, as records.

use crate::id::{ClientId, Subject};
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};

/// Where a grant is: enough to delete it and the pointer that lists it under its client
/// without reading it first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GrantRef {
    pub tenant: TenantId,
    #[serde(default)]
    pub sub: Subject,
    #[serde(default)]
    pub client_id: ClientId,
    pub gid: String,
}

/// The user took an app back at `at` (the account page's Revoke).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppRevoked {
    pub at: i64,
}

/// One authorization: what a code exchange created. Its access tokens carry `gid`; its refresh
/// tokens form one rotation family. Deleting it ends all of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub gid: String,
    pub tenant: TenantId,
    pub sub: Subject,
    pub client_id: ClientId,
    pub scope: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub last_used: i64,
    /// The absolute end of the family.
    pub expires_at: i64,
    /// The user's session epoch when the grant was made (code redemption): the console's
    /// grants count only under it, so a new password or role ends an administrator's console
    /// session (`admin::admin_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_epoch: Option<u64>,
    /// The user's grant epoch as they were authenticated for it (`User::grant_epoch`): the
    /// grant stands only while it is the user's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grant_epoch: u64,
    /// The RFC 8707 resources the authorization request named: every token of the grant is for
    /// one of them (none: the tenant's resources and default audience, as for any client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

impl Grant {
    pub fn reference(&self) -> GrantRef {
        GrantRef {
            tenant: self.tenant.clone(),
            sub: self.sub.clone(),
            client_id: self.client_id.clone(),
            gid: self.gid.clone(),
        }
    }
}

/// A refresh token, stored under its hash. Once used it stays, `rotated`, until it would have
/// expired, so that a second use is recognised as reuse.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshToken {
    pub gid: String,
    pub tenant: TenantId,
    pub client_id: ClientId,
    pub sub: Subject,
    pub scope: String,
    pub rotated: bool,
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was rotated (0: not yet).
    #[serde(default)]
    pub rotated_at: i64,
    /// The response its rotation gave, sealed under this token itself (`secret::seal_for`):
    /// within the reuse grace, presenting it again returns that same pair (concurrent
    /// refreshes by one client), and no reader of the store can open it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// RFC 9449 §5: the DPoP key a public client's refresh token is bound to; it is used only
    /// with a proof of that key. (A confidential client's is not bound: its authentication
    /// already ties the token to it.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<crate::dpop::Jkt>,
}

impl RefreshToken {
    /// The grant (family) this token belongs to.
    pub fn grant(&self) -> GrantRef {
        GrantRef {
            tenant: self.tenant.clone(),
            sub: self.sub.clone(),
            client_id: self.client_id.clone(),
            gid: self.gid.clone(),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
