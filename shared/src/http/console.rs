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
use crate::domain::params::Params;
use crate::domain::tenant::{DcrPolicy, TenantId};
use crate::error::OAuthError;
use crate::secret::{Secret, ct_eq_str};
use crate::service::admin::{self as svc, AuditFilter, PolicyChanges};
use crate::service::admin::{Refused, caller};
use crate::service::console as con;
use crate::service::tenants::AdminError;
use crate::service::{App, users};

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
    fn tenant(&self) -> &str {
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
        let mut q = vec![("tenant", self.tenant())];
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
    let admin = match caller(app, token.expose()).await {
        // An operator's admin-client token in a cookie is not a console session.
        Ok(a) if a.tenant == tenant.as_str() && a.console => a,
        Ok(_) | Err(Refused::Invalid | Refused::Forbidden) => return Err(NoSession::SignIn(tenant)),
        Err(Refused::Backend(e)) => return Err(NoSession::Failed(e)),
    };
    let who = match crate::service::users::display_name(app, &admin.actor).await {
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
                    see_other(&con::authorize_url(&app, tenant.as_str(), &flow)),
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
    match con::redeem(&app, tenant.as_str(), code, &flow.verifier).await {
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
        .unwrap_or_else(|| c.client_id.clone())
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

// ---- apps ------------------------------------------------------------------------------------

struct AppRowView {
    client_id: String,
    href: String,
    name: String,
    kind: &'static str,
    scopes: Vec<String>,
    created: String,
    last_used: String,
    users: String,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsBody {
    new_href: String,
    rows: Vec<AppRowView>,
    next_href: Option<String>,
}

const PAGE: usize = 50;

async fn apps(StateX(app): StateX<State>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    let (rows, next) = match con::apps(&app, s.tenant(), cursor_of(&q).as_deref(), PAGE).await {
        Ok(r) => r,
        Err(AdminError::BadCursor) => (Vec::new(), None),
        Err(e) => {
            return admin_error(e)
                .err()
                .unwrap_or_else(|| pages::error_page(400, "The page could not be shown."));
        }
    };
    let rows = rows
        .into_iter()
        .map(|r| AppRowView {
            name: app_name(&r.client),
            kind: con::kind(&r.client),
            scopes: r.client.metadata.scopes().iter().map(str::to_string).collect(),
            created: date(r.client.issued_at),
            last_used: when(r.last_used),
            users: if r.more_users {
                format!("{}+", r.users)
            } else {
                r.users.to_string()
            },
            disabled: r.client.disabled,
            href: s.app_url("/console/app", &r.client.client_id),
            client_id: r.client.client_id,
        })
        .collect();
    let body = render(&AppsBody {
        new_href: s.url("/console/apps/new"),
        rows,
        next_href: next_href(&s, "/console/apps", &[], next),
    });
    console_page(&s, 200, "Connected Apps", "apps", notice_of(&q), None, &body)
}

struct ScopeChoice {
    name: String,
    description: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "console/app_new.html")]
struct NewAppBody<'a> {
    action: String,
    cancel_href: String,
    csrf: &'a str,
    name: &'a str,
    kind: &'a str,
    redirect_uris: &'a str,
    scopes: Vec<ScopeChoice>,
}

async fn new_app_form(app: &App, s: &Session, form: Option<&Params>, error: Option<&str>) -> Response {
    let tenant = match svc::tenant(app, s.tenant()).await {
        Ok(t) => t.value,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let get = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("");
    let scopes = tenant
        .scopes
        .iter()
        .filter(|(n, _)| {
            !n.starts_with(RESERVED_SCOPE_PREFIX) && n.as_str() != "openid" && n.as_str() != "offline_access"
        })
        .map(|(n, d)| ScopeChoice {
            checked: form.is_some_and(|f| f.get(&format!("scope.{n}")).is_some()),
            name: n.clone(),
            description: d.clone(),
        })
        .collect();
    let body = render(&NewAppBody {
        action: s.url("/console/apps"),
        cancel_href: s.url("/console/apps"),
        csrf: &s.csrf(),
        name: get("name"),
        kind: get("kind"),
        redirect_uris: get("redirect_uris"),
        scopes,
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Create application",
        "apps",
        None,
        error,
        &body,
    )
}

async fn new_app(StateX(app): StateX<State>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    match page_session(&app, &query, &headers).await {
        Ok(s) => new_app_form(&app, &s, None, None).await,
        Err(r) => r,
    }
}

#[derive(Template)]
#[template(path = "console/secret.html")]
struct SecretBody<'a> {
    app_href: String,
    heading: &'a str,
    name: &'a str,
    client_id: &'a str,
    secret: &'a str,
    grace: Option<String>,
    token_endpoint: &'a str,
}

/// The page that shows a secret, once (never cached: `pages::page` sends `no-store`).
fn secret_page(app: &App, s: &Session, heading: &str, c: &Client, secret: &Secret) -> Response {
    let grace = c
        .previous_secret_hash
        .as_ref()
        .filter(|_| c.previous_secret_until > app.now())
        .map(|_| format!("keeps working until {}", date(c.previous_secret_until)));
    let body = render(&SecretBody {
        app_href: s.app_url("/console/app", &c.client_id),
        heading,
        name: &app_name(c),
        client_id: &c.client_id,
        secret: secret.expose(),
        grace,
        token_endpoint: &app.config.endpoint("/oauth2/token"),
    });
    console_page(s, 200, heading, "apps", None, None, &body)
}

/// `POST /console/apps`: create an app from the form; its secret is shown once.
async fn create_app(StateX(app): StateX<State>, RawQuery(query): RawQuery, form: PageForm) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let tenant = match svc::tenant(&app, s.tenant()).await {
        Ok(t) => t.value,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let scope: Vec<&str> = tenant
        .scopes
        .keys()
        .filter(|n| p.get(&format!("scope.{n}")).is_some())
        .map(String::as_str)
        .collect();
    let mut body = json!({
        "client_name": p.get("name").unwrap_or("").trim(),
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": scope.join(" "),
    });
    match p.get("kind") {
        Some("users") => {
            let uris: Vec<&str> = p
                .get("redirect_uris")
                .unwrap_or("")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            body["grant_types"] = json!(["authorization_code", "refresh_token"]);
            body["response_types"] = json!(["code"]);
            body["redirect_uris"] = json!(uris);
        }
        Some("own") => {
            body["grant_types"] = json!(["client_credentials"]);
            body["response_types"] = json!([]);
        }
        _ => return new_app_form(&app, &s, Some(p), Some("Choose how the app acts.")).await,
    }
    if body["client_name"].as_str().is_some_and(str::is_empty) {
        return new_app_form(&app, &s, Some(p), Some("Give the app a name.")).await;
    }
    match svc::create_client(&app, s.tenant(), &body, &s.admin.actor).await {
        Ok(reg) => match &reg.secret {
            Some(secret) => secret_page(&app, &s, "Application created", &reg.client, secret),
            None => see_other(&s.app_url("/console/app", &reg.client.client_id)),
        },
        Err(e) => match admin_error(e) {
            Ok(msg) => new_app_form(&app, &s, Some(p), Some(&msg)).await,
            Err(r) => r,
        },
    }
}

#[derive(Template)]
#[template(path = "console/app.html")]
struct AppBody<'a> {
    all_href: String,
    secret_action: String,
    toggle_action: String,
    delete_href: String,
    csrf: &'a str,
    client_id: &'a str,
    name: String,
    kind: &'static str,
    scopes: Vec<String>,
    redirect_uris: &'a [String],
    auth_method: &'a str,
    created: String,
    last_used: String,
    grace: Option<String>,
    /// (href, name) of the app it is an agent of.
    agent_of: Option<(String, String)>,
    disabled: bool,
    managed: bool,
    has_secret: bool,
    users: Vec<(String, String)>,
    more_users: String,
    /// (href, client id, name) of each of its agents.
    agents: Vec<(String, String, String)>,
}

async fn app_view(app: &App, s: &Session, client_id: &str, error: Option<&str>) -> Response {
    let d = match con::app_detail(app, s.tenant(), client_id).await {
        Ok(d) => d,
        Err(AdminError::NotFound(_)) => {
            return console_page(
                s,
                404,
                "Not found",
                "apps",
                None,
                Some("There is no such application."),
                "",
            );
        }
        Err(e) => {
            return admin_error(e)
                .err()
                .unwrap_or_else(|| pages::error_page(400, "The page could not be shown."));
        }
    };
    let c = &d.client;
    let now = app.now();
    let body = render(&AppBody {
        all_href: s.url("/console/apps"),
        secret_action: s.app_url("/console/app/secret", &c.client_id),
        toggle_action: s.app_url(
            if c.disabled {
                "/console/app/enable"
            } else {
                "/console/app/disable"
            },
            &c.client_id,
        ),
        delete_href: s.app_url("/console/app/delete", &c.client_id),
        csrf: &s.csrf(),
        client_id: &c.client_id,
        name: app_name(c),
        kind: con::kind(c),
        scopes: c.metadata.scopes().iter().map(str::to_string).collect(),
        redirect_uris: &c.metadata.redirect_uris,
        auth_method: c.metadata.token_endpoint_auth_method.as_str(),
        created: date(c.issued_at),
        last_used: when(d.last_used),
        grace: c
            .previous_secret_hash
            .as_ref()
            .filter(|_| c.previous_secret_until > now)
            .map(|_| format!("keeps working until {}", date(c.previous_secret_until))),
        agent_of: d
            .agent_of
            .as_ref()
            .map(|a| (s.app_url("/console/app", &a.client_id), app_name(a))),
        disabled: c.disabled,
        managed: c.metadata.scopes().contains(ADMIN_SCOPE),
        has_secret: c.secret_hash.is_some(),
        users: d
            .users
            .iter()
            .map(|u| {
                (
                    u.name
                        .clone()
                        .map_or_else(|| u.username.clone(), |n| format!("{n} ({})", u.username)),
                    u.email.clone().unwrap_or_default(),
                )
            })
            .collect(),
        more_users: if d.more_beyond {
            format!("{} or more", d.more_users.max(1))
        } else {
            d.more_users.to_string()
        },
        agents: d
            .agents
            .iter()
            .map(|a| {
                (
                    s.app_url("/console/app", &a.client_id),
                    a.client_id.clone(),
                    app_name(a),
                )
            })
            .collect(),
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        &app_name(c),
        "apps",
        None,
        error,
        &body,
    )
}

async fn app_page(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match page_session(&app, &query, &headers).await {
        Ok(s) => app_view(&app, &s, app_id(&ids), None).await,
        Err(r) => r,
    }
}

async fn rotate(StateX(app): StateX<State>, ids: Ids, RawQuery(query): RawQuery, form: PageForm) -> Response {
    let client_id = app_id(&ids);
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let grace = form
        .params
        .get("grace_seconds")
        .and_then(|g| g.parse::<i64>().ok())
        .unwrap_or(86_400);
    match svc::rotate_secret(&app, s.tenant(), client_id, grace, &s.admin.actor, false).await {
        Ok((secret, c)) => secret_page(&app, &s, "New secret", &c, &secret),
        Err(e) => match admin_error(e) {
            Ok(msg) => app_view(&app, &s, client_id, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

async fn set_disabled(
    app: &App,
    query: &Option<String>,
    form: &PageForm,
    client_id: &str,
    disabled: bool,
) -> Response {
    let s = match form_session(app, query, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let patch = json!({"disabled": disabled});
    match svc::patch_client(app, s.tenant(), client_id, None, &patch, &s.admin.actor).await {
        Ok(_) => see_other(&s.url_with(
            "/console/apps",
            &[("notice", if disabled { "disabled" } else { "enabled" })],
        )),
        Err(e) => match admin_error(e) {
            Ok(msg) => app_view(app, &s, client_id, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

async fn disable(StateX(app): StateX<State>, ids: Ids, RawQuery(q): RawQuery, form: PageForm) -> Response {
    set_disabled(&app, &q, &form, app_id(&ids), true).await
}

async fn enable(StateX(app): StateX<State>, ids: Ids, RawQuery(q): RawQuery, form: PageForm) -> Response {
    set_disabled(&app, &q, &form, app_id(&ids), false).await
}

#[derive(Template)]
#[template(path = "console/confirm_delete.html")]
struct ConfirmDeleteBody<'a> {
    action: String,
    cancel_href: String,
    csrf: &'a str,
    client_id: &'a str,
    name: String,
    agents: usize,
}

async fn confirm_delete(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let d = match con::app_detail(&app, s.tenant(), app_id(&ids)).await {
        Ok(d) => d,
        Err(e) => {
            return match admin_error(e) {
                Ok(msg) => console_page(&s, 404, "Not found", "apps", None, Some(&msg), ""),
                Err(r) => r,
            };
        }
    };
    let body = render(&ConfirmDeleteBody {
        action: s.app_url("/console/app/delete", &d.client.client_id),
        cancel_href: s.app_url("/console/app", &d.client.client_id),
        csrf: &s.csrf(),
        client_id: &d.client.client_id,
        name: app_name(&d.client),
        agents: d.agents.len(),
    });
    console_page(&s, 200, "Delete application", "apps", None, None, &body)
}

async fn delete(StateX(app): StateX<State>, ids: Ids, RawQuery(query): RawQuery, form: PageForm) -> Response {
    let client_id = app_id(&ids);
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match svc::delete_client(&app, s.tenant(), client_id, &s.admin.actor).await {
        Ok(()) => see_other(&s.url_with("/console/apps", &[("notice", "deleted")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => app_view(&app, &s, client_id, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

// ---- users -----------------------------------------------------------------------------------

struct UserRow {
    /// Where its Deactivate (or Reactivate) form posts.
    action: String,
    /// Its password reset form.
    reset_href: String,
    username: String,
    display: String,
    email: String,
    admin: bool,
    active: bool,
    created: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersBody<'a> {
    create_action: String,
    csrf: &'a str,
    rows: Vec<UserRow>,
    next_href: Option<String>,
    form_username: &'a str,
    form_name: &'a str,
    form_email: &'a str,
}

async fn users_view(
    app: &App,
    s: &Session,
    cursor: Option<&str>,
    form: Option<&Params>,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (list, next) = match svc::list_users(app, s.tenant(), cursor, PAGE).await {
        Ok(r) => r,
        Err(AdminError::BadCursor) => (Vec::new(), None),
        Err(e) => {
            return admin_error(e)
                .err()
                .unwrap_or_else(|| pages::error_page(400, "The page could not be shown."));
        }
    };
    let rows = list
        .into_iter()
        .map(|u| UserRow {
            is_me: u.sub == s.admin.actor,
            action: s.url(&format!(
                "/console/users/{}/{}",
                links::segment(&u.sub),
                if u.active { "deactivate" } else { "reactivate" }
            )),
            reset_href: s.url(&format!("/console/users/{}/password", links::segment(&u.sub))),
            display: u.name.clone().unwrap_or_else(|| u.username.clone()),
            email: u.email.clone().unwrap_or_default(),
            admin: u.admin,
            active: u.active,
            created: date(u.created_at),
            username: u.username,
        })
        .collect();
    let get = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("");
    let body = render(&UsersBody {
        create_action: s.url("/console/users"),
        csrf: &s.csrf(),
        rows,
        next_href: next_href(s, "/console/users", &[], next),
        form_username: get("username"),
        form_name: get("name"),
        form_email: get("email"),
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Users",
        "users",
        notice,
        error,
        &body,
    )
}

async fn users_page(StateX(app): StateX<State>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    users_view(&app, &s, cursor_of(&q).as_deref(), None, notice_of(&q), None).await
}

async fn create_user(StateX(app): StateX<State>, RawQuery(query): RawQuery, form: PageForm) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let password = Secret::new(p.get("password").unwrap_or(""));
    let created = users::create_by(
        &app,
        users::NewUser {
            tenant: s.tenant(),
            username: p.get("username").unwrap_or(""),
            password: &password,
            email: p.get("email").map(str::trim).filter(|e| !e.is_empty()),
            name: p.get("name").map(str::trim).filter(|n| !n.is_empty()),
            admin: p.get("admin").is_some(),
        },
        &s.admin.actor,
    )
    .await;
    match created {
        Ok(_) => see_other(&s.url_with("/console/users", &[("notice", "user-created")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => users_view(&app, &s, None, Some(p), None, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

async fn set_active(app: &App, query: &Option<String>, form: &PageForm, sub: &str, active: bool) -> Response {
    let s = match form_session(app, query, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if sub == s.admin.actor && !active {
        return users_view(app, &s, None, None, None, Some("You cannot deactivate yourself.")).await;
    }
    match svc::set_active(app, s.tenant(), sub, active, &s.admin.actor).await {
        Ok(_) => see_other(&s.url_with(
            "/console/users",
            &[("notice", if active { "reactivated" } else { "deactivated" })],
        )),
        Err(e) => match admin_error(e) {
            Ok(msg) => users_view(app, &s, None, None, None, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

async fn deactivate(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(q): RawQuery,
    form: PageForm,
) -> Response {
    set_active(&app, &q, &form, &sub, false).await
}

async fn reactivate(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(q): RawQuery,
    form: PageForm,
) -> Response {
    set_active(&app, &q, &form, &sub, true).await
}

#[derive(Template)]
#[template(path = "console/password.html")]
struct PasswordBody<'a> {
    action: String,
    cancel_href: String,
    csrf: &'a str,
    username: &'a str,
    display: String,
    is_me: bool,
    sign_out_everywhere: bool,
}

/// The password reset form: "Sign out everywhere" is checked unless the administrator
/// unchecked it in the form shown again.
async fn password_view(
    app: &App,
    s: &Session,
    sub: &str,
    sign_out_everywhere: bool,
    error: Option<&str>,
) -> Response {
    let u = match svc::user(app, s.tenant(), sub).await {
        Ok(u) => u.value,
        Err(e) => {
            return match admin_error(e) {
                Ok(msg) => console_page(s, 404, "Not found", "users", None, Some(&msg), ""),
                Err(r) => r,
            };
        }
    };
    let body = render(&PasswordBody {
        action: s.url(&format!("/console/users/{}/password", links::segment(&u.sub))),
        cancel_href: s.url("/console/users"),
        csrf: &s.csrf(),
        username: &u.username,
        display: u.name.clone().unwrap_or_else(|| u.username.clone()),
        is_me: u.sub == s.admin.actor,
        sign_out_everywhere,
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Reset password",
        "users",
        None,
        error,
        &body,
    )
}

async fn password_page(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match page_session(&app, &query, &headers).await {
        Ok(s) => password_view(&app, &s, &sub, true, None).await,
        Err(r) => r,
    }
}

/// `POST /console/users/{user_id}/password`: a new password (their sessions end) and, when
/// "Sign out everywhere" is checked, every grant of theirs too (`service::admin::patch_user`).
async fn set_password(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let everywhere = p.get("sign_out_everywhere").is_some();
    let changes = svc::UserChanges {
        password: Some(Secret::new(p.get("password").unwrap_or(""))),
        sign_out_everywhere: everywhere,
        ..Default::default()
    };
    match svc::patch_user(&app, s.tenant(), &sub, None, changes, &s.admin.actor).await {
        Ok(_) => see_other(&s.url_with(
            "/console/users",
            &[(
                "notice",
                if everywhere {
                    "signed-out-everywhere"
                } else {
                    "password-set"
                },
            )],
        )),
        Err(e) => match admin_error(e) {
            Ok(msg) => password_view(&app, &s, &sub, everywhere, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

// ---- audit -----------------------------------------------------------------------------------

struct AuditRow {
    at: String,
    kind: String,
    actor: String,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditBody<'a> {
    action: String,
    tenant: &'a str,
    kind: &'a str,
    subject: &'a str,
    since_days: &'a str,
    since_options: [(&'static str, &'static str); 5],
    rows: Vec<AuditRow>,
    next_href: Option<String>,
}

async fn audit(StateX(app): StateX<State>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    let kind = q.get("kind").map(str::trim).unwrap_or("");
    let subject = q.get("subject").map(str::trim).unwrap_or("");
    let since_days = q.get("since_days").unwrap_or("");
    let days = since_days.parse::<i64>().ok().filter(|d| (1..=366).contains(d));
    let filter = AuditFilter {
        kind: (!kind.is_empty()).then(|| kind.chars().take(64).collect()),
        subject: (!subject.is_empty()).then(|| subject.chars().take(256).collect()),
        since: days.map(|d| app.now() - d * 86_400),
        until: None,
    };
    let (events, next) = match svc::audit(&app, s.tenant(), &filter, cursor_of(&q).as_deref(), PAGE).await {
        Ok(r) => r,
        Err(AdminError::BadCursor) => (Vec::new(), None),
        Err(e) => {
            return admin_error(e)
                .err()
                .unwrap_or_else(|| pages::error_page(400, "The page could not be shown."));
        }
    };
    let rows = events
        .into_iter()
        .map(|e| AuditRow {
            at: date(e.at),
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            detail: e.detail.unwrap_or_default(),
        })
        .collect();
    let body = render(&AuditBody {
        action: links::url(&s.base, "/console/audit", &[]),
        tenant: s.tenant(),
        kind,
        subject,
        since_days,
        since_options: [
            ("", "All time"),
            ("1", "Last day"),
            ("7", "Last 7 days"),
            ("30", "Last 30 days"),
            ("90", "Last 90 days"),
        ],
        rows,
        next_href: next_href(
            &s,
            "/console/audit",
            &[("kind", kind), ("subject", subject), ("since_days", since_days)],
            next,
        ),
    });
    console_page(&s, 200, "Audit log", "audit", None, None, &body)
}

// ---- policy ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyBody<'a> {
    action: String,
    csrf: &'a str,
    version: u64,
    dcr: &'a str,
    dcr_options: [(&'static str, &'static str); 3],
    password_grant: bool,
    allowlist_on: bool,
    apps: Vec<(String, String, bool)>,
    more_apps: bool,
}

/// Apps listed on the policy page.
const POLICY_APPS: usize = 200;

fn dcr_name(p: DcrPolicy) -> &'static str {
    match p {
        DcrPolicy::Open => "open",
        DcrPolicy::Token => "token",
        DcrPolicy::Closed => "closed",
    }
}

async fn policy_view(app: &App, s: &Session, notice: Option<&str>, error: Option<&str>) -> Response {
    let t = match svc::tenant(app, s.tenant()).await {
        Ok(t) => t,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let (clients, next) = match svc::list_clients(app, s.tenant(), None, POLICY_APPS).await {
        Ok(r) => r,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let list = t.value.app_allowlist.as_ref();
    let apps = clients
        .iter()
        .filter(|c| c.agent_of.is_none())
        .map(|c| {
            (
                c.client_id.clone(),
                app_name(c),
                list.is_some_and(|l| l.contains(&c.client_id)),
            )
        })
        .collect();
    let body = render(&PolicyBody {
        action: s.url("/console/policy"),
        csrf: &s.csrf(),
        version: t.version,
        dcr: dcr_name(t.value.dcr_policy),
        dcr_options: [
            ("open", "Open: any app may register"),
            ("token", "With an initial access token"),
            ("closed", "Closed: administrators register apps"),
        ],
        password_grant: t.value.password_grant,
        allowlist_on: list.is_some(),
        apps,
        more_apps: next.is_some(),
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Policy",
        "policy",
        notice,
        error,
        &body,
    )
}

async fn policy(StateX(app): StateX<State>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    policy_view(&app, &s, notice_of(&q), None).await
}

async fn save_policy(StateX(app): StateX<State>, RawQuery(query): RawQuery, form: PageForm) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let result = async {
        let t = svc::tenant(&app, s.tenant()).await?;
        let (clients, _) = svc::list_clients(&app, s.tenant(), None, POLICY_APPS).await?;
        let shown: std::collections::BTreeSet<&str> = clients.iter().map(|c| c.client_id.as_str()).collect();
        let allowlist = if p.get("allowlist").is_some() {
            // The apps checked here, and those on the list that this page did not show.
            let mut ids: Vec<String> = clients
                .iter()
                .filter(|c| p.get(&format!("app.{}", c.client_id)).is_some())
                .map(|c| c.client_id.clone())
                .collect();
            if let Some(old) = &t.value.app_allowlist {
                ids.extend(old.iter().filter(|id| !shown.contains(id.as_str())).cloned());
            }
            Some(ids)
        } else {
            None
        };
        let dcr = match p.get("dcr") {
            Some("open") => Some(DcrPolicy::Open),
            Some("token") => Some(DcrPolicy::Token),
            Some("closed") => Some(DcrPolicy::Closed),
            _ => {
                return Err(AdminError::Field(
                    "dcr".into(),
                    "Choose a registration policy.".into(),
                ));
            }
        };
        let version = p.get("version").and_then(|v| v.parse::<u64>().ok());
        let changes = PolicyChanges {
            dcr,
            password_grant: Some(p.get("password_grant").is_some()),
            app_allowlist: Some(allowlist),
            ..PolicyChanges::default()
        };
        svc::patch_policy(&app, s.tenant(), version, changes, &s.admin.actor).await
    }
    .await;
    match result {
        Ok(_) => see_other(&s.url_with("/console/policy", &[("notice", "policy")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => policy_view(&app, &s, None, Some(&msg)).await,
            Err(r) => r,
        },
    }
}
