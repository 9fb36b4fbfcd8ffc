//! The token endpoint's one registry of grants: which service function handles each
//! [`GrantType`]. A new grant is a variant in `domain::grant_type`, a module in `service/`,
//! and one arm here; discovery and registration validation read the same enum.

use crate::domain::client::Client;
use crate::domain::dpop::Jkt;
use crate::domain::grant_type::{GrantType, TokenResponse};
use crate::domain::params::Params;
use crate::error::{ErrorCode, OAuthError};
use crate::metrics::Event;
use crate::service::{App, device, exchange, federation, grants, password, tokens};

/// A token request: the authenticated client, its parameters, and the key of its DPoP proof
/// (checked by `service::dpop`), which every access token issued for it is bound to.
pub struct TokenRequest<'a> {
    pub client: &'a Client,
    pub params: &'a Params,
    pub dpop: Option<Jkt>,
}

/// Run the grant the request asks for, and count what came of it (`TokensIssued` or
/// `TokensRefused`, by grant; a 5xx is neither).
pub async fn grant(app: &App, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let parsed = req.params.get("grant_type").and_then(GrantType::parse);
    let out = run_grant(app, req).await;
    let grant = parsed.map_or(crate::metrics::UNSUPPORTED_GRANT, GrantType::as_str);
    let tenant = req.client.tenant.as_str();
    match &out {
        Ok(_) => app.metrics.record(Event::TokenIssued { grant, tenant }),
        Err(e) if e.status.is_client_error() => app.metrics.record(Event::TokenRefused { grant, tenant }),
        Err(_) => {}
    }
    out
}

async fn run_grant(app: &App, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (client, p) = (req.client, req.params);
    let name = p.require("grant_type").map_err(OAuthError::invalid_request)?;
    let Some(grant) = GrantType::parse(name) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "the grant type is not supported by this server",
        ));
    };
    if !client.may_use_grant(grant) {
        let why = if client.metadata.allows_grant(grant) {
            let by = match client.registrant() {
                crate::domain::grant_type::Registrant::Anonymous => "without an initial access token",
                crate::domain::grant_type::Registrant::InitialAccessToken => "through dynamic registration",
                crate::domain::grant_type::Registrant::TenantAdmin
                | crate::domain::grant_type::Registrant::Operator => "by the tenant admin",
            };
            format!(
                "a client registered {by} may not use the {} grant",
                grant.as_str()
            )
        } else {
            format!("this client is not registered for the {} grant", grant.as_str())
        };
        return Err(OAuthError::new(ErrorCode::UnauthorizedClient, why));
    }
    if client.metadata.dpop_bound_access_tokens && req.dpop.is_none() {
        return Err(OAuthError::invalid_dpop_proof(
            "this client is registered with dpop_bound_access_tokens: send a DPoP proof",
        ));
    }
    let issued = match grant {
        GrantType::AuthorizationCode => grants::authorization_code(app, req).await,
        GrantType::ClientCredentials => tokens::client_credentials(app, req).await,
        GrantType::RefreshToken => grants::refresh_token(app, req).await,
        GrantType::TokenExchange => exchange::token_exchange(app, req).await,
        GrantType::Password => password::password(app, req).await,
        GrantType::JwtBearer => federation::jwt_bearer(app, req).await,
        GrantType::DeviceCode => device::device_code(app, req).await,
    }?;
    note_use(app, client).await;
    Ok(issued)
}

/// How stale a client's "last used" may be: each process records a client's use at most once
/// per this many seconds, so the token path costs one extra write per client per hour, not
/// one per token.
pub const LAST_USED_RESOLUTION: i64 = 3600;

/// Clients whose use this process recorded lately (`<tenant>#<client id>` → when), bounded.
#[derive(Default)]
pub struct RecentUse(std::sync::Mutex<std::collections::HashMap<String, i64>>);

const RECENT_USE_MAX: usize = 10_000;

async fn note_use(app: &App, client: &Client) {
    let (tenant, client_id) = (client.tenant.as_str(), client.client_id.as_str());
    // Per tenant: a metadata-document client's id (a URL) is shared by every tenant that met it.
    let key = format!("{tenant}#{client_id}");
    let now = app.now();
    {
        let Ok(mut seen) = app.recent_use.0.lock() else {
            return;
        };
        if seen.get(&key).is_some_and(|t| now - t < LAST_USED_RESOLUTION) {
            return;
        }
        if seen.len() >= RECENT_USE_MAX {
            seen.clear();
        }
        seen.insert(key, now);
    }
    // Best effort: the token is issued whether or not this lands.
    if let Err(e) = app.repo.note_client_used(tenant, client_id, now).await {
        tracing::warn!(error = %e, "could not record a client's last use");
    }
}
