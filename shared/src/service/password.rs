//! `grant_type=password` (RFC 6749 §4.3): deprecated (RFC 9700 §2.4 says not to use it), so
//! refused unless the client's tenant opts in (`bulwark tenant set-policy T --password-grant
//! allow`), checked on every request; never advertised in discovery. When allowed, the
//! password is checked exactly as the login page checks it — argon2id on the bounded hashing
//! pool, the same per-username reservation and lockout, the same audit events — and a grant is
//! created as a code redemption creates one (so Revoke, deactivation and client deletion end
//! it), with a refresh token only for clients registered for `refresh_token`.

use crate::domain::client::Client;
use crate::domain::grant_type::{GrantType, TokenResponse};
use crate::domain::params::Params;
use crate::domain::scope::grant_scope;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::{Secret, random_id};
use crate::service::App;
use crate::service::grants::{ATTEMPTS, Issue, issue, new_refresh, refresh_lifetimes};
use crate::service::users::{LoginError, active_user, login};
use crate::store::StoreError;
use crate::store::repo_users::Grant;

pub async fn password(app: &App, client: &Client, p: &Params) -> Result<TokenResponse, OAuthError> {
    let tenant = app
        .repo
        .tenant(client.tenant.as_str())
        .await?
        .ok_or_else(OAuthError::server_error)?
        .value;
    if !tenant.password_grant {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this tenant does not allow the password grant",
        ));
    }
    let username = p.require("username").map_err(OAuthError::invalid_request)?;
    let password = Secret::new(p.require("password").map_err(OAuthError::invalid_request)?);
    let scope =
        grant_scope(p.get("scope"), &client.allowed_scopes(&tenant)).map_err(OAuthError::invalid_scope)?;
    let user = match login(app, tenant.id.as_str(), username, &password).await {
        Ok(u) => u,
        Err(LoginError::Invalid) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the username or password is incorrect",
            ));
        }
        Err(LoginError::Locked(_)) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "too many failed attempts for this username; try again later",
            ));
        }
        Err(LoginError::Backend(e)) => return Err(e),
    };
    let now = app.now();
    let (idle, absolute) = refresh_lifetimes(app, &tenant);
    let grant = Grant {
        gid: random_id(16),
        tenant: tenant.id.as_str().to_string(),
        sub: user.sub.clone(),
        client_id: client.client_id.clone(),
        scope: scope.to_scope_string(),
        auth_time: now,
        created_at: now,
        last_used: now,
        expires_at: now + absolute,
    };
    let refresh = client
        .metadata
        .allows_grant(GrantType::RefreshToken)
        .then(Secret::generate);
    let body = issue(
        app,
        Issue {
            client,
            tenant: &tenant,
            grant: &grant,
            scope: &scope,
            params: p,
            nonce: None,
            refresh: refresh.as_ref(),
        },
    )
    .await?;
    // Land the grant only if the user is still as checked and the client still exists.
    for _ in 0..ATTEMPTS {
        let Some(current) = active_user(app, tenant.id.as_str(), &user.sub).await? else {
            return Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "the username or password is incorrect",
            ));
        };
        let mut writes: Vec<_> = app.repo.create_grant_writes(&grant)?.into();
        writes.push(app.repo.audit_write_detail(
            tenant.id.as_str(),
            "login.succeeded",
            &user.sub,
            &user.sub,
            Some(format!("grant_type=password client={}", client.client_id)),
        )?);
        writes.push(app.repo.audit_write_detail(
            tenant.id.as_str(),
            "grant.created",
            &client.client_id,
            &grant.gid,
            Some("grant_type=password".into()),
        )?);
        if let Some(r) = &refresh {
            writes.push(
                app.repo
                    .create_refresh_write(&r.hash().to_hex(), &new_refresh(&grant, now, idle))?,
            );
        }
        writes.push(app.repo.client_exists_check(&client.client_id));
        writes.push(app.repo.user_unchanged_check(&user.sub, current.version));
        match app.repo.commit(writes).await {
            Ok(()) => return Ok(body),
            Err(StoreError::Conflict) => {
                if app.repo.client(&client.client_id).await?.is_none() {
                    return Err(OAuthError::invalid_client("client authentication failed"));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::unavailable())
}
