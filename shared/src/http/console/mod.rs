//! The Connected Apps console (`/console?tenant=T`, the `console` Lambda function): server-
//! rendered pages for a tenant's administrators, in the style of the login and consent pages
//! (the same strict CSP, no external assets, no JavaScript, a CSRF token in every form).
//!
//! Sign-in is an ordinary OAuth client's: the tenant's console client (`domain::console`)
//! sends the browser to our authorization endpoint with PKCE; the hosted login signs the user
//! in; the code comes back to `/console/callback`, which redeems it at our token endpoint over
//! HTTP (only the token function signs) for an access token with `bulwark:admin`, issued only
//! to users with the admin role. That token is the session: kept in an HttpOnly, SameSite=Lax
//! cookie, checked on every request exactly as the admin API checks a bearer token (so every
//! revocation cascade, a deactivation, or the loss of the role ends it at once), and its
//! expiry sends the browser through the (single sign-on) login again.
//!
//! Every change goes through `service::admin`, as the admin API's do.
//!
//! One app's page and actions name it in the query string (`/console/app?tenant=T&client_id=C`,
//! `/console/app/disable?...`): a metadata-document client's id is a URL (`links`). The routes
//! with the id in the path (`/console/apps/{client_id}`, `.../disable`, ...) stay for links
//! made before.

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State as StateX};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::browser::{Ids, PageForm, see_other, with_cookies};
use super::links;
use super::pages::{self, date, render};
use super::{State, finish};
use crate::domain::admin::Admin;
use crate::domain::client::{ADMIN_SCOPE, Client, RESERVED_SCOPE_PREFIX};
use crate::domain::console;
use crate::domain::id::{ClientId, Subject};
use crate::domain::params::Params;
use crate::domain::tenant::{DcrPolicy, TenantId};
use crate::error::OAuthError;
use crate::secret::{Secret, ct_eq_str};
use crate::service::admin::{self as svc, AuditFilter, PolicyChanges};
use crate::service::admin::{Refused, caller};
use crate::service::console as con;
use crate::service::tenants::AdminError;
use crate::service::{App, users};

mod apps;
mod audit;
mod people;
mod policy;

use apps::*;
use audit::*;
use people::*;
use policy::*;

pub fn router(state: State) -> Router {
    finish(
        Router::new()
            .route("/console", get(start))
            .route("/console/callback", get(callback))
            .route("/console/logout", post(logout))
            .route("/console/apps", get(apps).post(create_app))
            .route("/console/apps/new", get(new_app))
            .route("/console/app", get(app_page))
            .route("/console/app/secret", post(rotate))
            .route("/console/app/disable", post(disable))
            .route("/console/app/enable", post(enable))
            .route("/console/app/delete", get(confirm_delete).post(delete))
            // The same with the id in the path, for links made before.
            .route("/console/apps/{client_id}", get(app_page))
            .route("/console/apps/{client_id}/secret", post(rotate))
            .route("/console/apps/{client_id}/disable", post(disable))
            .route("/console/apps/{client_id}/enable", post(enable))
            .route(
                "/console/apps/{client_id}/delete",
                get(confirm_delete).post(delete),
            )
            .route("/console/users", get(users_page).post(create_user))
            .route(
                "/console/users/{user_id}/password",
                get(password_page).post(set_password),
            )
            .route("/console/users/{user_id}/deactivate", post(deactivate))
            .route("/console/users/{user_id}/reactivate", post(reactivate))
            .route("/console/audit", get(audit))
            .route("/console/policy", get(policy).post(save_policy))
            .route("/console/policy/issuers", post(add_issuer))
            .route("/console/policy/issuers/remove", post(remove_issuer))
            .with_state(state),
    )
}

// ---- cookies and the session --------------------------------------------------------------------

/// `bulwark_console_s_<tenant>`: a tenant id has no `_`, so no tenant's session cookie can be
/// the flow cookie (or another tenant's).
fn session_cookie(app: &App, tenant: &str) -> String {
    super::browser::name(app, &format!("bulwark_console_s_{tenant}"))
}

fn flow_cookie_name(app: &App) -> String {
    super::browser::name(app, "bulwark_console_flow")
}

/// A cookie's value (up to 4 KiB: a session cookie holds an access token).
fn read_cookie(headers: &HeaderMap, name: &str) -> Option<Secret> {
    super::browser::cookie_up_to(headers, name, 4096)
}

/// Our cookies: HttpOnly, `SameSite=Lax`, `Path=/`, `Secure` off loopback.
fn set_cookie(app: &App, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    super::browser::set_cookie(app, name, value, Some(max_age))
}

/// The tenant a request names (`?tenant=`), if it is a tenant id.
fn tenant_param(query: &Option<String>) -> Option<TenantId> {
    let q = Params::parse(query.as_deref().unwrap_or("").as_bytes()).ok()?;
    TenantId::parse(q.get("tenant")?).ok()
}

fn query_params(query: &Option<String>) -> Params {
    Params::parse(query.as_deref().unwrap_or("").as_bytes()).unwrap_or_default()
}

/// A signed-in administrator of the tenant a console page is for.
struct Session {
    admin: Admin,
    token: Secret,
    who: String,
    base: String,
}

impl Session {
    fn tenant(&self) -> &TenantId {
        &self.admin.tenant
    }
    fn csrf(&self) -> String {
        console::csrf(self.token.expose())
    }
    /// `path` of this tenant's console.
    fn url(&self, path: &str) -> String {
        self.url_with(path, &[])
    }
    /// `path` of this tenant's console, with `extra` query parameters after the tenant.
    fn url_with(&self, path: &str, extra: &[(&str, &str)]) -> String {
        let mut q = vec![("tenant", self.tenant().as_str())];
        q.extend_from_slice(extra);
        links::url(&self.base, path, &q)
    }
    /// `path` (`/console/app`, `/console/app/disable`, ...) for the app `client_id`.
    fn app_url(&self, path: &str, client_id: &str) -> String {
        self.url_with(path, &[("client_id", client_id)])
    }
}

/// The app a console request names (`?client_id=`, or the path of a link made before); none
/// is no app ("There is no such application").
fn app_id(ids: &Ids) -> &str {
    ids.get("client_id").unwrap_or_default()
}

/// Where the browser signs in to `tenant`'s console.
fn sign_in_url(app: &App, tenant: &TenantId) -> String {
    links::url(&app.config.issuer, "/console", &[("tenant", tenant.as_str())])
}

/// Why a console request gets no page.
enum NoSession {
    /// Not signed in (or the session ended): sign in again.
    SignIn(TenantId),
    /// No such tenant.
    NoTenant,
    Failed(OAuthError),
}

async fn session(app: &App, query: &Option<String>, headers: &HeaderMap) -> Result<Session, NoSession> {
    let Some(tenant) = tenant_param(query) else {
        return Err(NoSession::NoTenant);
    };
    let Some(token) = read_cookie(headers, &session_cookie(app, tenant.as_str())) else {
        return Err(NoSession::SignIn(tenant));
    };
    // The console's own token (a cookie) is never DPoP-bound.
    let admin = match caller(app, token.expose(), crate::service::dpop::Presented::Bearer, "").await {
        // An operator's admin-client token in a cookie is not a console session.
        Ok(a) if a.tenant == tenant.as_str() && a.console => a,
        Ok(_) | Err(Refused::Invalid | Refused::Forbidden | Refused::Presentation(_)) => {
            return Err(NoSession::SignIn(tenant));
        }
        Err(Refused::Backend(e)) => return Err(NoSession::Failed(e)),
    };
    let who = match crate::service::users::display_name(app, &Subject::from(admin.actor.as_str())).await {
        Ok(Some(name)) => name,
        Ok(None) => return Err(NoSession::SignIn(tenant)),
        Err(e) => return Err(NoSession::Failed(e)),
    };
    Ok(Session {
        admin,
        token,
        who,
        base: app.config.issuer.clone(),
    })
}

/// A GET page: the session, or a redirect to sign in.
async fn page_session(app: &App, query: &Option<String>, headers: &HeaderMap) -> Result<Session, Response> {
    session(app, query, headers).await.map_err(|n| match n {
        NoSession::SignIn(t) => see_other(&sign_in_url(app, &t)),
        NoSession::NoTenant => no_tenant(),
        NoSession::Failed(e) => super::browser::failure_page(e),
    })
}

/// A form POST: the session and the form, if its CSRF token is the session's.
async fn form_session(app: &App, query: &Option<String>, form: &PageForm) -> Result<Session, Response> {
    let s = session(app, query, &form.headers).await.map_err(|n| match n {
        NoSession::SignIn(t) => pages::error_page_with_link(
            401,
            "Your console session has ended. Sign in again; nothing was changed.",
            &sign_in_url(app, &t),
            "Sign in",
        ),
        NoSession::NoTenant => no_tenant(),
        NoSession::Failed(e) => super::browser::failure_page(e),
    })?;
    let ok = form.posted && crate::domain::csrf::check(form.params.get("csrf"), s.token.expose());
    if !ok {
        return Err(pages::error_page_with_link(
            400,
            "This form has expired. Reload the page and try again; nothing was changed.",
            &s.url("/console/apps"),
            "Back to the console",
        ));
    }
    Ok(s)
}

fn no_tenant() -> Response {
    pages::error_page(404, "There is no such organization. Check the link you followed.")
}

// ---- sign-in ----------------------------------------------------------------------------------

/// `GET /console?tenant=T`: the console, or the way to sign in to it.
async fn start(StateX(app): StateX<State>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    match session(&app, &query, &headers).await {
        Ok(s) => see_other(&s.url("/console/apps")),
        Err(NoSession::NoTenant) => no_tenant(),
        Err(NoSession::Failed(e)) => super::browser::failure_page(e),
        Err(NoSession::SignIn(tenant)) => {
            let result = async {
                if !crate::service::tenants::exists(&app, &tenant).await? {
                    return Ok(no_tenant());
                }
                con::ensure_client(&app, &tenant).await?;
                let secret = crate::secret::generate();
                let flow = console::flow(secret.expose());
                let value = console::flow_cookie(tenant.as_str(), secret.expose());
                Ok::<_, OAuthError>(with_cookies(
                    see_other(&con::authorize_url(&app, &tenant, &flow)),
                    [set_cookie(&app, &flow_cookie_name(&app), &value, 600)],
                ))
            }
            .await;
            result.unwrap_or_else(super::browser::failure_page)
        }
    }
}

/// `GET /console/callback?code&state` (or `?error`): the sign-in's end.
async fn callback(StateX(app): StateX<State>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let q = query_params(&query);
    let flow = read_cookie(&headers, &flow_cookie_name(&app));
    let parsed = flow
        .as_ref()
        .and_then(|f| console::parse_flow_cookie(f.expose()).map(|(t, s)| (t, console::flow(s))));
    let clear_flow = set_cookie(&app, &flow_cookie_name(&app), "", 0);
    let start_over = |tenant: Option<&TenantId>, message: &str| {
        let link = match tenant {
            Some(t) => sign_in_url(&app, t),
            None => app.config.issuer.clone(),
        };
        with_cookies(
            pages::error_page_with_link(400, message, &link, "Sign in again"),
            [clear_flow.clone()],
        )
    };
    // The state must be the one this browser's flow cookie derives (no login CSRF), and the
    // answer must come from us (RFC 9207).
    let Some((tenant, flow)) = parsed else {
        return start_over(
            None,
            "This sign-in has expired or was started in another browser.",
        );
    };
    if !q.get("state").is_some_and(|s| ct_eq_str(s, &flow.state)) {
        return start_over(
            Some(&tenant),
            "This sign-in has expired or was started in another browser.",
        );
    }
    if q.get("iss").is_some_and(|i| i != app.config.issuer) {
        return start_over(Some(&tenant), "The sign-in answer did not come from this server.");
    }
    if let Some(e) = q.get("error") {
        let msg = match e {
            "access_denied" => "Sign-in was cancelled.",
            _ => "The sign-in could not be completed.",
        };
        return start_over(Some(&tenant), msg);
    }
    let Some(code) = q.get("code") else {
        return start_over(Some(&tenant), "The sign-in could not be completed.");
    };
    match con::redeem(&app, &tenant, code, &flow.verifier).await {
        Ok(Some(signed)) => with_cookies(
            see_other(&links::url(
                &app.config.issuer,
                "/console/apps",
                &[("tenant", tenant.as_str())],
            )),
            [
                clear_flow,
                // SameSite=Lax, not Strict: a link from elsewhere (an email, a wiki) must find
                // the session, or every such visit would sign in again; the forms need the
                // CSRF token besides, and no GET changes anything.
                set_cookie(
                    &app,
                    &session_cookie(&app, tenant.as_str()),
                    signed.access_token.expose(),
                    signed.expires_in,
                ),
            ],
        ),
        Ok(None) => start_over(Some(&tenant), "The sign-in could not be completed."),
        Err(e) => with_cookies(super::browser::failure_page(e), [clear_flow]),
    }
}

/// `POST /console/logout`: the session's token is revoked and its cookie cleared.
async fn logout(StateX(app): StateX<State>, RawQuery(query): RawQuery, form: PageForm) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = async {
        // The single sign-on session ends too: "Sign in again" asks for the password.
        if let Some(sso) = super::browser::cookie(
            &form.headers,
            &super::browser::session_cookie_name(&app, s.tenant()),
        ) {
            users::end_session(&app, &sso).await?;
        }
        crate::service::console::sign_out(&app, &s.token).await?;
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => with_cookies(
            pages::message_page(
                200,
                "Signed out",
                "Signed out",
                "You are signed out of the console.",
                &s.url("/console"),
                "Sign in again",
            ),
            [
                set_cookie(&app, &session_cookie(&app, s.tenant()), "", 0),
                super::browser::clear_session_cookie(&app, s.tenant()),
            ],
        ),
        Err(e) => super::browser::failure_page(e),
    }
}

// ---- rendering ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/frame.html")]
struct Frame<'a> {
    tenant: &'a str,
    logout_action: String,
    who: &'a str,
    csrf: &'a str,
    tabs: Vec<(&'static str, &'static str, String)>,
    active: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    content: &'a str,
}

/// A console page: the navigation, a notice or an error, and `content` (rendered by its own
/// template). `status` 200 unless a form is shown again with an error.
fn console_page(
    s: &Session,
    status: u16,
    title: &str,
    active: &str,
    notice: Option<&str>,
    error: Option<&str>,
    content: &str,
) -> Response {
    let tabs = vec![
        ("apps", "Connected Apps", s.url("/console/apps")),
        ("users", "Users", s.url("/console/users")),
        ("audit", "Audit log", s.url("/console/audit")),
        ("policy", "Policy", s.url("/console/policy")),
    ];
    let body = render(&Frame {
        tenant: s.tenant(),
        logout_action: s.url("/console/logout"),
        who: &s.who,
        csrf: &s.csrf(),
        tabs,
        active,
        notice,
        error,
        content,
    });
    pages::page_in(status, title, &body, "console", None)
}

/// What a failed change tells the administrator (validation errors are theirs to fix; a
/// backend failure is a 503 page).
#[allow(clippy::result_large_err)] // a page either way; built once per request
fn admin_error(e: AdminError) -> Result<String, Response> {
    match e {
        AdminError::Invalid(m) => Ok(m),
        AdminError::Field(_, m) => Ok(m),
        AdminError::Exists(what) => Ok(format!("{what} already exists.")),
        AdminError::NotFound(what) => Ok(format!("That {what} no longer exists.")),
        AdminError::Stale => Ok("It changed while you were looking at it. Look again and retry.".into()),
        AdminError::Operator => Ok("Only the operator (the bulwark CLI) can change this.".into()),
        AdminError::OAuth(e) if e.status.as_u16() < 500 => Ok(e.description.to_string()),
        AdminError::OAuth(e) => Err(super::browser::failure_page(e)),
        AdminError::BadCursor => Ok("That page link is out of date: start from the first page.".into()),
        AdminError::Unavailable(e) => {
            tracing::error!(error = %e, "console: store unavailable");
            Err(super::browser::failure_page(OAuthError::unavailable()))
        }
    }
}

/// A page of a list, as a page shows it: a cursor the store did not issue shows the first page
/// empty; any other failure, an error page.
#[allow(clippy::result_large_err)] // a page either way; built once per request
fn list_page<T>(
    r: Result<(Vec<T>, Option<String>), AdminError>,
) -> Result<(Vec<T>, Option<String>), Response> {
    match r {
        Ok(page) => Ok(page),
        Err(AdminError::BadCursor) => Ok((Vec::new(), None)),
        Err(e) => Err(admin_error(e)
            .err()
            .unwrap_or_else(|| pages::error_page(400, "The page could not be shown."))),
    }
}

fn notice_of(q: &Params) -> Option<&'static str> {
    Some(match q.get("notice")? {
        "deleted" => "Application deleted. Its tokens no longer work.",
        "disabled" => "Application disabled. Its grants and tokens have ended.",
        "enabled" => "Application enabled.",
        "user-created" => "User created.",
        "deactivated" => "User deactivated. Their sessions, grants and tokens have ended.",
        "reactivated" => "User reactivated.",
        "password-set" => "Password set. Their sessions have ended.",
        "signed-out-everywhere" => {
            "Password set and signed out everywhere: their sessions, grants and tokens have ended."
        }
        "policy" => "Policy saved.",
        "issuer-trusted" => "Issuer trusted. Federated apps may now name it.",
        "issuer-removed" => "Issuer removed. Its tokens are refused from now on.",
        _ => return None,
    })
}

fn when(ts: Option<i64>) -> String {
    ts.map(date).unwrap_or_else(|| "never".into())
}

fn app_name(c: &Client) -> String {
    c.metadata
        .client_name
        .clone()
        .unwrap_or_else(|| c.client_id.to_string())
}

fn next_href(s: &Session, path: &str, extra: &[(&str, &str)], cursor: Option<String>) -> Option<String> {
    let cursor = super::links::encode_cursor(&cursor?);
    let mut q: Vec<(&str, &str)> = extra.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
    q.push(("cursor", &cursor));
    Some(s.url_with(path, &q))
}

/// A page's cursor; one that does not decode is the first page's.
fn cursor_of(q: &Params) -> Option<String> {
    super::links::decode_cursor(q.get("cursor")?)
}
