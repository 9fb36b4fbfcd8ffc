//! The device authorization grant (RFC 8628): `POST /oauth2/device_authorization` and the
//! verification page `/device` (`?tenant=` at the shared issuer; `/t/{tenant}/device` at a
//! tenant's own), both served by the `device` function.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::browser::{
    PageForm, browser_id, cookie, csrf_for, failure_page, session_cookie_header, session_cookie_name,
    with_cookies,
};
use super::{AppOf, OAuthForm, State, client_from, finish, links, no_store_json, pages};
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::service::App;
use crate::service::authorize::CookieSessions;
use crate::service::device::{self, DeviceOutcome, DeviceRefusal, DeviceStep};
use crate::service::users;

pub fn router(state: State) -> Router {
    let endpoint = super::cors(finish(
        Router::new()
            .route("/oauth2/device_authorization", post(device_authorization))
            .with_state(state.clone()),
    ));
    let page = finish(
        Router::new()
            .route("/device", get(verification).post(verification))
            .with_state(state),
    );
    endpoint.merge(page)
}

/// RFC 8628 §3.1, §3.2: client authentication exactly as at the token endpoint (a public
/// client names itself with `client_id`).
#[tracing::instrument(name = "device_authorization", skip_all, fields(client_id = tracing::field::Empty))]
async fn device_authorization(AppOf(app): AppOf, form: OAuthForm) -> Result<Response, OAuthError> {
    let client = client_from(&app, &form, "/oauth2/device_authorization").await?;
    tracing::Span::current().record("client_id", client.client_id.as_str());
    let d = device::authorize(&app, &client, &form.params).await?;
    let tenant = shared_issuer_tenant(&app, d.tenant.as_str());
    Ok(no_store_json(
        StatusCode::OK,
        json!({
            "device_code": d.device_code.expose(),
            "user_code": d.user_code,
            "verification_uri": links::device(&app.config.issuer, tenant, None),
            "verification_uri_complete": links::device(&app.config.issuer, tenant, Some(&d.user_code)),
            "expires_in": d.expires_in,
            "interval": d.interval,
        }),
    ))
}

/// The tenant the shared issuer's page must name (`?tenant=`, a hidden field); none at a
/// tenant's own issuer, whose path names it.
fn shared_issuer_tenant<'a>(app: &App, tenant: &'a str) -> Option<&'a str> {
    app.config.tenant_scope.is_none().then_some(tenant)
}

#[tracing::instrument(name = "device", skip_all)]
async fn verification(AppOf(app): AppOf, form: PageForm) -> Response {
    let (browser, new_browser_cookie) = browser_id(&app, &form.headers);
    let headers = form.headers.clone();
    let lookup = |tenant: &str| cookie(&headers, &session_cookie_name(&app, tenant));
    let sessions = CookieSessions { lookup: &lookup };
    let p = &form.params;
    if !form.posted && (p.get("action").is_some() || p.get("password").is_some()) {
        // Credentials and decisions come only in a POST body, never in a URL.
        let refused = pages::error_page(
            400,
            "Sign-in details and decisions are accepted only from the form itself. Enter the code again.",
        );
        return with_cookies(refused, [new_browser_cookie]);
    }
    let tenant = app
        .config
        .tenant_scope
        .clone()
        .or_else(|| p.get("tenant").map(str::to_string));
    let result = device::page(&app, tenant.as_deref(), p, form.posted, &browser, sessions).await;
    // A new login replaces the browser's previous session for that tenant.
    if let Ok(step) = &result
        && let Some((_, s)) = &step.new_session
        && let Some(old) = cookie(&headers, &session_cookie_name(&app, &s.tenant))
        && let Err(e) = users::end_session(&app, &old).await
    {
        tracing::warn!(error = %e, "could not end the previous session");
    }
    let resp = match result {
        Ok(step) => render(&app, step, &browser, tenant.as_deref()),
        Err(e) => failure_page(e),
    };
    with_cookies(resp, [new_browser_cookie])
}

fn render(app: &App, step: DeviceStep, browser: &Secret, tenant: Option<&str>) -> Response {
    let action = app.config.endpoint("/device");
    let hidden_tenant = tenant.and_then(|t| shared_issuer_tenant(app, t));
    let again = links::device(&app.config.issuer, hidden_tenant, None);
    let csrf = csrf_for(browser);
    let resp = match &step.outcome {
        DeviceOutcome::EnterCode { prefill } => {
            pages::device_code_page(&action, hidden_tenant, &csrf, prefill)
        }
        DeviceOutcome::NeedLogin {
            user_code,
            username,
            failure,
        } => {
            // Sign in first: the code (if any) is carried along, looked up only after.
            let view = pages::LoginView {
                client_name: None,
                username,
                failure: *failure,
                csrf: &csrf,
                redirect_uri: None,
            };
            let mut hidden = vec![("action", "login"), ("user_code", user_code.as_str())];
            if let Some(t) = hidden_tenant {
                hidden.push(("tenant", t));
            }
            pages::login_page(&view, &action, &hidden)
        }
        DeviceOutcome::Confirm(c) => pages::device_confirm_page(c, &action, hidden_tenant, &csrf),
        DeviceOutcome::Done {
            approved,
            client_name,
        } => {
            let (heading, message) = if *approved {
                (
                    "Device connected",
                    format!(
                        "You allowed {client_name} access. Go back to your device: it continues on its own."
                    ),
                )
            } else {
                (
                    "Request denied",
                    format!("{client_name} was not given access. You can close this page."),
                )
            };
            pages::message_page(200, heading, heading, &message, &again, "Connect another device")
        }
        DeviceOutcome::Refused(why) => {
            let (status, message) = pages::device_refusal(*why);
            match why {
                DeviceRefusal::UnknownTenant => pages::error_page(status, message),
                DeviceRefusal::UnknownCode
                | DeviceRefusal::TooManyAttempts
                | DeviceRefusal::FormExpired
                | DeviceRefusal::SessionEnded
                | DeviceRefusal::NoDecision
                | DeviceRefusal::ClientGone
                | DeviceRefusal::NotPermitted(_) => {
                    pages::error_page_with_link(status, message, &again, "Enter a code")
                }
            }
        }
    };
    let cookie = step
        .new_session
        .as_ref()
        .and_then(|(c, s)| session_cookie_header(app, c, s));
    with_cookies(resp, [cookie])
}
