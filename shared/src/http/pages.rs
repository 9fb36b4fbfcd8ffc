//! Server-rendered pages: login, consent, account, error, and every word they say (the services
//! answer with what happened; the sentences are here). Plain HTML forms that work without
//! JavaScript; no external assets; one stylesheet inlined and allowed by its hash in the
//! Content-Security-Policy. The markup is in `shared/templates/`, compiled by askama, which
//! escapes every value by default (only the stylesheet, the logo and a page body already
//! rendered by a template are inserted as they are).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

use super::links;
use crate::domain::access::Denied;
use crate::domain::authorize::UntrustedRedirect;
use crate::service::account::ConnectedApp;
use crate::service::authorize::{AgentNames, ConsentRequest, PageRefusal, RequestedResource};
use crate::service::cimd;
use crate::service::device::{DeviceConsent, DeviceRefusal};
use crate::service::users::LoginFailure;

const CSS: &str = r#"
*{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1e293b;background:#f1f5f9}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;padding:48px 16px}
.brand{display:flex;align-items:center;gap:10px;font-weight:700;font-size:18px;letter-spacing:.2px;color:#0f172a;margin-bottom:24px}
.brand svg{width:28px;height:28px}
main{width:100%;max-width:420px;background:#fff;border:1px solid #e2e8f0;border-radius:14px;box-shadow:0 10px 30px rgba(15,23,42,.08);padding:32px}
main.wide{max-width:640px}
h1{font-size:22px;margin:0 0 6px}
p.lead{margin:0 0 22px;color:#475569;line-height:1.5}
label{display:block;font-weight:600;font-size:14px;margin:16px 0 6px}
input[type=text],input[type=password],input[type=email]{width:100%;padding:11px 12px;font-size:16px;border:1px solid #cbd5e1;border-radius:8px;background:#fff;color:#0f172a}
input:focus,button:focus{outline:3px solid #a5b4fc;outline-offset:1px;border-color:#4f46e5}
button{font:inherit;font-weight:600;font-size:15px;border-radius:8px;padding:11px 16px;cursor:pointer;border:1px solid transparent}
.primary{background:#4f46e5;color:#fff;width:100%;margin-top:22px}
.primary:hover{background:#4338ca}
.secondary{background:#fff;color:#334155;border-color:#cbd5e1}
.secondary:hover{background:#f8fafc}
.danger{background:#fff;color:#b91c1c;border-color:#fecaca;padding:7px 12px;font-size:14px}
.danger:hover{background:#fef2f2}
.danger.solid{background:#dc2626;color:#fff;border-color:#dc2626;padding:11px 16px;font-size:15px}
.danger.solid:hover{background:#b91c1c}
.row{display:flex;gap:12px;margin-top:24px}
.row button{flex:1}
.row .primary{margin-top:0}
.app.plain{margin:0;padding:0;border:0;background:none}
.alert{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;border-radius:8px;padding:10px 12px;margin:0 0 16px;font-size:14px}
.notice{background:#f0fdf4;border:1px solid #bbf7d0;color:#166534;border-radius:8px;padding:10px 12px;margin:0 0 16px;font-size:14px}
.app{display:flex;align-items:center;gap:14px;padding:14px;border:1px solid #e2e8f0;border-radius:10px;margin-bottom:18px;background:#f8fafc}
.avatar{flex:none;width:42px;height:42px;border-radius:10px;background:#e0e7ff;color:#3730a3;display:flex;align-items:center;justify-content:center;font-weight:700;font-size:18px}
.app .name{font-weight:700}
.app a,.muted a{color:#4f46e5}
.muted{color:#64748b;font-size:13px}
h2{font-size:14px;text-transform:uppercase;letter-spacing:.06em;color:#64748b;margin:20px 0 8px}
ul.scopes{list-style:none;margin:0;padding:0}
ul.scopes li{padding:9px 0 9px 26px;position:relative;border-bottom:1px solid #f1f5f9;line-height:1.4}
ul.scopes li:before{content:"";position:absolute;left:4px;top:15px;width:9px;height:9px;border-radius:50%;background:#4f46e5}
ul.scopes.old li:before{background:#94a3b8}
ul.scopes code{font-size:12px;color:#64748b;margin-left:6px}
ul.agents{list-style:none;margin:0;padding:0}
ul.agents li{display:flex;align-items:center;gap:8px;padding:8px 0;border-bottom:1px solid #f1f5f9}
ul.agents li form{margin-left:auto}
.card{border:1px solid #e2e8f0;border-radius:10px;padding:16px;margin-bottom:14px}
.card header{display:flex;justify-content:space-between;align-items:flex-start;gap:12px}
.topbar{display:flex;justify-content:space-between;align-items:center;margin-bottom:20px;gap:12px}
footer{margin-top:20px;color:#94a3b8;font-size:12px}
main.console{max-width:1080px;padding:0;overflow:hidden}
.console-nav{display:flex;align-items:center;gap:4px;padding:10px 16px;border-bottom:1px solid #e2e8f0;background:#f8fafc;flex-wrap:wrap}
.console-nav .org{font-weight:700;margin-right:14px;color:#0f172a}
.console-nav a{color:#334155;text-decoration:none;padding:8px 12px;border-radius:8px;font-weight:600;font-size:14px}
.console-nav a:hover{background:#eef2ff}
.console-nav a[aria-current=page]{background:#e0e7ff;color:#3730a3}
.console-nav form{margin-left:auto;display:flex;align-items:center;gap:10px}
.console-body{padding:24px 28px 28px}
.small{padding:7px 12px;font-size:14px}
a.button{display:inline-block;text-decoration:none;font-weight:600;font-size:15px;border-radius:8px;padding:10px 16px;border:1px solid transparent}
a.button.primary,button.primary.inline{width:auto;margin-top:0}
a.button.secondary{border-color:#cbd5e1}
a.button.danger{border-color:#fecaca;padding:10px 16px;font-size:15px}
a.button.small{padding:6px 12px;font-size:14px}
table.grid{width:100%;border-collapse:collapse;font-size:14px;margin-top:8px}
table.grid th{text-align:left;font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#64748b;font-weight:600;padding:8px 10px;border-bottom:1px solid #e2e8f0}
table.grid td{padding:10px;border-bottom:1px solid #f1f5f9;vertical-align:top}
table.grid a{color:#4338ca;font-weight:600;text-decoration:none}
table.grid a:hover{text-decoration:underline}
table.grid form{display:inline}
table.grid td.when{white-space:nowrap;color:#475569}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.mono{font-size:12px;color:#64748b}
code.chip{display:inline-block;background:#eef2ff;color:#3730a3;border-radius:6px;padding:2px 6px;margin:0 4px 4px 0;font-size:12px}
.badge{display:inline-block;border-radius:999px;padding:2px 8px;font-size:12px;font-weight:600;background:#dcfce7;color:#166534}
.badge.off{background:#fee2e2;color:#991b1b}
.badge.admin{background:#e0e7ff;color:#3730a3}
fieldset{border:1px solid #e2e8f0;border-radius:10px;margin:18px 0 0;padding:10px 14px 14px}
legend{font-weight:600;font-size:14px;padding:0 6px}
label.choice{display:flex;gap:10px;align-items:flex-start;font-weight:400;margin:10px 0 0}
label.choice input{margin-top:4px}
label.choice .muted{display:block}
textarea,select{width:100%;padding:10px 12px;font:inherit;font-size:15px;border:1px solid #cbd5e1;border-radius:8px;background:#fff;color:#0f172a}
.secret{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:15px;background:#0f172a;color:#e2e8f0;border-radius:8px;padding:12px 14px;word-break:break-all;user-select:all}
.warning{background:#fffbeb;border:1px solid #fde68a;color:#92400e;border-radius:8px;padding:10px 12px;margin:0 0 16px;font-size:14px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:8px 18px;margin:8px 0 0;font-size:14px}
dl.facts dt{color:#64748b}
dl.facts dd{margin:0}
.actions{display:flex;gap:10px;flex-wrap:wrap;align-items:flex-end;margin-top:10px}
.actions form{display:flex;gap:8px;align-items:flex-end}
.actions select{width:auto}
.filters{display:flex;gap:10px;align-items:flex-end;flex-wrap:wrap}
.filters label{margin:0 0 4px}
.filters input{width:auto}
.pager{margin-top:14px}
.pager a{color:#4338ca;font-weight:600}
section.panel{border:1px solid #e2e8f0;border-radius:10px;padding:16px 18px;margin-top:18px}
section.panel h2{margin-top:0}
"#;

static CSS_HASH: LazyLock<String> = LazyLock::new(|| {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()))
});

const LOGO: &str = r##"<svg viewBox="0 0 24 24" aria-hidden="true"><path fill="#4f46e5" d="M12 2 4 5v6c0 5 3.4 9.7 8 11 4.6-1.3 8-6 8-11V5l-8-3z"/><path fill="#fff" d="m10.6 15.6-3.2-3.2 1.4-1.4 1.8 1.8 4.6-4.6 1.4 1.4z"/></svg>"##;

#[derive(Template)]
#[template(path = "layout.html")]
struct Layout<'a> {
    title: &'a str,
    css: &'a str,
    logo: &'a str,
    /// The class of `<main>`: "", "wide" or "console".
    main_class: &'a str,
    /// A page body rendered (and escaped) by its own template.
    body: &'a str,
}

/// Render a body template; a template that cannot render (it cannot fail on these types) is
/// our plain error text rather than a panic.
pub(crate) fn render(t: &impl Template) -> String {
    t.render()
        .unwrap_or_else(|_| "<h1>Something went wrong</h1>".to_string())
}

/// A complete HTML response with the security headers every page carries. `form_origin` is
/// an extra origin forms may lead to (the consent answer redirects to the client).
pub fn page(status: u16, title: &str, body: &str, wide: bool, form_origin: Option<&str>) -> Response {
    page_in(status, title, body, if wide { "wide" } else { "" }, form_origin)
}

/// [`page`] with `<main class="{main_class}">`.
pub fn page_in(
    status: u16,
    title: &str,
    body: &str,
    main_class: &str,
    form_origin: Option<&str>,
) -> Response {
    let html = render(&Layout {
        title,
        css: CSS,
        logo: LOGO,
        main_class,
        body,
    });
    let form_action = match form_origin {
        Some(o) => format!("'self' {o}"),
        None => "'self'".into(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src 'self' data:; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'",
        *CSS_HASH
    );
    let mut resp = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        html,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorBody<'a> {
    heading: &'a str,
    message: &'a str,
    /// (href, text): one of our own pages to go on to.
    link: Option<(&'a str, &'a str)>,
}

/// Our own error page (never a redirect).
pub fn error_page(status: u16, message: &str) -> Response {
    let body = render(&ErrorBody {
        heading: "Something went wrong",
        message,
        link: None,
    });
    page(status, "Error", &body, false, None)
}

/// [`error_page`] with a link to one of our own pages (never a client's URI).
pub fn error_page_with_link(status: u16, message: &str, href: &str, text: &str) -> Response {
    message_page(status, "Error", "Something went wrong", message, href, text)
}

/// A page that says one thing and links to one of our own pages.
pub fn message_page(
    status: u16,
    title: &str,
    heading: &str,
    message: &str,
    href: &str,
    text: &str,
) -> Response {
    let body = render(&ErrorBody {
        heading,
        message,
        link: Some((href, text)),
    });
    page(status, title, &body, false, None)
}

/// What the authorization flow's refusal page says, and its status.
pub fn refusal(why: PageRefusal) -> (u16, &'static str) {
    const EXPIRED: &str = "This sign-in request has expired or was already answered. Go back to the application and start again.";
    match why {
        PageRefusal::NoClientId => (
            400,
            "The request does not name an application (client_id is missing).",
        ),
        PageRefusal::UnknownClient => (400, "The application that sent you here is not registered."),
        PageRefusal::Document(cimd::Refused::NotAccepted) => (
            400,
            "The application that sent you here identifies itself by a web address this organization does not accept.",
        ),
        PageRefusal::Document(cimd::Refused::Unavailable) => (
            400,
            "The application's description could not be loaded or is not valid. Try again later, or contact the application's developer.",
        ),
        PageRefusal::RedirectUri(UntrustedRedirect::NotRegistered) => {
            (400, "The redirect_uri is not one this application registered.")
        }
        PageRefusal::RedirectUri(UntrustedRedirect::Missing) => (
            400,
            "The request has no redirect_uri, and the application registered several.",
        ),
        PageRefusal::RequestExpired => (400, EXPIRED),
        PageRefusal::SessionEnded => (
            400,
            "Your session ended. Go back to the application and sign in again.",
        ),
        PageRefusal::NoDecision => (400, "Choose Allow or Deny."),
        PageRefusal::ClientGone => (400, "The application that sent you here is no longer registered."),
        PageRefusal::RegistrationChanged => (
            400,
            "The application changed its registration since this request began. Go back to the application and start again.",
        ),
        PageRefusal::NotPermitted(d) => (403, denied(d)),
        PageRefusal::PushedRequestUnusable => (
            400,
            "This sign-in request has expired, was already used, or was not made for this application. Go back to the application and start again.",
        ),
        PageRefusal::PushedRequestRequired => (
            400,
            "This application must send its sign-in request to the server directly (a pushed authorization request). Contact the application's developer.",
        ),
    }
}

/// What a user the tenant's administrator keeps from an app is told (no internals: only that
/// an administrator decided).
fn denied(d: Denied) -> &'static str {
    match d {
        Denied::NotOnAllowlist => "This app has not been approved by your administrator.",
        Denied::NotAuthorizedUser => "Your administrator has not allowed you to use this app.",
        Denied::NotAdministrator => {
            "Only this organization's administrators can sign in to the Connected Apps console."
        }
    }
}

/// What the login form says after a failed attempt.
pub fn login_failure(f: LoginFailure) -> String {
    match f {
        LoginFailure::BadCredentials => "The username or password is incorrect.".into(),
        LoginFailure::Locked { retry_after } => {
            let minutes = (retry_after + 59) / 60;
            format!(
                "Too many failed sign-in attempts for this account. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )
        }
    }
}

/// The origin (`scheme://host[:port]`) of a verified redirect URI, as a CSP source.
pub fn origin_of(uri: &str) -> Option<String> {
    url::Url::parse(uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginBody<'a> {
    client_name: &'a Option<String>,
    error: &'a Option<String>,
    action: &'a str,
    hidden: &'a [(&'a str, &'a str)],
    csrf: &'a str,
    username: &'a str,
}

/// What the sign-in form shows.
pub struct LoginView<'a> {
    /// The app the user signs in to (`None`: the account page).
    pub client_name: Option<String>,
    pub username: &'a str,
    pub failure: Option<LoginFailure>,
    pub csrf: &'a str,
    /// The redirect URI a login may answer with a 303 to (its origin joins `form-action`).
    pub redirect_uri: Option<&'a str>,
}

/// The sign-in form. `action` is where it posts; `hidden` are extra hidden fields.
pub fn login_page(v: &LoginView<'_>, action: &str, hidden: &[(&str, &str)]) -> Response {
    let error = v.failure.map(login_failure);
    let body = render(&LoginBody {
        client_name: &v.client_name,
        error: &error,
        action,
        hidden,
        csrf: v.csrf,
        username: v.username,
    });
    let origin = v.redirect_uri.and_then(origin_of);
    page(
        if error.is_some() { 401 } else { 200 },
        "Sign in",
        &body,
        false,
        origin.as_deref(),
    )
}

fn initial(name: &str) -> String {
    name.chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_else(|| "?".into())
}

#[derive(Template)]
#[template(path = "scopes.html")]
struct ScopeList<'a> {
    scopes: &'a [(String, String)],
    class: &'a str,
}

fn scope_list(scopes: &[(String, String)], class: &str) -> String {
    render(&ScopeList { scopes, class })
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentBody<'a> {
    name: &'a str,
    /// A metadata-document client's own name for itself (its host is `name`).
    claimed: Option<&'a str>,
    who: &'a str,
    initial: String,
    /// (href, text)
    links: Vec<(&'a str, &'a str)>,
    requested: &'a [(String, String)],
    granted: &'a [(String, String)],
    requested_html: String,
    granted_html: String,
    agents: &'a Option<Vec<String>>,
    resources: &'a [RequestedResource],
    redirect_uri: &'a str,
    action: &'a str,
    pending_id: &'a str,
    csrf: &'a str,
}

/// The agents as the consent page lists them: by name, then "and N more".
fn agent_list(a: &AgentNames) -> Vec<String> {
    let mut names = a.names.clone();
    if a.more > 0 {
        names.push(format!("and {} more", a.more));
    }
    names
}

/// The consent page: the client, the new scopes, the ones already granted, approve / deny.
/// `csrf` is the form's token for this browser.
pub fn consent_page(p: &ConsentRequest, csrf: &str, action: &str) -> Response {
    let name = p.client.display_name();
    let claimed = p
        .client
        .document_host()
        .and(p.client.metadata.client_name.as_deref());
    let who = p.user.name.clone().unwrap_or_else(|| p.user.username.clone());
    let md = &p.client.metadata;
    let mut links: Vec<(&str, &str)> = Vec::new();
    if let Some(u) = &md.client_uri {
        links.push((u, u));
    }
    if let Some(u) = &md.policy_uri {
        links.push((u, "Privacy policy"));
    }
    if let Some(u) = &md.tos_uri {
        links.push((u, "Terms"));
    }
    let body = render(&ConsentBody {
        name: &name,
        claimed,
        who: &who,
        initial: initial(&name),
        links,
        requested: &p.requested,
        granted: &p.granted,
        requested_html: scope_list(&p.requested, ""),
        granted_html: scope_list(&p.granted, " old"),
        agents: &p.agents.as_ref().map(agent_list),
        resources: &p.resources,
        redirect_uri: &p.redirect_uri,
        action,
        pending_id: &p.pending_id,
        csrf,
    });
    let origin = origin_of(&p.redirect_uri);
    page(200, "Allow access", &body, false, origin.as_deref())
}

#[derive(Template)]
#[template(path = "device_code.html")]
struct DeviceCodeBody<'a> {
    action: &'a str,
    tenant: Option<&'a str>,
    csrf: &'a str,
    prefill: &'a str,
}

/// The device verification page's first form: type the code (RFC 8628 §3.3). `tenant`: the
/// hidden field naming the tenant at the shared issuer.
pub fn device_code_page(action: &str, tenant: Option<&str>, csrf: &str, prefill: &str) -> Response {
    let body = render(&DeviceCodeBody {
        action,
        tenant,
        csrf,
        prefill,
    });
    page(200, "Connect a device", &body, false, None)
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct DeviceConfirmBody<'a> {
    name: &'a str,
    claimed: Option<&'a str>,
    who: &'a str,
    initial: String,
    user_code: &'a str,
    scopes: &'a [(String, String)],
    scopes_html: String,
    resources: &'a [RequestedResource],
    agents: &'a Option<Vec<String>>,
    epoch: u64,
    action: &'a str,
    tenant: Option<&'a str>,
    csrf: &'a str,
}

/// The device verification page's confirmation: the app, who is signed in, the code to check
/// against the device's, a warning to approve only a code one started oneself, the scopes and
/// resources, approve / deny.
pub fn device_confirm_page(c: &DeviceConsent, action: &str, tenant: Option<&str>, csrf: &str) -> Response {
    let name = c.client.display_name();
    let claimed = c
        .client
        .document_host()
        .and(c.client.metadata.client_name.as_deref());
    let who = c.user.name.clone().unwrap_or_else(|| c.user.username.clone());
    let body = render(&DeviceConfirmBody {
        name: &name,
        claimed,
        who: &who,
        initial: initial(&name),
        user_code: &c.user_code,
        scopes: &c.scopes,
        scopes_html: scope_list(&c.scopes, ""),
        resources: &c.resources,
        agents: &c.agents.as_ref().map(agent_list),
        epoch: c.client_epoch,
        action,
        tenant,
        csrf,
    });
    page(200, "Allow access on a device", &body, false, None)
}

/// What the device verification page says when it refuses, and its status.
pub fn device_refusal(why: DeviceRefusal) -> (u16, &'static str) {
    match why {
        DeviceRefusal::UnknownCode => (
            400,
            "That code is not valid: it may be mistyped, expired or already used. Check the code your device shows, or start again on the device.",
        ),
        DeviceRefusal::TooManyAttempts => (
            429,
            "Too many wrong codes were entered from your account. Wait a few minutes, then check the code your device shows and try again.",
        ),
        DeviceRefusal::FormExpired => (
            400,
            "This form has expired or was already answered. Enter the code again.",
        ),
        DeviceRefusal::SessionEnded => (400, "Your session ended. Enter the code and sign in again."),
        DeviceRefusal::NoDecision => (400, "Choose Allow or Deny."),
        DeviceRefusal::ClientGone => (
            400,
            "The application that made this code is no longer registered.",
        ),
        DeviceRefusal::NotPermitted(d) => (403, denied(d)),
        DeviceRefusal::UnknownTenant => (404, "This page does not name an organization this server serves."),
    }
}

pub(crate) fn date(ts: i64) -> String {
    // Civil date from Unix seconds (UTC), Howard Hinnant's algorithm.
    let days = ts.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ts.rem_euclid(86_400);
    format!(
        "{} {d}, {y}, {:02}:{:02} UTC",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// What the account page shows.
pub struct AccountView<'a> {
    pub tenant: &'a str,
    pub who: &'a str,
    pub csrf: &'a str,
    pub apps: &'a [ConnectedApp],
    pub notice: Option<&'a str>,
    pub base: &'a str,
}

struct AppCard<'a> {
    name: &'a str,
    initial: String,
    revoke_action: String,
    granted: String,
    last_used: Option<String>,
    scopes_html: String,
    agents: Vec<AgentRow<'a>>,
}

struct AgentRow<'a> {
    name: &'a str,
    stop_action: String,
    last_acted: String,
    stopped: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountBody<'a> {
    who: &'a str,
    logout_action: String,
    tenant: &'a str,
    csrf: &'a str,
    notice: Option<&'a str>,
    apps: Vec<AppCard<'a>>,
}

pub fn account_page(v: &AccountView<'_>) -> Response {
    let apps = v
        .apps
        .iter()
        .map(|a| AppCard {
            name: &a.name,
            initial: initial(&a.name),
            revoke_action: links::url(v.base, "/account/apps/revoke", &[("client_id", &a.client_id)]),
            granted: date(a.granted_at),
            last_used: a.last_used.map(date),
            scopes_html: scope_list(&a.scopes, ""),
            agents: a
                .agents
                .iter()
                .map(|g| AgentRow {
                    name: &g.name,
                    stop_action: links::url(
                        v.base,
                        "/account/agents/stop",
                        &[("client_id", &a.client_id), ("agent_id", &g.client_id)],
                    ),
                    last_acted: date(g.last_acted),
                    stopped: g.stopped,
                })
                .collect(),
        })
        .collect();
    let body = render(&AccountBody {
        who: v.who,
        logout_action: links::url(v.base, "/account/logout", &[]),
        tenant: v.tenant,
        csrf: v.csrf,
        notice: v.notice,
        apps,
    });
    page(200, "Connected apps", &body, true, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value a stranger can choose (an app's name and URIs, a username, an error
    /// message) is escaped by the templates: markup in it stays text.
    #[test]
    fn values_are_escaped_by_default() {
        let evil = "<script>alert(1)</script>\"'&";
        let body = render(&ErrorBody {
            heading: evil,
            message: evil,
            link: Some(("/x\"><script>", evil)),
        });
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&#60;script&#62;"), "{body}");
        let hidden = [("interaction", "\"><img src=x>")];
        let login = render(&LoginBody {
            client_name: &Some(evil.to_string()),
            error: &Some(evil.to_string()),
            action: "/oauth2/authorize",
            hidden: &hidden,
            csrf: "c",
            username: evil,
        });
        assert!(!login.contains("<script>") && !login.contains("<img"), "{login}");
        assert!(
            login.contains("name=\"interaction\" value=\"&#34;&#62;&#60;img src=x&#62;\""),
            "{login}"
        );
    }

    /// A resource's name is shown with its URI beside it (so a name cannot stand in for
    /// another server), escaped like every other value; a resource without a name shows its URI.
    #[test]
    fn consent_names_resources_and_keeps_their_uris() {
        let resources = [
            RequestedResource {
                uri: "https://mcp.acme.example/mcp".into(),
                name: Some("Acme <b>Files</b>".into()),
            },
            RequestedResource {
                uri: "https://mail.acme.example/api".into(),
                name: None,
            },
        ];
        let body = render(&ConsentBody {
            name: "App",
            claimed: None,
            who: "alice",
            initial: "A".into(),
            links: Vec::new(),
            requested: &[],
            granted: &[],
            requested_html: String::new(),
            granted_html: String::new(),
            agents: &None,
            resources: &resources,
            redirect_uri: "https://app.example/cb",
            action: "/oauth2/authorize",
            pending_id: "p",
            csrf: "c",
        });
        assert!(
            body.contains(
                "<li>Acme &#60;b&#62;Files&#60;/b&#62;<code>https://mcp.acme.example/mcp</code></li>"
            ),
            "{body}"
        );
        assert!(
            body.contains("<li><code>https://mail.acme.example/api</code></li>"),
            "{body}"
        );
    }

    /// The consent page lists an app's agents by name, then how many more there are.
    #[test]
    fn consent_lists_agents_then_how_many_more() {
        let names = |n: usize| (0..n).map(|i| format!("agent {i:02}")).collect::<Vec<_>>();
        let few = AgentNames {
            names: names(2),
            more: 0,
        };
        assert_eq!(agent_list(&few), names(2));
        let many = AgentNames {
            names: names(50),
            more: 7,
        };
        let listed = agent_list(&many);
        assert_eq!(listed.len(), 51);
        assert_eq!(listed[..50], names(50)[..]);
        assert_eq!(listed[50], "and 7 more");
    }

    #[test]
    fn dates() {
        assert_eq!(date(0), "Jan 1, 1970, 00:00 UTC");
        assert_eq!(date(1_795_000_000), "Nov 18, 2026, 11:06 UTC");
    }
}
