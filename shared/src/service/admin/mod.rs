//! The tenant admin API's operations (`/admin/v1`): every one confined to the caller's tenant
//! (another tenant's objects are "not found"), recorded in the audit trail under the caller's
//! name, and conditional on the version the caller read when it names one (`If-Match`).
//!
//! The HTTP layer (`http::admin`) only translates; the operator CLI calls the same functions
//! where it offers the same operation.

mod audit;
mod clients;
mod groups;
mod tenant;
mod users;

pub use audit::*;
pub use clients::*;
pub use groups::*;
pub use tenant::*;
pub use users::*;

use crate::domain::audit::AuditKind;
use crate::domain::client_update::{Changed, Changer, change_metadata};
use serde_json::{Map, Value};

use crate::domain::access::{MAX_LISTED, UserPolicy};
use crate::domain::client::{ADMIN_SCOPE, Client, Origin, RESERVED_SCOPE_PREFIX};
use crate::domain::id::{ClientId, Subject};
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::{DcrPolicy, SEED_SCOPES, Tenant, TenantId};
use crate::domain::user::{User, check_email};
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::service::App;
use crate::service::clients::{AdminFields, Registered};
use crate::service::tenants::AdminError;
use crate::service::users::SignOut;
use crate::store::StoreError;
use crate::store::repo::{AuditEvent, InitialAccessToken, Versioned};

/// The answer when a conditional write finds that the object moved on since the caller read it.
fn stale() -> AdminError {
    AdminError::Stale
}

fn check_version(expected: Option<u64>, current: u64) -> Result<(), AdminError> {
    match expected {
        Some(v) if v != current => Err(stale()),
        _ => Ok(()),
    }
}

/// Why a bearer token may not call the admin API (or open the console).
pub enum Refused {
    /// Not a live access token of ours (401 `invalid_token`).
    Invalid,
    /// Live, but not an admin's (403 `insufficient_scope`).
    Forbidden,
    /// The store or the key service failed (503).
    Backend(OAuthError),
    /// Live, but not presented as its binding requires (a DPoP-bound token as `Bearer`, or
    /// without a good proof of its key): 401 with the error's `DPoP` challenge.
    Presentation(OAuthError),
}

/// The administrator a bearer token speaks for ([`crate::domain::admin::admin_of`] on the
/// token as `tokens::live_claims` reads it, role and grant fresh on every use). Its `tenant` is
/// the only tenant it touches.
///
/// The token must be presented as its binding requires (`service::dpop::check_presentation`):
/// the admin API is a resource of this server like any other.
pub async fn caller(
    app: &App,
    token: &str,
    presented: crate::service::dpop::Presented<'_>,
    url: &str,
) -> Result<crate::domain::admin::Admin, Refused> {
    use crate::domain::admin::{NotAdmin, admin_of};
    let live = match crate::service::tokens::live_claims(app, token, None).await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(Refused::Invalid),
        Err(e) => return Err(Refused::Backend(e)),
    };
    let bound_to = live.claims.cnf.as_ref().map(|c| &c.jkt);
    if let Err(e) = crate::service::dpop::check_presentation(app, bound_to, token, presented, url).await {
        return Err(match e.code {
            crate::error::ErrorCode::TemporarilyUnavailable | crate::error::ErrorCode::ServerError => {
                Refused::Backend(e)
            }
            _ => Refused::Presentation(e),
        });
    }
    admin_of(
        &live.claims,
        &live.client,
        live.user.as_ref(),
        live.grant.as_ref(),
        &crate::service::tokens::admin_audience(app),
    )
    .map_err(|e| match e {
        NotAdmin::Stale => Refused::Invalid,
        NotAdmin::Forbidden => Refused::Forbidden,
    })
}
