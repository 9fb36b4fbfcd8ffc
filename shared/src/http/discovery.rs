//! RFC 8414 authorization server metadata and OpenID Connect Discovery: exactly what is
//! implemented, nothing more.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{AppOf, State, finish};
use crate::domain::grant_type::{ClientAuthMethod, GrantType};
use crate::domain::tenant::SEED_SCOPES;
use crate::keys::external::ALGORITHM_NAMES;
use crate::service::App;

pub fn router(state: State) -> Router {
    super::cors(finish(
        Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(metadata))
            // A tenant's own issuer, by RFC 8414 §3.1 path insertion (and the same for OIDC,
            // where MCP clients also look); `/t/{tenant}/.well-known/...` is served by
            // `with_tenant_issuers`.
            .route(
                "/.well-known/oauth-authorization-server/t/{tenant}",
                get(tenant_metadata),
            )
            .route(
                "/.well-known/openid-configuration/t/{tenant}",
                get(tenant_metadata),
            )
            .with_state(state),
    ))
}

/// The metadata document. Both well-known paths serve the same one.
pub fn document(app: &App) -> Value {
    let c = &app.config;
    json!({
        "issuer": c.issuer,
        "authorization_endpoint": c.endpoint("/oauth2/authorize"),
        "token_endpoint": c.endpoint("/oauth2/token"),
        "userinfo_endpoint": c.endpoint("/oauth2/userinfo"),
        "jwks_uri": c.endpoint("/.well-known/jwks.json"),
        "registration_endpoint": c.endpoint("/oauth2/register"),
        "introspection_endpoint": c.endpoint("/oauth2/introspect"),
        "revocation_endpoint": c.endpoint("/oauth2/revoke"),
        "pushed_authorization_request_endpoint": c.endpoint("/oauth2/par"),
        "device_authorization_endpoint": c.endpoint("/oauth2/device_authorization"),
        // RFC 9126 §5 (default false); a tenant's own issuer shows its policy.
        "require_pushed_authorization_requests": false,
        "grant_types_supported": GrantType::advertised_names(),
        // The ID-JAG profile of the jwt-bearer grant (draft-ietf-oauth-identity-assertion-
        // authz-grant, Resource Authorization Server metadata): that the server implements
        // it, never which issuers any tenant trusts.
        "authorization_grant_profiles_supported": [crate::domain::id_jag::ID_JAG_PROFILE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent"],
        "token_endpoint_auth_methods_supported": ClientAuthMethod::names(),
        "token_endpoint_auth_signing_alg_values_supported": ALGORITHM_NAMES,
        "dpop_signing_alg_values_supported": crate::domain::dpop::ALGORITHMS,
        "introspection_endpoint_auth_signing_alg_values_supported": ALGORITHM_NAMES,
        "revocation_endpoint_auth_signing_alg_values_supported": ALGORITHM_NAMES,
        "introspection_endpoint_auth_methods_supported": ClientAuthMethod::confidential_names(),
        "revocation_endpoint_auth_methods_supported": ClientAuthMethod::names(),
        "scopes_supported": SEED_SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "tid", "name", "preferred_username", "email", "email_verified"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        // Only the request_uri values of our own pushed authorization request endpoint are
        // taken; none is ever fetched (RFC 9101's request_uri is not supported).
        "request_uri_parameter_supported": false,
    })
}

async fn tenant_metadata(
    AppOf(app): AppOf,
    axum::extract::Path(tenant): axum::extract::Path<String>,
) -> Response {
    match crate::domain::tenant::TenantId::parse(&tenant) {
        Ok(t) if app.config.tenant_scope.is_none() => metadata(AppOf(app.scoped(t.as_str()))).await,
        _ => {
            crate::error::OAuthError::new(crate::error::ErrorCode::NotFound, "no such issuer").into_response()
        }
    }
}

async fn metadata(AppOf(app): AppOf) -> Response {
    // A tenant's own issuer exists only for a tenant that does.
    let (mut cimd, mut par_required) = (false, false);
    if let Some(t) = app.config.tenant_scope.as_deref() {
        match app.tenant(t).await {
            Ok(Some(t)) => {
                cimd = t.cimd.enabled();
                par_required = t.require_pushed_authorization_requests;
            }
            Ok(None) => {
                return crate::error::OAuthError::new(crate::error::ErrorCode::NotFound, "no such issuer")
                    .into_response();
            }
            Err(e) => return crate::error::OAuthError::from(e).into_response(),
        }
    }
    let mut doc = document(&app);
    doc["require_pushed_authorization_requests"] = Value::Bool(par_required);
    // Client ID Metadata Documents: only at a tenant's own issuer (a URL client id names no
    // tenant), and only where that tenant accepts some.
    if cimd {
        doc["client_id_metadata_document_supported"] = Value::Bool(true);
    }
    let mut resp = axum::Json(doc).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
