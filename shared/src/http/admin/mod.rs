//! The tenant admin API, `/admin/v1/...` (the `admin` Lambda function): JSON in and out, RFC 9457
//! problem details for every error, bearer access tokens of ours with scope `bulwark:admin`,
//! confined to the token's tenant. Its OpenAPI 3.1 document is generated from the handlers and
//! types below (`GET /admin/v1/openapi.json`), and every request body and query string is read
//! into the very type the document shows (`input`), so neither can drift from the other.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State as StateX};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};

mod audit;
mod clients;
mod groups;
mod input;
mod tenant;
mod users;

use audit::*;
use clients::*;
use groups::*;
use input::*;
use tenant::*;
use users::*;

use super::State;
use crate::domain::audit::AuditEvent;
use crate::domain::client::{ADMIN_SCOPE, Client, Origin};
use crate::domain::id::{ClientId, Subject};
use crate::domain::tenant::{DcrPolicy, Tenant};
use crate::domain::user::User;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::Secret;
use crate::service::admin::{self as svc, AuditFilter, PolicyChanges, Refused, UserChanges};
use crate::service::tenants::AdminError;

const PROBLEM_JSON: &str = "application/problem+json";

pub fn router(state: State) -> Router {
    Router::new()
        .route("/admin/v1/openapi.json", get(openapi))
        .route("/admin/v1/clients", get(list_clients).post(create_client))
        .route(
            "/admin/v1/clients/{client_id}",
            get(get_client).patch(patch_client).delete(delete_client),
        )
        .route("/admin/v1/clients/{client_id}/secret", post(rotate_secret))
        .route("/admin/v1/users", get(list_users).post(create_user))
        .route(
            "/admin/v1/users/{user_id}",
            get(get_user).patch(patch_user).delete(delete_user),
        )
        .route("/admin/v1/users/{user_id}/deactivate", post(deactivate_user))
        .route("/admin/v1/users/{user_id}/reactivate", post(reactivate_user))
        .route("/admin/v1/users/{user_id}/apps", get(user_apps))
        .route(
            "/admin/v1/users/{user_id}/apps/{client_id}",
            axum::routing::delete(revoke_user_app),
        )
        .route("/admin/v1/policy", get(get_policy).patch(patch_policy))
        .route("/admin/v1/scopes", get(list_scopes))
        .route(
            "/admin/v1/scopes/{name}",
            axum::routing::put(put_scope).delete(delete_scope),
        )
        .route("/admin/v1/initial-access-tokens", get(list_iats).post(create_iat))
        .route(
            "/admin/v1/initial-access-tokens/{id}",
            axum::routing::delete(delete_iat),
        )
        .route(
            "/admin/v1/resources",
            get(list_resources).post(add_resource).delete(remove_resource),
        )
        .route(
            "/admin/v1/issuers",
            get(list_issuers).post(add_issuer).delete(remove_issuer),
        )
        .route("/admin/v1/groups", get(list_groups).post(create_group))
        .route("/admin/v1/groups/{group_id}", get(get_group).delete(delete_group))
        .route("/admin/v1/groups/{group_id}/members", get(list_members))
        .route(
            "/admin/v1/groups/{group_id}/members/{user_id}",
            axum::routing::put(add_member).delete(remove_member),
        )
        .route("/admin/v1/audit", get(audit))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(super::access_log))
}

// ---- problems (RFC 9457) ------------------------------------------------------------------------

/// An RFC 9457 problem: what went wrong, for a person and for a program.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: if kind == "about:blank" {
                kind.into()
            } else {
                format!("urn:bulwark:problem:{kind}")
            },
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }
    fn field(mut self, f: impl Into<String>) -> Self {
        self.field = Some(f.into());
        self
    }
    fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", detail)
    }
    fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        Self::invalid(detail).field(field)
    }
    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", format!("no such {what}"))
    }
    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily-unavailable",
            "the service is temporarily unavailable; try again",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(&self)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Field names a validation message may start with (client metadata errors name their field).
const METADATA_FIELDS: [&str; 18] = [
    "redirect_uris",
    "grant_types",
    "response_types",
    "token_endpoint_auth_method",
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "scope",
    "contacts",
    "software_id",
    "software_version",
    "jwks_uri",
    "jwks",
    "federated_credential",
    "agent_of",
    "resource_server_for",
];

fn field_of(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    if lower.starts_with("redirect_uri") {
        return Some("redirect_uris".into());
    }
    if lower.starts_with("grant type") {
        return Some("grant_types".into());
    }
    if lower.starts_with("response type") {
        return Some("response_types".into());
    }
    METADATA_FIELDS
        .iter()
        .find(|f| lower.starts_with(*f))
        .map(|f| f.to_string())
}

impl From<OAuthError> for Problem {
    fn from(e: OAuthError) -> Self {
        match e.code {
            ErrorCode::TemporarilyUnavailable | ErrorCode::ServerError => Problem::unavailable(),
            ErrorCode::InvalidRedirectUri => {
                Problem::invalid_field(e.field.unwrap_or("redirect_uris"), e.description.to_string())
            }
            ErrorCode::NotFound => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", e.description.to_string())
            }
            _ => {
                let detail = e.description.to_string();
                let p = Problem::invalid(detail.clone());
                match e.field.map(str::to_string).or_else(|| field_of(&detail)) {
                    Some(f) => p.field(f),
                    None => p,
                }
            }
        }
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(why) => Problem::invalid(why),
            AdminError::Field(f, why) => Problem::invalid_field(&f, why),
            AdminError::Exists(what) => {
                Problem::new(StatusCode::CONFLICT, "exists", format!("{what} already exists"))
            }
            AdminError::NotFound(what) => Problem::not_found(&what),
            AdminError::Stale => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "it changed since you read it: GET it again and retry with the new ETag",
            ),
            AdminError::Operator => Problem::new(
                StatusCode::CONFLICT,
                "operator-managed",
                "a client holding bulwark:admin is managed by the operator (bulwark CLI) only",
            ),
            AdminError::BadCursor => Problem::invalid_field("cursor", "the cursor is not valid here"),
            AdminError::Unavailable(e) => {
                tracing::warn!(error = %e, "admin API: store unavailable");
                Problem::unavailable()
            }
            AdminError::OAuth(o) => o.into(),
        }
    }
}

type Answer = Result<Response, Problem>;

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "about:blank", "no such endpoint")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "about:blank",
        "method not allowed on this resource",
    )
}

// ---- who is calling -------------------------------------------------------------------------

/// The caller, as an extractor: the administrator its bearer token speaks for
/// (`service::admin::caller`).
pub struct Admin(pub crate::domain::admin::Admin);

impl std::ops::Deref for Admin {
    type Target = crate::domain::admin::Admin;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

fn challenge(status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let (kind, detail) = match (status, error) {
        (StatusCode::FORBIDDEN, _) => (
            "insufficient-scope",
            format!("the token lacks the {ADMIN_SCOPE} scope"),
        ),
        (_, Some((_, why))) => ("invalid-token", why.to_string()),
        _ => ("unauthorized", "a bearer access token is required".to_string()),
    };
    let mut resp = Problem::new(status, kind, detail).into_response();
    let value = match (status, error) {
        (StatusCode::FORBIDDEN, _) => {
            format!("Bearer realm=\"bulwark-admin\", error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\"")
        }
        (_, Some((code, _))) => format!("Bearer realm=\"bulwark-admin\", error=\"{code}\""),
        _ => "Bearer realm=\"bulwark-admin\"".to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

impl FromRequestParts<State> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &State) -> Result<Self, Response> {
        let (scheme, token) = match super::access_token(&parts.headers) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(challenge(StatusCode::UNAUTHORIZED, None)),
            Err(_) => {
                return Err(challenge(
                    StatusCode::UNAUTHORIZED,
                    Some((
                        "invalid_request",
                        "use a Bearer token, or a DPoP-bound token with the DPoP scheme",
                    )),
                ));
            }
        };
        let proofs = match scheme {
            super::TokenScheme::Bearer => Vec::new(),
            super::TokenScheme::DPoP => {
                super::dpop_proofs(&parts.headers).map_err(|e| presentation(e.dpop_challenge()))?
            }
        };
        let presented = scheme.presented(&proofs, parts.method.as_str());
        // The admin API is served at the shared issuer only.
        let url = app.config.endpoint(parts.uri.path());
        match svc::caller(app, token.expose(), presented, &url).await {
            Ok(a) => Ok(Admin(a)),
            Err(Refused::Invalid) => Err(challenge(
                StatusCode::UNAUTHORIZED,
                Some(("invalid_token", "the access token is invalid, expired or revoked")),
            )),
            Err(Refused::Forbidden) => Err(challenge(StatusCode::FORBIDDEN, None)),
            Err(Refused::Backend(e)) => Err(Problem::from(e).into_response()),
            Err(Refused::Presentation(e)) => Err(presentation(e)),
        }
    }
}

/// A token not presented as its binding requires: 401 with its `DPoP` challenge.
fn presentation(e: OAuthError) -> Response {
    let mut resp = Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid-token",
        e.description.to_string(),
    )
    .into_response();
    if let Some(c) = e.challenge {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    resp
}

// ---- request helpers ----------------------------------------------------------------------------

/// Path parameters, with a problem (not axum's plain-text answer) when they do not decode.
struct PathOf<T>(T);

impl<S, T> FromRequestParts<S> for PathOf<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathOf(v))
            .map_err(|_| Problem::invalid("the path is not valid UTF-8 text"))
    }
}

/// The version an `If-Match` header names (`None`: no header or `*`).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("").trim();
    if v == "*" {
        return Ok(None);
    }
    // Any tag we did not issue matches nothing: 412.
    let stale = || AdminError::Stale.into();
    let inner = v
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(stale)?;
    inner.parse::<u64>().map(Some).map_err(|_| stale())
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn json_answer<T: Serialize>(status: StatusCode, body: &T, version: Option<u64>) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = version {
        h.insert(header::ETAG, etag(v));
    }
    resp
}

fn no_content() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `limit` and `cursor` of a list request.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// How many items (1 to 200; default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// Where the previous page ended (its `next_cursor`).
    cursor: Option<String>,
}

impl ListParams {
    fn page(&self) -> Result<(usize, Option<String>), Problem> {
        page(self.limit, self.cursor.as_deref())
    }
}

/// The page size (default 50) and the decoded cursor of a list request.
fn page(limit: Option<u32>, cursor: Option<&str>) -> Result<(usize, Option<String>), Problem> {
    let limit = match limit {
        None => 50,
        Some(n) if (1..=200).contains(&n) => n as usize,
        Some(_) => return Err(Problem::invalid_field("limit", "limit is 1 to 200")),
    };
    let cursor = match cursor {
        None => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    Ok((limit, cursor))
}

fn encode_cursor(c: Option<String>) -> Option<String> {
    c.as_deref().map(super::links::encode_cursor)
}

fn decode_cursor(c: &str) -> Result<String, Problem> {
    super::links::decode_cursor(c)
        .ok_or_else(|| Problem::invalid_field("cursor", "the cursor is not valid here"))
}

// ---- the document -----------------------------------------------------------------------------

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token of this server with scope bulwark:admin (client_credentials \
                         of a client the operator created with that scope); it manages its own tenant only.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Bulwark tenant admin API", version = "1",
        description = "Manage a tenant's Connected Apps, users, scopes and policy, and read its audit trail. \
            Errors are RFC 9457 problem details; lists page with limit and an opaque cursor; PATCH honours If-Match."),
    paths(list_clients, create_client, get_client, patch_client, delete_client, rotate_secret,
        list_users, create_user, get_user, patch_user, delete_user, deactivate_user, reactivate_user,
        user_apps, revoke_user_app, get_policy, patch_policy, list_scopes, put_scope, delete_scope,
        list_iats, create_iat, delete_iat, list_resources, add_resource, remove_resource,
        list_issuers, add_issuer, remove_issuer,
        list_groups, create_group, get_group, delete_group, list_members, add_member, remove_member, audit),
    components(schemas(Problem)),
    modifiers(&BearerScheme),
    tags((name = "clients", description = "Connected Apps"), (name = "users"), (name = "policy"),
        (name = "scopes"), (name = "registration", description = "Initial access tokens for Dynamic Client Registration"),
        (name = "resources"), (name = "federation", description = "Identity providers trusted for the JWT bearer grant and ID-JAGs"),
        (name = "groups", description = "Groups of users, for apps' user policies"), (name = "audit"))
)]
pub struct AdminDoc;

/// The OpenAPI document of this API (public).
pub fn document() -> Value {
    serde_json::to_value(AdminDoc::openapi()).unwrap_or_else(|_| json!({}))
}

async fn openapi() -> Response {
    let mut resp = axum::Json(document()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
