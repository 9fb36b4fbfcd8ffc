//! What the browser-facing endpoints (authorize, account) share: cookies, form bodies that
//! answer with an error page instead of JSON, and turning a flow [`Step`] into a response.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

use super::pages;
use crate::domain::params::Params;
use crate::domain::session::Session;
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::service::App;
use crate::service::authorize::{Outcome, Step};

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<Secret> {
    cookie_up_to(headers, name, 100)
}

/// [`cookie`], for a value of up to `max` bytes (the console's session holds an access token).
pub(crate) fn cookie_up_to(headers: &HeaderMap, name: &str, max: usize) -> Option<Secret> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| Secret::new(v.trim()))
        .filter(|s| !s.expose().is_empty() && s.expose().len() <= max)
}

/// `__Host-` prefixed when cookies are `Secure` (no Domain, Path=/), plain on a loopback http
/// issuer where browsers would refuse the prefix.
pub(crate) fn name(app: &App, base: &str) -> String {
    if app.config.secure_cookies() {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

pub fn browser_cookie_name(app: &App) -> String {
    name(app, "bulwark_bid")
}

pub fn session_cookie_name(app: &App, tenant: &str) -> String {
    name(app, &format!("bulwark_session_{tenant}"))
}

pub(crate) fn set_cookie(app: &App, name: &str, value: &str, max_age: Option<i64>) -> Option<HeaderValue> {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if app.config.secure_cookies() {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).ok()
}

/// The browser-binding cookie: the one the request carries, or a new one to set.
pub fn browser_id(app: &App, headers: &HeaderMap) -> (Secret, Option<HeaderValue>) {
    match cookie(headers, &browser_cookie_name(app)) {
        Some(b) => (b, None),
        None => {
            let b = crate::secret::generate();
            let header = set_cookie(app, &browser_cookie_name(app), b.expose(), None);
            (b, header)
        }
    }
}

pub fn session_cookie_header(app: &App, cookie: &Secret, s: &Session) -> Option<HeaderValue> {
    set_cookie(
        app,
        &session_cookie_name(app, &s.tenant),
        cookie.expose(),
        Some((s.expires_at - app.now()).max(0)),
    )
}

pub fn clear_session_cookie(app: &App, tenant: &str) -> Option<HeaderValue> {
    set_cookie(app, &session_cookie_name(app, tenant), "", Some(0))
}

pub fn with_cookies(mut resp: Response, cookies: impl IntoIterator<Item = Option<HeaderValue>>) -> Response {
    for c in cookies.into_iter().flatten() {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// 303 See Other to `location`, not cached.
pub fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// The CSRF token of forms shown to the browser with binding cookie `browser` (the services
/// check it with `domain::csrf::check`).
pub fn csrf_for(browser: &Secret) -> String {
    crate::domain::csrf::token(browser.expose())
}

/// Render a flow step for the browser with binding cookie `browser`.
pub fn render(app: &App, step: Step, browser: &Secret) -> Response {
    let action = app.config.endpoint("/oauth2/authorize");
    let resp = match &step.outcome {
        Outcome::Redirect(to) => see_other(to),
        Outcome::Refused(why) => {
            let (status, message) = pages::refusal(*why);
            pages::error_page(status, message)
        }
        Outcome::NeedLogin(l) => {
            let view = pages::LoginView {
                client_name: l.client_name.clone(),
                username: &l.username,
                failure: l.failure,
                csrf: &csrf_for(browser),
                redirect_uri: Some(&l.redirect_uri),
            };
            let hidden = [("action", "login"), ("interaction", l.pending_id.as_str())];
            pages::login_page(&view, &action, &hidden)
        }
        Outcome::NeedConsent(c) => pages::consent_page(c, &csrf_for(browser), &action),
    };
    let cookie = step
        .new_session
        .as_ref()
        .and_then(|(c, s)| session_cookie_header(app, c, s));
    with_cookies(resp, [cookie])
}

/// A backend failure on a browser endpoint: a 503 page, no internals.
pub fn failure_page(e: OAuthError) -> Response {
    let status = e.status.as_u16();
    let msg = if status == 503 {
        "The service is temporarily unavailable. Please try again in a moment."
    } else {
        "The server could not complete the request."
    };
    let mut resp = pages::error_page(if status == 503 { 503 } else { 500 }, msg);
    if status == 503 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// A form body (or a query string, for GET) as [`Params`], answering bad input with an error page.
pub struct PageForm {
    pub params: Params,
    pub headers: HeaderMap,
    /// Whether the parameters came in a POST body (credentials and consent answers are taken
    /// from nothing else: a query string ends up in logs, history and `Referer`s).
    pub posted: bool,
}

impl<S: Send + Sync> FromRequest<S> for PageForm {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Response> {
        if req.method() == axum::http::Method::GET {
            let q = req.uri().query().unwrap_or("").as_bytes().to_vec();
            let params = Params::parse(&q)
                .map_err(|e| pages::error_page(400, &format!("The request is malformed: {e}.")))?;
            return Ok(Self {
                params,
                headers: req.headers().clone(),
                posted: false,
            });
        }
        if !super::content_type_is(req.headers(), "application/x-www-form-urlencoded") {
            return Err(pages::error_page(400, "The form could not be read."));
        }
        let (parts, bytes) = super::body_bytes(req)
            .await
            .map_err(|e| pages::error_page(e.status.as_u16(), "The form could not be read."))?;
        let params = Params::parse(&bytes)
            .map_err(|e| pages::error_page(400, &format!("The form is malformed: {e}.")))?;
        Ok(Self {
            params,
            headers: parts.headers,
            posted: true,
        })
    }
}

/// The ids a page's link or form names (`client_id`, `agent_id`): in its query string, where
/// every page puts them (`links`), or in the path of a route kept for links made before
/// (`/account/apps/{client_id}/revoke`), which axum has percent-decoded. A path parameter wins
/// over a query parameter of the same name.
pub struct Ids {
    path: BTreeMap<String, String>,
    query: Params,
}

impl Ids {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.path
            .get(name)
            .map(String::as_str)
            .or_else(|| self.query.get(name))
            .filter(|v| !v.is_empty())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        // No path parameters (the query-string routes) is no path id; one that does not
        // decode (invalid UTF-8) names nothing.
        let path = Path::<BTreeMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| p)
            .unwrap_or_default();
        let query = Params::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map_err(|e| pages::error_page(400, &format!("The request is malformed: {e}.")))?;
        Ok(Self { path, query })
    }
}
