//! The end user's account page: `GET /account?tenant=T`, `POST /account/login`,
//! `POST /account/apps/revoke?client_id=C`, `POST /account/agents/stop?client_id=C&agent_id=A`,
//! `POST /account/logout`. The page names apps and agents in the query string (`links`): a
//! metadata-document app's id is a URL. The routes with the ids in the path
//! (`/account/apps/{client_id}/revoke`, `/account/apps/{client_id}/agents/{agent_id}/stop`)
//! stay for forms rendered before.

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};

use super::browser::{
    Ids, PageForm, browser_id, clear_session_cookie, cookie, csrf_for, failure_page, see_other,
    session_cookie_header, session_cookie_name, with_cookies,
};
use super::links;
use super::pages::{self, AccountView};
use super::{AppOf, State, finish};
use crate::domain::id::ClientId;
use crate::domain::tenant::TenantId;
use crate::error::OAuthError;
use crate::service::users::{self, LoginFailure};
use crate::service::{App, account};

pub fn router(state: State) -> Router {
    finish(
        Router::new()
            .route("/account", get(show))
            .route("/account/login", post(login))
            .route("/account/logout", post(logout))
            .route("/account/apps/revoke", post(revoke))
            .route("/account/agents/stop", post(stop_agent))
            .route("/account/apps/{client_id}/revoke", post(revoke))
            .route(
                "/account/apps/{client_id}/agents/{agent_id}/stop",
                post(stop_agent),
            )
            .with_state(state),
    )
}

/// The tenant a request names, if it exists.
async fn tenant_of(app: &App, form: &PageForm) -> Result<Option<TenantId>, OAuthError> {
    // Under a tenant's own issuer, that tenant (a `tenant` parameter must not name another).
    let named = form.params.get("tenant");
    let t = match app.config.tenant_scope.as_deref() {
        Some(scope) if named.is_none_or(|n| n == scope) => TenantId::parse(scope).ok(),
        Some(_) => None,
        None => named.and_then(|t| TenantId::parse(t).ok()),
    };
    let Some(t) = t else {
        return Ok(None);
    };
    Ok(crate::service::tenants::exists(app, &t).await?.then_some(t))
}

fn no_tenant() -> Response {
    pages::error_page(404, "There is no such account. Check the link you followed.")
}

fn account_url(app: &App, tenant: &str, notice: Option<&str>) -> String {
    let mut q = vec![("tenant", tenant)];
    q.extend(notice.map(|n| ("notice", n)));
    links::url(&app.config.issuer, "/account", &q)
}

/// A form that names no app (or agent): nothing to do.
fn incomplete() -> Response {
    pages::error_page(400, "This form is incomplete. Reload the account page.")
}

fn login_form(
    app: &App,
    tenant: &str,
    browser: &crate::secret::Secret,
    username: &str,
    failure: Option<LoginFailure>,
) -> Response {
    let view = pages::LoginView {
        client_name: None,
        username,
        failure,
        csrf: &csrf_for(browser),
        redirect_uri: None,
    };
    pages::login_page(
        &view,
        &app.config.endpoint("/account/login"),
        &[("tenant", tenant)],
    )
}

async fn show(AppOf(app): AppOf, form: PageForm) -> Response {
    let (browser, new_cookie) = browser_id(&app, &form.headers);
    let resp = match show_inner(&app, &form, &browser).await {
        Ok(r) => r,
        Err(e) => failure_page(e),
    };
    with_cookies(resp, [new_cookie])
}

async fn show_inner(
    app: &App,
    form: &PageForm,
    browser: &crate::secret::Secret,
) -> Result<Response, OAuthError> {
    let Some(tenant) = tenant_of(app, form).await? else {
        return Ok(no_tenant());
    };
    let c = cookie(&form.headers, &session_cookie_name(app, &tenant));
    let (Some(c), Some((_, user))) = (c.as_ref(), users::session(app, &tenant, c.as_ref()).await?) else {
        return Ok(login_form(app, &tenant, browser, "", None));
    };
    let csrf = crate::domain::csrf::token(c.expose());
    let apps = account::connected_apps(app, &tenant, &user.sub).await?;
    let notice = match form.params.get("notice") {
        Some("revoked") => Some("Access removed. The app can no longer use your account."),
        Some("stopped") => Some("Agent stopped. It can no longer act for you."),
        _ => None,
    };
    let who = user.name.clone().unwrap_or_else(|| user.username.clone());
    Ok(pages::account_page(&AccountView {
        tenant: &tenant,
        who: &who,
        csrf: &csrf,
        apps: &apps,
        notice,
        base: &app.config.issuer,
    }))
}

async fn login(AppOf(app): AppOf, form: PageForm) -> Response {
    let (browser, new_cookie) = browser_id(&app, &form.headers);
    let resp = match login_inner(&app, &form, &browser).await {
        Ok(r) => r,
        Err(e) => failure_page(e),
    };
    with_cookies(resp, [new_cookie])
}

async fn login_inner(
    app: &App,
    form: &PageForm,
    browser: &crate::secret::Secret,
) -> Result<Response, OAuthError> {
    let Some(tenant) = tenant_of(app, form).await? else {
        return Ok(no_tenant());
    };
    if !crate::domain::csrf::check(form.params.get("csrf"), browser.expose()) {
        return Ok(pages::error_page(
            400,
            "This form has expired. Reload the page and sign in again.",
        ));
    }
    let username = form.params.get("username").unwrap_or_default();
    let password = crate::secret::Secret::new(form.params.get("password").unwrap_or_default());
    match users::login(app, &tenant, username, &password).await {
        Ok(user) => {
            if let Some(old) = cookie(&form.headers, &session_cookie_name(app, &tenant)) {
                users::end_session(app, &old).await?;
            }
            let (c, s) = users::start_session(app, &user).await?;
            Ok(with_cookies(
                see_other(&account_url(app, &tenant, None)),
                [session_cookie_header(app, &c, &s)],
            ))
        }
        Err(e) => Ok(login_form(app, &tenant, browser, username, Some(e.failure()?))),
    }
}

/// The session a form-posting request belongs to, if its CSRF token matches that session.
async fn session_for_form(
    app: &App,
    form: &PageForm,
    tenant: &TenantId,
) -> Result<
    Option<(
        crate::secret::Secret,
        crate::domain::session::Session,
        crate::domain::user::User,
    )>,
    OAuthError,
> {
    let Some(c) = cookie(&form.headers, &session_cookie_name(app, tenant)) else {
        return Ok(None);
    };
    let Some((s, u)) = users::session(app, tenant, Some(&c)).await? else {
        return Ok(None);
    };
    let ok = crate::domain::csrf::check(form.params.get("csrf"), c.expose());
    Ok(ok.then_some((c, s, u)))
}

async fn revoke(AppOf(app): AppOf, ids: Ids, form: PageForm) -> Response {
    let Some(client_id) = ids.get("client_id") else {
        return incomplete();
    };
    let result = async {
        let Some(tenant) = tenant_of(&app, &form).await? else {
            return Ok(no_tenant());
        };
        let Some((_, _, user)) = session_for_form(&app, &form, &tenant).await? else {
            return Ok(pages::error_page(
                400,
                "This form has expired or you are signed out. Reload the account page.",
            ));
        };
        account::revoke_app(&app, &tenant, &user.sub, &ClientId::from(client_id), &user.sub).await?;
        Ok::<_, OAuthError>(see_other(&account_url(&app, &tenant, Some("revoked"))))
    }
    .await;
    result.unwrap_or_else(failure_page)
}

async fn stop_agent(AppOf(app): AppOf, ids: Ids, form: PageForm) -> Response {
    let (Some(client_id), Some(agent_id)) = (ids.get("client_id"), ids.get("agent_id")) else {
        return incomplete();
    };
    let result = async {
        let Some(tenant) = tenant_of(&app, &form).await? else {
            return Ok(no_tenant());
        };
        let Some((_, _, user)) = session_for_form(&app, &form, &tenant).await? else {
            return Ok(pages::error_page(
                400,
                "This form has expired or you are signed out. Reload the account page.",
            ));
        };
        account::stop_agent(
            &app,
            &tenant,
            &user.sub,
            &ClientId::from(client_id),
            &ClientId::from(agent_id),
        )
        .await?;
        Ok::<_, OAuthError>(see_other(&account_url(&app, &tenant, Some("stopped"))))
    }
    .await;
    result.unwrap_or_else(failure_page)
}

async fn logout(AppOf(app): AppOf, form: PageForm) -> Response {
    let result = async {
        let Some(tenant) = tenant_of(&app, &form).await? else {
            return Ok(no_tenant());
        };
        let Some((c, _, user)) = session_for_form(&app, &form, &tenant).await? else {
            return Ok(pages::error_page(
                400,
                "This form has expired or you are signed out. Reload the account page.",
            ));
        };
        users::sign_out(&app, &tenant, &c, &user.sub).await?;
        Ok::<_, OAuthError>(with_cookies(
            see_other(&account_url(&app, &tenant, None)),
            [clear_session_cookie(&app, &tenant)],
        ))
    }
    .await;
    result.unwrap_or_else(failure_page)
}
