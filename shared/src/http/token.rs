//! `POST /oauth2/token`.

use axum::Router;
use axum::extract::State as StateX;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use super::{OAuthForm, State, client_from, finish, no_store_json};
use crate::error::{ErrorCode, OAuthError};
use crate::service::{grants, tokens};

pub fn router(state: State) -> Router {
    super::cors(finish(
        Router::new()
            .route("/oauth2/token", post(token))
            .with_state(state),
    ))
}

#[tracing::instrument(name = "token", skip_all, fields(client_id = tracing::field::Empty))]
async fn token(StateX(app): StateX<State>, form: OAuthForm) -> Result<Response, OAuthError> {
    let grant_type = form
        .params
        .require("grant_type")
        .map_err(OAuthError::invalid_request)?
        .to_string();
    let client = client_from(&app, &form).await?;
    tracing::Span::current().record("client_id", client.client_id.as_str());
    let body = match grant_type.as_str() {
        "client_credentials" => tokens::client_credentials(&app, &client, &form.params).await?,
        "authorization_code" => grants::authorization_code(&app, &client, &form.params).await?,
        "refresh_token" => grants::refresh_token(&app, &client, &form.params).await?,
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "the grant type is not supported by this server",
            ));
        }
    };
    Ok(no_store_json(StatusCode::OK, body))
}
