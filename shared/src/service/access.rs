//! The tenant administrator's say over who uses which app (see `domain::access`), applied
//! with what the store knows now: the tenant's allowlist, the app's user policy, the user's
//! groups (read only when the policy needs them).

use crate::domain::access::{Denied, decide};
use crate::domain::client::{Client, Origin};
use crate::domain::console::is_console;
use crate::domain::id::Subject;
use crate::domain::tenant::Tenant;
use crate::error::OAuthError;
use crate::service::App;

/// `Ok(Err(why))`: the administrator does not let `sub` use `app_client` now.
pub async fn permitted(
    app: &App,
    tenant: &Tenant,
    app_client: &Client,
    sub: &Subject,
) -> Result<Result<(), Denied>, OAuthError> {
    // The tenant's console: for its admin-role users, whatever the allowlist says (an
    // administrator must not be able to lock every administrator out of the console).
    if app_client.origin == Origin::Console {
        let admin = app.repo.user(sub).await?.is_some_and(|u| {
            u.value.admin && u.value.active && u.value.tenant == tenant.id && is_console(app_client)
        });
        return Ok(if admin {
            Ok(())
        } else {
            Err(Denied::NotAdministrator)
        });
    }
    // A metadata-document client whose host the tenant no longer accepts: its grants stop
    // working as an app taken off the allowlist does.
    if let Some(host) = app_client.document_host()
        && !tenant.cimd.allows(&host)
    {
        return Ok(Err(Denied::NotOnAllowlist));
    }
    let groups = match &app_client.user_policy {
        Some(p) if p.needs_groups(sub) => app.repo.groups_of_user(sub).await?,
        _ => Vec::new(),
    };
    Ok(decide(
        tenant.app_allowlist.as_ref(),
        &app_client.client_id,
        app_client.user_policy.as_ref(),
        sub,
        &groups,
    ))
}

/// [`permitted`] as a token-endpoint answer: `invalid_grant` when refused.
pub async fn require(
    app: &App,
    tenant: &Tenant,
    app_client: &Client,
    sub: &Subject,
) -> Result<(), OAuthError> {
    match permitted(app, tenant, app_client, sub).await? {
        Ok(()) => Ok(()),
        Err(d) => {
            tracing::info!(client_id = %app_client.client_id, reason = ?d, "grant refused by the tenant's access policy");
            Err(OAuthError::new(
                crate::error::ErrorCode::InvalidGrant,
                "the tenant's administrator does not allow this user to use this app",
            ))
        }
    }
}
