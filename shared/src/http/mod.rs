//! HTTP: one axum `Router` per endpoint (each Lambda function serves exactly one), and
//! [`app`], which merges them all for `bulwark serve`.
//!
//! Handlers are thin: parse the request with the extractors here, call a `service` function,
//! shape the response. Bodies are read with a hard size limit; content types are checked; a
//! repeated parameter is an error; nothing here logs headers, bodies or query strings.

pub mod account;
pub mod admin;
pub mod authorize;
pub mod browser;
pub mod console;
pub mod device;
#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
mod device_tests;
pub mod discovery;
pub mod introspect;
pub mod jwks;
pub mod links;
mod oauth_error;
#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
mod page_tests;
pub mod pages;
pub mod par;
pub mod register;
pub mod revoke;
#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
mod router_tests;
pub mod token;
pub mod userinfo;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

use crate::domain::client::Client;
use crate::domain::client_auth::{CredentialsError, read_credentials};
use crate::domain::params::Params;
use crate::error::{ErrorCode, OAuthError};
use crate::service::App;
use crate::service::client_auth::authenticate;

/// Largest request body any endpoint reads.
pub const MAX_BODY: usize = 64 * 1024;

/// The header that names the tenant for DCR and the admin API.
pub const TENANT_HEADER: &str = "x-bulwark-tenant";

pub type State = Arc<App>;

/// Every endpoint on one router (for `bulwark serve` and tests), also under each tenant's own
/// issuer path.
pub fn app(state: State) -> Router {
    let all = Router::new()
        .merge(discovery::router(state.clone()))
        .merge(jwks::router(state.clone()))
        .merge(register::router(state.clone()))
        .merge(token::router(state.clone()))
        .merge(par::router(state.clone()))
        .merge(device::router(state.clone()))
        .merge(introspect::router(state.clone()))
        .merge(revoke::router(state.clone()))
        .merge(authorize::router(state.clone()))
        .merge(userinfo::router(state.clone()))
        .merge(account::router(state.clone()))
        .merge(admin::router(state.clone()))
        .merge(console::router(state.clone()))
        .fallback(not_found);
    with_tenant_issuers(all, state)
}

/// `router`, answering every request 503 `temporarily_unavailable` while `gate` says this
/// process may not serve its store (a schema version it does not understand,
/// `service::schema`).
pub fn with_schema_gate(
    router: Router,
    state: State,
    gate: Arc<crate::service::schema::SchemaGate>,
) -> Router {
    router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let (state, gate) = (state.clone(), gate.clone());
        async move {
            if gate.admits(&state).await {
                next.run(req).await
            } else {
                OAuthError::unavailable().into_response()
            }
        }
    }))
}

/// The app a request is served by: the deployment's, or, under `/t/{tenant}/`, the same app as
/// that tenant's own issuer (`App::scoped`). Handlers of the OAuth endpoints take this rather
/// than the router's state.
pub struct AppOf(pub State);

#[derive(Clone)]
struct Scoped(State);

impl FromRequestParts<State> for AppOf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        Ok(AppOf(
            parts
                .extensions
                .get::<Scoped>()
                .map(|s| s.0.clone())
                .unwrap_or_else(|| state.clone()),
        ))
    }
}

/// What a tenant's own issuer serves under `/t/{tenant}` (the OAuth endpoints, discovery, JWKS
/// the account page and the device verification page; the admin API and the console stay on the
/// shared issuer).
const TENANT_PATHS: [&str; 4] = ["/oauth2/", "/.well-known/", "/account", "/device"];

/// `router`, and each of its OAuth routes also at `/t/{tenant}/...`, served as that tenant's
/// own issuer: the prefix is taken off and the request goes to the same routes with the
/// scoped app. (Each Lambda function wraps its own router the same way.)
pub fn with_tenant_issuers(router: Router, state: State) -> Router {
    use tower::ServiceExt;
    let inner = router.clone();
    let forward = move |req: Request| {
        let (inner, state) = (inner.clone(), state.clone());
        async move {
            // The raw path, not a decoded one: what the inner routes see is exactly what came
            // after the prefix (no `%2F` turned into a separator, no query smuggled in).
            let raw = req.uri().path();
            let Some((tenant, rest)) = raw
                .strip_prefix("/t/")
                .and_then(|r| r.split_once('/'))
                .map(|(t, r)| (t.to_string(), format!("/{r}")))
            else {
                return tenant_path_refused();
            };
            let served = TENANT_PATHS
                .iter()
                .any(|p| rest.starts_with(p) || rest == p.trim_end_matches('/'));
            let Ok(tenant) = crate::domain::tenant::TenantId::parse(&tenant) else {
                return tenant_path_refused();
            };
            if !served {
                return tenant_path_refused();
            }
            // Metadata and keys exist only for a tenant that does (the endpoints that take
            // credentials find nothing of an unknown tenant anyway).
            if rest.starts_with("/.well-known/") {
                match state.tenant(tenant.as_str()).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return tenant_path_refused(),
                    Err(e) => return OAuthError::from(e).into_response(),
                }
            }
            let uri = match req.uri().query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest,
            };
            let Ok(uri) = uri.parse::<axum::http::Uri>() else {
                return tenant_path_refused();
            };
            // A fresh request: the outer route's path parameters must not reach the inner
            // routes (axum would add theirs to them); nothing else here uses extensions.
            let (parts, body) = req.into_parts();
            let mut fresh = Request::new(body);
            *fresh.method_mut() = parts.method;
            *fresh.uri_mut() = uri;
            *fresh.version_mut() = parts.version;
            *fresh.headers_mut() = parts.headers;
            fresh
                .extensions_mut()
                .insert(Scoped(state.scoped(tenant.as_str())));
            match inner.oneshot(fresh).await {
                Ok(r) => r.into_response(),
                Err(never) => match never {},
            }
        }
    };
    router.route("/t/{tenant}/{*rest}", axum::routing::any(forward))
}

/// A path under `/t/` that no tenant issuer serves: 404, logged like any request (route
/// template only).
fn tenant_path_refused() -> Response {
    tracing::info!(target: "http", route = "/t/{tenant}/{*rest}", status = 404u16, "request");
    OAuthError::new(ErrorCode::NotFound, "no such endpoint").into_response()
}

/// Common layers for a single endpoint's router (what a Lambda function serves): a JSON 405
/// for a wrong method, and the access log.
pub fn finish(router: Router) -> Router {
    router
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(access_log))
}

/// CORS for the endpoints a browser-based (public) client calls from JavaScript: discovery,
/// JWKS, token, revocation, userinfo. Any origin, no credentials: none of them reads a cookie,
/// so a cross-origin caller gets nothing it could not get with its own HTTP client. The
/// browser-facing pages (authorize, account) and introspection get no CORS headers.
pub fn cors(router: Router) -> Router {
    use axum::http::Method;
    use tower_http::cors::{Any, CorsLayer};
    router.layer(
        CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("dpop"),
            ])
            .expose_headers([header::WWW_AUTHENTICATE, HeaderName::from_static("dpop-nonce")])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

async fn not_found() -> OAuthError {
    OAuthError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> OAuthError {
    OAuthError::new(ErrorCode::MethodNotAllowed, "method not allowed on this endpoint")
}

/// One JSON log line per request: method, route template (never the raw path or query),
/// status and latency.
pub(crate) async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let resp = next.run(req).await;
    tracing::info!(
        target: "http",
        method = %method,
        route = route.as_deref().unwrap_or("-"),
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// An oversized body is still read (and discarded) up to this many bytes before the 413 goes
/// out, so that a client still sending it reads the answer instead of a broken pipe. Beyond
/// it, the connection is simply closed after the 413.
const DRAIN_LIMIT: usize = 2 * 1024 * 1024 + 64 * 1024;

/// Read the body, at most [`MAX_BODY`] bytes (413 beyond).
pub(crate) async fn body_bytes(
    req: Request,
) -> Result<(axum::http::request::Parts, axum::body::Bytes), OAuthError> {
    use http_body_util::BodyExt;
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(str::parse::<u64>);
    if let Some(Ok(n)) = declared
        && n > DRAIN_LIMIT as u64
    {
        return Err(OAuthError::too_large());
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(OAuthError::invalid_request("the request body could not be read"));
        };
        if let Some(data) = frame.data_ref() {
            seen += data.len();
            if seen > DRAIN_LIMIT {
                return Err(OAuthError::too_large());
            }
            if seen <= MAX_BODY {
                buf.extend_from_slice(data);
            }
        }
    }
    if seen > MAX_BODY {
        return Err(OAuthError::too_large());
    }
    Ok((parts, axum::body::Bytes::from(buf)))
}

pub(crate) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// An `application/x-www-form-urlencoded` body, parsed by [`Params`], plus the headers.
/// The values of a request's `DPoP` headers (RFC 9449 §4.1), each as text (a value that is not
/// visible ASCII is no proof at all).
pub(crate) fn dpop_proofs(headers: &HeaderMap) -> Result<Vec<&str>, OAuthError> {
    headers
        .get_all("dpop")
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| OAuthError::invalid_dpop_proof("the DPoP proof is not a well-formed JWT"))
        })
        .collect()
}

pub struct OAuthForm {
    pub params: Params,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _: &S) -> Result<Self, OAuthError> {
        if !content_type_is(req.headers(), "application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let (parts, bytes) = body_bytes(req).await?;
        let params = Params::parse(&bytes).map_err(OAuthError::invalid_request)?;
        Ok(Self {
            params,
            headers: parts.headers,
        })
    }
}

/// An `application/json` body, parsed to a JSON value.
pub struct JsonBody {
    pub value: serde_json::Value,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _: &S) -> Result<Self, OAuthError> {
        if !content_type_is(req.headers(), "application/json") {
            return Err(OAuthError::invalid_request("the body must be application/json"));
        }
        let (parts, bytes) = body_bytes(req).await?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|_| OAuthError::invalid_client_metadata("the body is not valid JSON"))?;
        Ok(Self {
            value,
            headers: parts.headers,
        })
    }
}

/// Authenticate the calling client from the form and its `Authorization` header, at
/// `endpoint` (its path: a client assertion may be addressed to it).
pub async fn client_from(app: &App, form: &OAuthForm, endpoint: &str) -> Result<Client, OAuthError> {
    let authorization = match form.headers.get(header::AUTHORIZATION) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?,
        ),
        None => None,
    };
    let creds = read_credentials(authorization, &form.params).map_err(|e| match e {
        CredentialsError::Missing => OAuthError::invalid_client("client authentication is required"),
        CredentialsError::MultipleMethods => {
            OAuthError::invalid_request("use exactly one client authentication method")
        }
        CredentialsError::Malformed(why) => OAuthError::invalid_client(why),
    })?;
    authenticate(app, &creds, endpoint).await
}

/// A `Bearer` token from the `Authorization` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Result<Option<crate::secret::Secret>, OAuthError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| OAuthError::invalid_token("malformed Authorization header"))?;
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(crate::secret::Secret::new(token.trim())))
        }
        _ => Err(OAuthError::invalid_token("use a Bearer token")),
    }
}

/// The scheme an access token came under at a protected resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenScheme {
    Bearer,
    /// RFC 9449 §7.1.
    DPoP,
}

impl TokenScheme {
    /// How the token was presented, for `service::dpop`: a DPoP presentation carries the
    /// request's proofs and method.
    pub fn presented<'a>(
        self,
        proofs: &'a [&'a str],
        method: &'a str,
    ) -> crate::service::dpop::Presented<'a> {
        match self {
            TokenScheme::Bearer => crate::service::dpop::Presented::Bearer,
            TokenScheme::DPoP => crate::service::dpop::Presented::DPoP { proofs, method },
        }
    }
}

/// The access token of `Authorization: Bearer <token>` or `Authorization: DPoP <token>`.
pub fn access_token(headers: &HeaderMap) -> Result<Option<(TokenScheme, crate::secret::Secret)>, OAuthError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| OAuthError::invalid_token("malformed Authorization header"))?;
    let (scheme, token) = v.split_once(' ').unwrap_or((v, ""));
    let token = token.trim();
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        TokenScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        TokenScheme::DPoP
    } else {
        return Err(OAuthError::invalid_token("use a Bearer or DPoP token"));
    };
    if token.is_empty() {
        let e = OAuthError::invalid_token("the Authorization header holds no token");
        return Err(match scheme {
            TokenScheme::Bearer => e,
            TokenScheme::DPoP => e.dpop_challenge(),
        });
    }
    Ok(Some((scheme, crate::secret::Secret::new(token))))
}

/// A JSON response that must not be cached (token, introspection, registration responses).
pub fn no_store_json(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}
