//! `grant_type=password` (RFC 6749 §4.3): deprecated (RFC 9700 §2.4 says not to use it), so
//! refused unless the client's tenant opts in (`bulwark tenant set-policy T --password-grant
//! allow`), checked on every request against the tenant's policy as the token path caches it
//! (≤ 60 s old, `App::tenant`); never advertised in discovery. When allowed, the
//! password is checked exactly as the login page checks it — argon2id on the bounded hashing
//! pool, the same per-username reservation and lockout, the same audit events — and a grant is
//! created as a code redemption creates one (so Revoke, deactivation and client deletion end
//! it), with a refresh token only for clients registered for `refresh_token`.

use crate::domain::grant_type::TokenResponse;
use crate::domain::scope::grant_scope;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::Secret;
use crate::service::App;
use crate::service::grants::{Direct, DirectKind, direct_grant};
use crate::service::token_endpoint::TokenRequest;
use crate::service::users::{LoginError, login};

pub async fn password(app: &App, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (client, p) = (req.client, req.params);
    let tenant = app
        .tenant(client.tenant.as_str())
        .await?
        .ok_or_else(OAuthError::server_error)?;
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
    let user = match login(app, &tenant.id, username, &password).await {
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
    direct_grant(
        app,
        Direct {
            client,
            tenant: &tenant,
            sub: &user.sub,
            scope: &scope,
            params: p,
            kind: DirectKind::Password,
            dpop: req.dpop.as_ref(),
            resources: Vec::new(),
            checked: Some(&user),
        },
    )
    .await
}
