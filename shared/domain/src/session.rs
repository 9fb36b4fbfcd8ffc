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

/// A pushed authorization request (RFC 9126), validated when it was pushed, between the
/// client's push and the browser's arrival at the authorization endpoint. Stored under the hash
/// of its `request_uri`'s random part; used once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushedRequest {
    pub tenant: TenantId,
    /// The validated request; its `client_id` is the client that pushed it.
    pub request: AuthRequest,
    /// The tenant whose own issuer the request was pushed to (`None`: the shared issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_scope: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl PushedRequest {
    /// Whether the authorization request naming this pushed request may use it: only the
    /// client that pushed it (RFC 9126 §4), at the issuer it was pushed to.
    pub fn usable_by(&self, client_id: &str, issuer_scope: Option<&str>) -> bool {
        crate::secret::ct_eq_str(self.request.client_id.as_str(), client_id)
            && self.issuer_scope.as_deref() == issuer_scope
    }
}
