//! `POST /oauth2/token`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use super::{AppOf, OAuthForm, State, client_from, finish, no_store_json};
use crate::error::OAuthError;
use crate::service::token_endpoint;

pub fn router(state: State) -> Router {
    super::cors(finish(
        Router::new()
            .route("/oauth2/token", post(token))
            .with_state(state),
    ))
}

#[tracing::instrument(name = "token", skip_all, fields(client_id = tracing::field::Empty))]
async fn token(AppOf(app): AppOf, form: OAuthForm) -> Result<Response, OAuthError> {
    // A request without a grant type is malformed before anyone is authenticated.
    form.params
        .require("grant_type")
        .map_err(OAuthError::invalid_request)?;
    let client = client_from(&app, &form, "/oauth2/token").await?;
    tracing::Span::current().record("client_id", client.client_id.as_str());
    let body = token_endpoint::grant(&app, &client, &form.params).await?;
    let body = serde_json::to_value(&body).map_err(|_| OAuthError::server_error())?;
    Ok(no_store_json(StatusCode::OK, body))
}
