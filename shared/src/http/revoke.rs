//! `POST /oauth2/revoke` (RFC 7009). Always 200 for a well-formed request from an
//! authenticated client, whether or not the token was known.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{AppOf, OAuthForm, State, client_from, finish};
use crate::error::OAuthError;
use crate::service::tokens;

pub fn router(state: State) -> Router {
    super::cors(finish(
        Router::new()
            .route("/oauth2/revoke", post(revoke))
            .with_state(state),
    ))
}

async fn revoke(AppOf(app): AppOf, form: OAuthForm) -> Result<Response, OAuthError> {
    let caller = client_from(&app, &form, "/oauth2/revoke").await?;
    let token = form
        .params
        .require("token")
        .map_err(OAuthError::invalid_request)?;
    tokens::revoke(&app, &caller, token).await?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
