//! The token endpoint's one registry of grants: which service function handles each
//! [`GrantType`]. A new grant is a variant in `domain::grant_type`, a module in `service/`,
//! and one arm here; discovery and registration validation read the same enum.

use crate::domain::client::Client;
use crate::domain::grant_type::{GrantType, TokenResponse};
use crate::domain::params::Params;
use crate::error::{ErrorCode, OAuthError};
use crate::service::{App, exchange, federation, grants, password, tokens};

/// Run the grant `p` asks for, for an authenticated `client`.
pub async fn grant(app: &App, client: &Client, p: &Params) -> Result<TokenResponse, OAuthError> {
    let name = p.require("grant_type").map_err(OAuthError::invalid_request)?;
    let Some(grant) = GrantType::parse(name) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "the grant type is not supported by this server",
        ));
    };
    if !client.metadata.allows_grant(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client is not registered for the {} grant", grant.as_str()),
        ));
    }
    match grant {
        GrantType::AuthorizationCode => grants::authorization_code(app, client, p).await,
        GrantType::ClientCredentials => tokens::client_credentials(app, client, p).await,
        GrantType::RefreshToken => grants::refresh_token(app, client, p).await,
        GrantType::TokenExchange => exchange::token_exchange(app, client, p).await,
        GrantType::Password => password::password(app, client, p).await,
        GrantType::JwtBearer => federation::jwt_bearer(app, client, p).await,
    }
}
