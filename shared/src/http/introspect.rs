//! `POST /oauth2/introspect` (RFC 7662). The caller authenticates as a client of the token's
//! tenant; anything else introspects as `{"active": false}`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use super::{AppOf, OAuthForm, State, client_from, finish, no_store_json};
use crate::error::OAuthError;
use crate::service::tokens;

pub fn router(state: State) -> Router {
    finish(
        Router::new()
            .route("/oauth2/introspect", post(introspect))
            .with_state(state),
    )
}

async fn introspect(AppOf(app): AppOf, form: OAuthForm) -> Result<Response, OAuthError> {
    let caller = client_from(&app, &form, "/oauth2/introspect").await?;
    if caller.metadata.is_public() {
        return Err(OAuthError::invalid_client(
            "introspection is for confidential clients",
        ));
    }
    let token = form
        .params
        .require("token")
        .map_err(OAuthError::invalid_request)?;
    let body = tokens::introspect(&app, &caller, token).await?;
    Ok(no_store_json(StatusCode::OK, body))
}
