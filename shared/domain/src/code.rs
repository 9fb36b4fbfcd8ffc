//! Authorization codes as records: a code until it is redeemed, and what a redeemed one
//! issued (so that a replay can end it).

use crate::id::Subject;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};

use crate::authorize::AuthRequest;
use crate::grant::GrantRef;

/// An authorization code, stored under its hash until redeemed (or 60 s pass).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthCode {
    pub tenant: TenantId,
    pub sub: Subject,
    pub auth_time: i64,
    pub request: AuthRequest,
    pub issued_at: i64,
    /// The version of the user's "took this app back" marker when the code was issued (`None`:
    /// there was none): if the marker has changed by redemption, the user revoked the app
    /// after this code was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<u64>,
    /// The user's session epoch when the code was issued: a deactivation, reactivation,
    /// password or role change since then makes the code worthless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_epoch: Option<u64>,
    /// The user's grant epoch when the code was issued (`User::grant_epoch`): the grant it
    /// makes carries it (absent in codes issued before: the user's at redemption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_epoch: Option<u64>,
    /// The issuer the authorization request came to (see `PendingAuth::issuer_scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_scope: Option<String>,
}

/// What a redeemed code issued, kept so that a replay can revoke it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsedCode {
    #[serde(flatten)]
    pub grant: GrantRef,
    /// The PKCE challenge of the code's request: a replay ends the grant only when it carries
    /// the verifier (absent in markers written before: then any replay does, as it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}
