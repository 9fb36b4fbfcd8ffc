//! `GET`/`POST /oauth2/authorize`: the authorization request, the hosted login page and the
//! consent page (all served by the `authorize` function).

use axum::Router;
use axum::response::Response;
use axum::routing::get;

use super::browser::{PageForm, browser_id, cookie, failure_page, render, session_cookie_name, with_cookies};
use super::{AppOf, State, finish, pages};
use crate::service::authorize::{self, CookieSessions};
use crate::service::users;

pub fn router(state: State) -> Router {
    finish(
        Router::new()
            .route("/oauth2/authorize", get(authorize).post(authorize))
            .with_state(state),
    )
}

#[tracing::instrument(name = "authorize", skip_all)]
async fn authorize(AppOf(app): AppOf, form: PageForm) -> Response {
    let (browser, new_browser_cookie) = browser_id(&app, &form.headers);
    let headers = form.headers.clone();
    let lookup = |tenant: &str| cookie(&headers, &session_cookie_name(&app, tenant));
    let sessions = CookieSessions { lookup: &lookup };
    let p = &form.params;
    let is_form_answer = p.get("interaction").is_some() || p.get("action").is_some();
    if !form.posted && (is_form_answer || p.get("password").is_some()) {
        // Credentials and consent answers come only in a POST body, never in a URL.
        let refused = pages::error_page(
            400,
            "Sign-in details and consent answers are accepted only from the form itself. Go back to the application and start again.",
        );
        return with_cookies(refused, [new_browser_cookie]);
    }
    let result = match (p.get("interaction"), p.get("action")) {
        (Some(_), Some("login")) => authorize::submit_login(&app, p, &browser).await,
        (Some(_), Some("consent")) => authorize::submit_consent(&app, p, &browser, sessions).await,
        _ => authorize::begin(&app, p, &browser, sessions).await,
    };
    // A new login replaces the browser's previous session for that tenant (no fixation, no
    // orphaned sessions).
    if let Ok(step) = &result
        && let Some((_, s)) = &step.new_session
        && let Some(old) = cookie(&headers, &session_cookie_name(&app, &s.tenant))
        && let Err(e) = users::end_session(&app, &old).await
    {
        tracing::warn!(error = %e, "could not end the previous session");
    }
    let resp = match result {
        Ok(step) => render(&app, step, &browser),
        Err(e) => failure_page(e),
    };
    with_cookies(resp, [new_browser_cookie])
}
