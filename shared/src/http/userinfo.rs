//! `GET`/`POST /oauth2/userinfo` (OpenID Connect Core §5.3), bearer token in the header.

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::{AppOf, State, bearer, finish, no_store_json};
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
async fn userinfo(AppOf(app): AppOf, headers: HeaderMap) -> Result<Response, OAuthError> {
    let token =
        bearer(&headers)?.ok_or_else(|| OAuthError::invalid_token("a Bearer access token is required"))?;
    let body = grants::userinfo(&app, &token).await?;
    Ok(no_store_json(StatusCode::OK, body))
}
