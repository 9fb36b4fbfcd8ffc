//! RFC 8414 authorization server metadata and OpenID Connect Discovery: exactly what is
//! implemented, nothing more.

use axum::Router;
use axum::extract::State as StateX;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{State, finish};
use crate::domain::client::{SUPPORTED_AUTH_METHODS, SUPPORTED_GRANT_TYPES};
use crate::service::App;

pub fn router(state: State) -> Router {
    finish(
        Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(metadata))
            .with_state(state),
    )
}

/// The metadata document. Both well-known paths serve the same one.
pub fn document(app: &App) -> Value {
    let c = &app.config;
    json!({
        "issuer": c.issuer,
        "token_endpoint": c.endpoint("/oauth2/token"),
        "jwks_uri": c.endpoint("/.well-known/jwks.json"),
        "registration_endpoint": c.endpoint("/oauth2/register"),
        "introspection_endpoint": c.endpoint("/oauth2/introspect"),
        "revocation_endpoint": c.endpoint("/oauth2/revoke"),
        "grant_types_supported": SUPPORTED_GRANT_TYPES,
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": SUPPORTED_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": SUPPORTED_AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": SUPPORTED_AUTH_METHODS,
    })
}

async fn metadata(StateX(app): StateX<State>) -> Response {
    let mut resp = axum::Json(document(&app)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
