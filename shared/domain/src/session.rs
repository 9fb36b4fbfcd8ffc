//! Browser sessions and the authorization requests between the redirect to us and back, as
//! records.

use crate::id::Subject;
use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};

use crate::authorize::AuthRequest;

/// A logged-in browser, bound to one tenant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub tenant: TenantId,
    pub sub: Subject,
    pub auth_time: i64,
    /// The user's session epoch when the session began (see `User::session_epoch`).
    #[serde(default)]
    pub user_epoch: u64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization request between the redirect to us and the redirect back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingAuth {
    pub tenant: TenantId,
    pub request: AuthRequest,
    /// SHA-256 of the browser-binding cookie that started it.
    pub browser: String,
    /// The user logged in during this request (satisfies `prompt=login` and `max_age`).
    #[serde(default)]
    pub login_done: bool,
    /// The user shown the consent page (the consent answer must come from the same user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_for: Option<Subject>,
    /// The client's consent epoch when the request began: a consent given on this request's
    /// page is recorded under it (so an approval of a page shown before the client changed
    /// does not cover the change).
    #[serde(default)]
    pub client_epoch: u64,
    pub created_at: i64,
    pub expires_at: i64,
    /// The tenant whose own issuer (`/t/{tenant}`) the request came to (`None`: the shared
    /// issuer): the request continues, and its code is redeemed, only at that issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_scope: Option<String>,
}
