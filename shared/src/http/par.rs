//! `POST /oauth2/par`: the pushed authorization request endpoint (RFC 9126), served by the
//! `par` function.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde_json::json;

use super::{AppOf, OAuthForm, State, client_from, dpop_proofs, finish, no_store_json};
use crate::error::OAuthError;
use crate::service::{dpop, par};

pub fn router(state: State) -> Router {
    super::cors(finish(
        Router::new().route("/oauth2/par", post(push)).with_state(state),
    ))
}

#[tracing::instrument(name = "par", skip_all, fields(client_id = tracing::field::Empty))]
async fn push(AppOf(app): AppOf, form: OAuthForm) -> Result<Response, OAuthError> {
    // Client authentication exactly as at the token endpoint (RFC 9126 §2.1).
    let client = client_from(&app, &form, "/oauth2/par").await?;
    tracing::Span::current().record("client_id", client.client_id.as_str());
    // RFC 9449 §10.1: a proof here binds the code to its key.
    let url = app.config.endpoint("/oauth2/par");
    let key = dpop::proof_key(
        &app,
        &dpop_proofs(&form.headers)?,
        dpop::At {
            method: "POST",
            url: &url,
            access_token: None,
        },
    )
    .await?;
    let pushed = par::push(&app, &client, &form.params, key).await?;
    Ok(no_store_json(
        StatusCode::CREATED,
        json!({"request_uri": pushed.request_uri, "expires_in": pushed.expires_in}),
    ))
}
