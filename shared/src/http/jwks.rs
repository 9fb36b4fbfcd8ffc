//! `GET /.well-known/jwks.json`: the active key and the retired keys whose tokens may still be
//! live.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{AppOf, State, finish};
use crate::error::OAuthError;

pub fn router(state: State) -> Router {
    super::cors(finish(
        Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(state),
    ))
}

async fn jwks(AppOf(app): AppOf) -> Result<Response, OAuthError> {
    let keys = app.signer.public_keys().await?;
    let mut resp = axum::Json(keys.jwks()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(resp)
}
