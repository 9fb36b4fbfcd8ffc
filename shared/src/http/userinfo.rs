//! `GET`/`POST /oauth2/userinfo` (OpenID Connect Core §5.3): a bearer token, or a DPoP-bound
//! token with the DPoP scheme and a proof (RFC 9449 §7), in the header.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AppOf, State, TokenScheme, access_token, dpop_proofs, finish, no_store_json};
use crate::error::OAuthError;
use crate::service::grants;

pub fn router(state: State) -> Router {
    super::cors(finish(
        Router::new()
            .route("/oauth2/userinfo", get(userinfo).post(userinfo))
            .with_state(state),
    ))
}

#[tracing::instrument(name = "userinfo", skip_all)]
async fn userinfo(AppOf(app): AppOf, method: Method, headers: HeaderMap) -> Result<Response, OAuthError> {
    let Some((scheme, token)) = access_token(&headers)? else {
        // RFC 6750 §3.1: a request with no credentials gets the challenge without an error code.
        let mut resp = (StatusCode::UNAUTHORIZED, "").into_response();
        let h = resp.headers_mut();
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"bulwark\""),
        );
        // RFC 9449 §7.1: a resource that takes DPoP says so, and with which algorithms.
        h.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("DPoP realm=\"bulwark\", algs=\"ES256 RS256 PS256 EdDSA\""),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(resp);
    };
    // The DPoP headers matter only to a DPoP presentation.
    let proofs = match scheme {
        TokenScheme::Bearer => Vec::new(),
        TokenScheme::DPoP => dpop_proofs(&headers).map_err(OAuthError::dpop_challenge)?,
    };
    let presented = scheme.presented(&proofs, method.as_str());
    let body = grants::userinfo(&app, &token, presented).await?;
    Ok(no_store_json(StatusCode::OK, body))
}
