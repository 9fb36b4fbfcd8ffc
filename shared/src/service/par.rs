//! The pushed authorization request endpoint (RFC 9126): an authenticated client sends its
//! authorization request straight to us; it is checked exactly as the authorization endpoint
//! checks one (`service::authorize::check_request`), stored once under the hash of a random
//! reference, and answered with the `request_uri` the browser then brings to the authorization
//! endpoint (`service::authorize::begin`, which takes it with a conditional delete).

use crate::domain::authorize::{AuthzError, REQUEST_URI_PREFIX, Refusal, UntrustedRedirect};
use crate::domain::client::Client;
use crate::domain::dpop::Jkt;
use crate::domain::params::Params;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::generate;
use crate::service::App;
use crate::service::authorize::check_request;
use crate::store::repo_users::PushedRequest;

/// The answer to a pushed request (RFC 9126 §2.2).
#[derive(Debug)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: i64,
}

/// Push `client`'s (already authenticated) authorization request `p`. `dpop`: the key of the
/// request's DPoP proof, if it carried one (RFC 9449 §10.1): it binds the code as `dpop_jkt`
/// does, and a `dpop_jkt` sent with it must name the same key.
pub async fn push(app: &App, client: &Client, p: &Params, dpop: Option<Jkt>) -> Result<Pushed, OAuthError> {
    let tenant = app
        .tenant(client.tenant.as_str())
        .await?
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    let mut request = check_request(p, client, &tenant).map_err(refusal)?;
    if let Some(key) = dpop {
        match &request.dpop_jkt {
            Some(named) if named != &key => {
                return Err(OAuthError::invalid_request(
                    "dpop_jkt is not the thumbprint of the DPoP proof's key",
                ));
            }
            Some(_) | None => request.dpop_jkt = Some(key),
        }
    }
    let now = app.now();
    let expires_in = app.config.lifetimes.pushed_request;
    let pushed = PushedRequest {
        tenant: client.tenant.clone(),
        request,
        issuer_scope: app.config.tenant_scope.clone(),
        created_at: now,
        expires_at: now + expires_in,
    };
    let reference = generate();
    app.repo.put_pushed(&reference.hash().to_hex(), &pushed).await?;
    Ok(Pushed {
        request_uri: format!("{REQUEST_URI_PREFIX}{}", reference.expose()),
        expires_in,
    })
}

/// An authorization request's refusal as the pushed authorization request endpoint answers it
/// (RFC 9126 §2.3): the same error code, in JSON to the client that pushed it.
fn refusal(r: Refusal) -> OAuthError {
    match r {
        Refusal::Page(UntrustedRedirect::NotRegistered) => {
            OAuthError::invalid_request("redirect_uri is not one this client registered")
        }
        Refusal::Page(UntrustedRedirect::Missing) => {
            OAuthError::invalid_request("redirect_uri is required: the client registered several")
        }
        Refusal::Redirect {
            error, description, ..
        } => {
            let code = match error {
                AuthzError::InvalidRequest => ErrorCode::InvalidRequest,
                AuthzError::UnsupportedResponseType => ErrorCode::UnsupportedResponseType,
                AuthzError::UnauthorizedClient => ErrorCode::UnauthorizedClient,
                AuthzError::InvalidScope => ErrorCode::InvalidScope,
                AuthzError::InvalidTarget => ErrorCode::InvalidTarget,
                AuthzError::RequestNotSupported => ErrorCode::RequestNotSupported,
            };
            OAuthError::new(code, description)
        }
    }
}
