//! `POST /oauth2/token`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use super::{AppOf, OAuthForm, State, client_from, dpop_proofs, finish, no_store_json};
use crate::error::OAuthError;
use crate::service::{dpop, token_endpoint};

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
    // The proof is checked (and its jti spent) before the grant runs, so a bad proof never
    // uses up a code or rotates a refresh token.
    let url = app.config.endpoint("/oauth2/token");
    let proof = dpop::proof(
        &app,
        &dpop_proofs(&form.headers)?,
        dpop::At {
            method: "POST",
            url: &url,
            access_token: None,
        },
    )
    .await?;
    dpop::require_nonce(&app, &client.tenant, proof.as_ref()).await?;
    let request = token_endpoint::TokenRequest {
        client: &client,
        params: &form.params,
        dpop: proof.map(|p| p.jkt),
    };
    let body = token_endpoint::grant(&app, &request).await?;
    Ok(no_store_json(StatusCode::OK, body))
}
