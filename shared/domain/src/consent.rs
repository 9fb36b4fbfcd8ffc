//! Consents (the scopes a user granted a client) and delegations (an agent acting for a user
//! through an app), as records.

use crate::id::{ClientId, Subject};
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};

/// Who consented to a client: the pointer that lists a consent under its client.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsentRef {
    pub tenant: TenantId,
    pub sub: Subject,
}

/// The scopes a user granted a client.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consent {
    pub tenant: TenantId,
    pub sub: Subject,
    pub client_id: ClientId,
    pub scope: String,
    pub granted_at: i64,
    pub updated_at: i64,
    /// The client's consent epoch this consent was given under; it counts only while the
    /// client is still at that epoch.
    #[serde(default)]
    pub client_epoch: u64,
    /// The RFC 8707 resources it was given for (`None`: given without naming any, so for any
    /// of the tenant's; see `domain::authorize::resources_covered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// The user's grant epoch it was given under (`User::grant_epoch`): it counts only while
    /// it is the user's, so "sign out everywhere" ends it even if its cascade missed it, or an
    /// approval in flight wrote it after.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub user_epoch: u64,
}

impl Consent {
    /// Whether it counts now, for `client` at its consent epoch and `user` at their grant
    /// epoch.
    pub fn counts(&self, client_epoch: u64, user_grant_epoch: u64) -> bool {
        self.client_epoch == client_epoch && self.user_epoch == user_grant_epoch
    }
}

/// An agent that acted for a user through an app (RFC 8693): what the account page lists, and
/// what every delegated token is checked against. `did` changes whenever the agent starts
/// acting anew (after a Stop and a fresh consent), so tokens from before a Stop stay dead.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delegation {
    pub tenant: TenantId,
    pub sub: Subject,
    pub app: ClientId,
    pub agent: ClientId,
    pub did: String,
    /// The user stopped this agent on the account page.
    #[serde(default)]
    pub stopped: bool,
    /// The version of the user's consent to the app that the Stop wrote (without `agent:act`):
    /// a consent with `agent:act` at another version means the user allowed agents again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_consent: Option<u64>,
    pub first_acted: i64,
    pub last_acted: i64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
