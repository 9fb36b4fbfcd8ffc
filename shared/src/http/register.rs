//! Dynamic client registration: `POST /oauth2/register` (RFC 7591) and client configuration
//! management at `/oauth2/register/{client_id}` (RFC 7592).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{AppOf, JsonBody, State, TENANT_HEADER, bearer, finish, no_store_json};
use crate::domain::id::ClientId;
use crate::domain::tenant::TenantId;
use crate::error::OAuthError;
use crate::service::clients;

pub fn router(state: State) -> Router {
    finish(
        Router::new()
            .route("/oauth2/register", post(register))
            .route(
                "/oauth2/register/{client_id}",
                axum::routing::get(read).put(update).delete(delete),
            )
            .with_state(state),
    )
}

/// The tenant to register into: the one whose own issuer serves the request (a header, if
/// sent, must name it), else the `X-Bulwark-Tenant` header.
fn tenant_of(app: &crate::service::App, headers: &HeaderMap) -> Result<TenantId, OAuthError> {
    if let Some(scope) = app.config.tenant_scope.as_deref() {
        if let Some(v) = headers.get(TENANT_HEADER)
            && v.to_str().ok() != Some(scope)
        {
            return Err(OAuthError::invalid_request(
                "X-Bulwark-Tenant names another tenant than this issuer's",
            ));
        }
        return TenantId::parse(scope).map_err(OAuthError::invalid_request);
    }
    let v = headers
        .get(TENANT_HEADER)
        .ok_or_else(|| OAuthError::invalid_request("the X-Bulwark-Tenant header is required"))?;
    let v = v
        .to_str()
        .map_err(|_| OAuthError::invalid_request("malformed X-Bulwark-Tenant header"))?;
    TenantId::parse(v).map_err(OAuthError::invalid_request)
}

#[tracing::instrument(name = "register", skip_all, fields(tenant = tracing::field::Empty))]
async fn register(AppOf(app): AppOf, body: JsonBody) -> Result<Response, OAuthError> {
    let tenant = tenant_of(&app, &body.headers)?;
    tracing::Span::current().record("tenant", tenant.as_str());
    let iat = bearer(&body.headers)?;
    let reg = clients::register_dynamic(&app, &tenant, iat.as_ref(), &body.value).await?;
    let resp = clients::registration_response(
        &app,
        &reg.client,
        reg.secret.as_ref(),
        reg.registration_token.as_ref(),
    );
    Ok(no_store_json(StatusCode::CREATED, resp))
}

async fn read(
    AppOf(app): AppOf,
    Path(client_id): Path<ClientId>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let token = bearer(&headers)?;
    let current = clients::authorize_management(&app, &client_id, token.as_ref()).await?;
    Ok(no_store_json(
        StatusCode::OK,
        clients::registration_response(&app, &current.value, None, None),
    ))
}

async fn update(
    AppOf(app): AppOf,
    Path(client_id): Path<ClientId>,
    body: JsonBody,
) -> Result<Response, OAuthError> {
    let token = bearer(&body.headers)?;
    let current = clients::authorize_management(&app, &client_id, token.as_ref()).await?;
    let client = clients::update(&app, current, &body.value).await?;
    Ok(no_store_json(
        StatusCode::OK,
        clients::registration_response(&app, &client, None, None),
    ))
}

async fn delete(
    AppOf(app): AppOf,
    Path(client_id): Path<ClientId>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let token = bearer(&headers)?;
    let current = clients::authorize_management(&app, &client_id, token.as_ref()).await?;
    clients::delete(&app, current, &client_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
