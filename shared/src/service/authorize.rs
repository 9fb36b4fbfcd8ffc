//! The authorization endpoint's flow: validate the request, log the user in, ask for consent,
//! issue the code. Each step answers with an [`Outcome`] that the HTTP layer renders (a page or
//! a redirect); nothing here knows HTML or cookies' wire form.
//!
//! A request in progress is a [`PendingAuth`] in the store, bound to the browser that started
//! it (the SHA-256 of its `bulwark_bid` cookie). Forms carry the pending id and a CSRF token
//! derived from that cookie; a form posted from another site arrives without the cookie
//! (`SameSite=Lax`) and is refused.

use crate::domain::audit::AuditKind;
use crate::domain::authorize::{AuthRequest, Refusal, login_fresh, redirect_with, validate};
use crate::domain::client::Client;
use crate::domain::params::Params;
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::Tenant;
use crate::domain::tenant::TenantId;
use crate::domain::user::User;
use crate::error::OAuthError;
use crate::secret::{Secret, ct_eq_str, random_id};
use crate::service::App;
use crate::service::users;
use crate::store::repo::Versioned;
use crate::store::repo_users::{AuthCode, Consent, PendingAuth, Session};
use crate::store::{Cond, StoreError};

/// What to show the browser next.
#[derive(Debug)]
pub enum Outcome {
    Login(LoginPage),
    Consent(Box<ConsentPage>),
    /// 303 to a verified redirect URI (code or error).
    Redirect(String),
    /// Our own error page; never a redirect (the redirect URI is not trusted, or the request is
    /// gone).
    Error {
        status: u16,
        message: String,
    },
}

#[derive(Debug)]
pub struct LoginPage {
    pub tenant: String,
    /// The form's `interaction` (for the authorize flow) — `None` on the account page.
    pub pending_id: Option<String>,
    pub csrf: String,
    pub client_name: Option<String>,
    pub username: String,
    pub error: Option<String>,
    /// The origin of the redirect URI this form's answer may send the browser to (a login that
    /// needs no consent answers with a 303 to the client), for the page's `form-action`.
    pub redirect_origin: Option<String>,
}

#[derive(Debug)]
pub struct ConsentPage {
    pub pending_id: String,
    pub csrf: String,
    pub client: Client,
    pub user: User,
    /// (scope, description) already granted earlier.
    pub granted: Vec<(String, String)>,
    /// (scope, description) asked for now.
    pub requested: Vec<(String, String)>,
    /// Where the answer goes (shown to the user).
    pub redirect_uri: String,
    /// When the request asks for `agent:act`: the names of the agents that would act for the
    /// user (the app's registered agents).
    pub agents: Option<Vec<String>>,
    /// The RFC 8707 resources the access is for (none: the tenant's default audience).
    pub resources: Vec<ShownResource>,
}

/// A resource as the consent page shows it: its URI, and the name the tenant gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownResource {
    pub uri: String,
    pub name: Option<String>,
}

/// The result of a step, plus a new session cookie to set (after a login).
pub struct Step {
    pub outcome: Outcome,
    pub new_session: Option<(Secret, Session)>,
}

impl From<Outcome> for Step {
    fn from(outcome: Outcome) -> Self {
        Step {
            outcome,
            new_session: None,
        }
    }
}

/// The CSRF token of forms shown to the browser with binding cookie `browser`.
pub fn csrf_for(browser: &Secret) -> String {
    crate::domain::csrf::token(browser.expose())
}

fn error(status: u16, message: &str) -> Step {
    Outcome::Error {
        status,
        message: message.into(),
    }
    .into()
}

fn expired() -> Step {
    error(
        400,
        "This sign-in request has expired or was already answered. Go back to the application and start again.",
    )
}

/// The authorization response (RFC 6749 §4.1.2, RFC 9207): `params`, then `state` (if the
/// request had one) and `iss`, on the verified redirect URI.
fn respond<'a>(
    app: &'a App,
    redirect_uri: &str,
    state: Option<&'a str>,
    mut params: Vec<(&'a str, &'a str)>,
) -> Step {
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", &app.config.issuer));
    Outcome::Redirect(redirect_with(redirect_uri, &params)).into()
}

fn error_redirect(app: &App, req: &AuthRequest, error: &str, description: &str) -> Step {
    respond(
        app,
        &req.redirect_uri,
        req.state.as_deref(),
        vec![("error", error), ("error_description", description)],
    )
}

/// `GET`/`POST /oauth2/authorize` with the request's parameters.
pub async fn begin(
    app: &App,
    p: &Params,
    browser: &Secret,
    cookie: CookieSessions<'_>,
) -> Result<Step, OAuthError> {
    let Some(client_id) = p.get("client_id") else {
        return Ok(error(
            400,
            "The request does not name an application (client_id is missing).",
        ));
    };
    const UNKNOWN: &str = "The application that sent you here is not registered.";
    let (client, tenant) = if crate::domain::cimd::is_url_id(client_id) {
        // A Client ID Metadata Document: only under a tenant's own issuer (the URL names no
        // tenant), and only if that tenant accepts the document's host.
        let Some(tid) = &app.config.tenant_scope else {
            return Ok(error(400, UNKNOWN));
        };
        let Some(tenant) = app.repo.tenant(tid).await?.map(|t| t.value) else {
            return Ok(error(400, UNKNOWN));
        };
        match crate::service::cimd::resolve(app, &tenant, client_id, p.get("redirect_uri")).await? {
            Ok(c) => (c, tenant),
            Err(message) => return Ok(error(400, message)),
        }
    } else {
        let Some(client) = app
            .repo
            .client(client_id)
            .await?
            .map(|c| c.value)
            .filter(|c| app.config.serves_tenant(c.tenant.as_str()))
        else {
            return Ok(error(400, UNKNOWN));
        };
        let Some(tenant) = app.repo.tenant(client.tenant.as_str()).await?.map(|t| t.value) else {
            return Ok(error(400, UNKNOWN));
        };
        (client, tenant)
    };
    let request = match validate(p, &client, &client.allowed_scopes(&tenant)) {
        Ok(r) => r,
        Err(Refusal::Page(m)) => return Ok(error(400, &m)),
        Err(Refusal::Redirect {
            redirect_uri,
            error,
            description,
            state,
        }) => {
            let params = vec![("error", error), ("error_description", description.as_str())];
            return Ok(respond(app, &redirect_uri, state.as_deref(), params));
        }
    };
    // RFC 8707: every resource named must be one of the tenant's (the redirect URI is
    // verified by now, so the error goes to the client).
    if request.resources.iter().any(|r| !tenant.resources.contains(r)) {
        let params = vec![
            ("error", "invalid_target"),
            ("error_description", "a resource is not one this tenant serves"),
        ];
        return Ok(respond(
            app,
            &request.redirect_uri,
            request.state.as_deref(),
            params,
        ));
    }
    let now = app.now();
    let pending = PendingAuth {
        tenant: client.tenant.clone(),
        request,
        browser: browser.hash().to_hex(),
        login_done: false,
        consent_for: None,
        client_epoch: client.consent_epoch,
        created_at: now,
        expires_at: now + app.config.lifetimes.interaction,
        issuer_scope: app.config.tenant_scope.clone(),
    };
    let id = random_id(16);
    app.repo.put_pending(&id, &pending, Cond::Absent).await?;
    let session = cookie.for_tenant(app, &pending.tenant).await?;
    proceed(
        app,
        &id,
        Versioned {
            value: pending,
            version: 1,
        },
        Some(client),
        session,
        browser,
        None,
    )
    .await
}

/// The session cookies a browser sent, one per tenant (`bulwark_session_<tenant>`).
#[derive(Clone, Copy)]
pub struct CookieSessions<'a> {
    pub lookup: &'a (dyn Fn(&str) -> Option<Secret> + Sync),
}

impl CookieSessions<'_> {
    async fn for_tenant(&self, app: &App, tenant: &TenantId) -> Result<Option<(Session, User)>, OAuthError> {
        let cookie = (self.lookup)(tenant);
        users::session(app, tenant, cookie.as_ref()).await
    }
}

/// Load the pending request a form names, checking that this browser started it.
async fn load_pending(
    app: &App,
    form: &Params,
    browser: &Secret,
) -> Result<Option<Versioned<PendingAuth>>, OAuthError> {
    let Some(id) = form.get("interaction") else {
        return Ok(None);
    };
    let Some(p) = app
        .repo
        .pending(id)
        .await?
        // It continues only at the issuer it came to (the `iss` of its answer is that one).
        .filter(|p| p.value.issuer_scope == app.config.tenant_scope)
    else {
        return Ok(None);
    };
    let csrf_ok = crate::domain::csrf::check(form.get("csrf"), browser.expose());
    let browser_ok = ct_eq_str(&p.value.browser, &browser.hash().to_hex());
    if !(csrf_ok && browser_ok) {
        tracing::info!(csrf_ok, browser_ok, "authorization form refused");
        return Ok(None);
    }
    Ok(Some(p))
}

/// The login form was posted.
pub async fn submit_login(app: &App, form: &Params, browser: &Secret) -> Result<Step, OAuthError> {
    let Some(mut pending) = load_pending(app, form, browser).await? else {
        return Ok(expired());
    };
    let id = form.get("interaction").unwrap_or_default().to_string();
    let tenant = pending.value.tenant.clone();
    let username = form.get("username").unwrap_or_default();
    let password = Secret::new(form.get("password").unwrap_or_default());
    let client = app
        .repo
        .client_in(&tenant, &pending.value.request.client_id)
        .await?
        .map(|c| c.value);
    let redirect_origin = origin_of(&pending.value.request.redirect_uri);
    let again = |error: String| -> Step {
        Outcome::Login(LoginPage {
            tenant: tenant.to_string(),
            pending_id: Some(id.clone()),
            csrf: csrf_for(browser),
            client_name: client.as_ref().map(Client::display_name),
            username: username.chars().take(128).collect(),
            error: Some(error),
            redirect_origin: redirect_origin.clone(),
        })
        .into()
    };
    let user = match users::login(app, &tenant, username, &password).await {
        Ok(u) => u,
        Err(e) => return Ok(again(e.user_message()?)),
    };
    let (cookie, session) = users::start_session(app, &user).await?;
    pending.value.login_done = true;
    match app
        .repo
        .put_pending(&id, &pending.value, Cond::Version(pending.version))
        .await
    {
        Ok(()) => pending.version += 1,
        Err(StoreError::Conflict) => return Ok(expired()),
        Err(e) => return Err(e.into()),
    }
    let mut step = proceed(
        app,
        &id,
        pending,
        client,
        Some((session.clone(), user)),
        browser,
        None,
    )
    .await?;
    step.new_session = Some((cookie, session));
    Ok(step)
}

/// The consent form was posted (`decision=approve|deny`).
pub async fn submit_consent(
    app: &App,
    form: &Params,
    browser: &Secret,
    cookie: CookieSessions<'_>,
) -> Result<Step, OAuthError> {
    let Some(pending) = load_pending(app, form, browser).await? else {
        return Ok(expired());
    };
    let id = form.get("interaction").unwrap_or_default().to_string();
    let session = cookie.for_tenant(app, &pending.value.tenant).await?;
    let Some((session, user)) = session else {
        return Ok(error(
            400,
            "Your session ended. Go back to the application and sign in again.",
        ));
    };
    if pending.value.consent_for.as_deref() != Some(user.sub.as_str()) {
        return Ok(expired());
    }
    match form.get("decision") {
        Some("approve") => {
            let client = app
                .repo
                .client_in(&pending.value.tenant, &pending.value.request.client_id)
                .await?
                .map(|c| c.value);
            proceed(
                app,
                &id,
                pending,
                client,
                Some((session, user)),
                browser,
                Some(true),
            )
            .await
        }
        Some("deny") => {
            let req = pending.value.request.clone();
            match app
                .repo
                .commit(vec![
                    app.repo.finish_pending_write(&id, pending.version),
                    app.repo.audit_write(
                        &pending.value.tenant,
                        AuditKind::ConsentDenied,
                        &user.sub,
                        &req.client_id,
                    )?,
                ])
                .await
            {
                Ok(()) => Ok(error_redirect(
                    app,
                    &req,
                    "access_denied",
                    "the user denied the request",
                )),
                Err(StoreError::Conflict) => Ok(expired()),
                Err(e) => Err(e.into()),
            }
        }
        _ => Ok(error(400, "Choose Allow or Deny.")),
    }
}

/// Decide the next step for a pending request. `approved` is `Some(true)` when the consent
/// form was just approved.
async fn proceed(
    app: &App,
    id: &str,
    mut pending: Versioned<PendingAuth>,
    client: Option<Client>,
    session: Option<(Session, User)>,
    browser: &Secret,
    approved: Option<bool>,
) -> Result<Step, OAuthError> {
    let req = pending.value.request.clone();
    let tenant_id = pending.value.tenant.clone();
    let Some(client) = client else {
        return Ok(error(
            400,
            "The application that sent you here is no longer registered.",
        ));
    };
    // The client may have changed its redirect URIs since the request began: a code goes only
    // to one it has now.
    if !crate::domain::authorize::redirect_matches(&client.metadata.redirect_uris, &req.redirect_uri) {
        return Ok(error(
            400,
            "The application changed its registration since this request began. Go back to the application and start again.",
        ));
    }
    let now = app.now();
    let logged_in = session.filter(|(s, _)| {
        pending.value.login_done || (!req.prompt.login && login_fresh(s.auth_time, req.max_age, now))
    });
    let Some((session, user)) = logged_in else {
        if req.prompt.none {
            return Ok(error_redirect(
                app,
                &req,
                "login_required",
                "the user is not signed in",
            ));
        }
        return Ok(Outcome::Login(LoginPage {
            tenant: tenant_id.to_string(),
            pending_id: Some(id.to_string()),
            csrf: csrf_for(browser),
            client_name: Some(client.display_name()),
            username: req.login_hint.clone().unwrap_or_default(),
            error: None,
            redirect_origin: origin_of(&req.redirect_uri),
        })
        .into());
    };

    // The tenant's administrator decides which apps its users may authorize, and who may
    // authorize each: a refusal is our page, never a redirect (the app learns nothing).
    let tenant = app
        .repo
        .tenant(&tenant_id)
        .await?
        .map(|t| t.value)
        .ok_or_else(OAuthError::server_error)?;
    if let Err(d) = crate::service::access::permitted(app, &tenant, &client, &user.sub).await? {
        return Ok(error(403, d.message()));
    }
    let requested = req.scopes();
    let existing = app.repo.consent(&tenant_id, &user.sub, &client.client_id).await?;
    // A consent counts only under the client's current epoch (it moves when the client adds a
    // redirect URI).
    let granted = existing
        .as_ref()
        .filter(|c| c.value.counts(client.consent_epoch, user.grant_epoch))
        .map(|c| ScopeSet::parse(&c.value.scope).unwrap_or_default())
        .unwrap_or_default();
    // A first-party app is pre-approved for everything but `agent:act`: letting agents act for
    // the user is always the user's own decision, on a page that names the agents.
    let agents_ok = !requested.contains(crate::domain::exchange::AGENT_ACT)
        || granted.contains(crate::domain::exchange::AGENT_ACT);
    let consented_resources = existing
        .as_ref()
        .filter(|c| c.value.counts(client.consent_epoch, user.grant_epoch))
        .map(|c| &c.value.resources);
    let resources_ok = crate::domain::authorize::resources_covered(consented_resources, &req.resources);
    let covered = !req.prompt.consent
        && ((requested.is_subset(&granted) && resources_ok) || (client.first_party && agents_ok));
    if !covered && approved != Some(true) {
        if req.prompt.none {
            return Ok(error_redirect(
                app,
                &req,
                "consent_required",
                "the user has not consented",
            ));
        }
        pending.value.consent_for = Some(user.sub.clone());
        match app
            .repo
            .put_pending(id, &pending.value, Cond::Version(pending.version))
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(expired()),
            Err(e) => return Err(e.into()),
        }
        let describe = |s: &str| (s.to_string(), describe_scope(&tenant, s));
        let (mut old, mut new): (Vec<&str>, Vec<&str>) = requested.iter().partition(|s| granted.contains(s));
        crate::domain::scope::display_order(&mut old);
        crate::domain::scope::display_order(&mut new);
        let new = if req.prompt.consent && new.is_empty() {
            old.clone()
        } else {
            new
        };
        let agents = if requested.contains(crate::domain::exchange::AGENT_ACT) {
            Some(agent_names(app, &client).await?)
        } else {
            None
        };
        return Ok(Outcome::Consent(Box::new(ConsentPage {
            agents,
            resources: req
                .resources
                .iter()
                .map(|r| ShownResource {
                    uri: r.clone(),
                    name: tenant.resource_name(r).map(str::to_string),
                })
                .collect(),
            pending_id: id.to_string(),
            csrf: csrf_for(browser),
            redirect_uri: req.redirect_uri.clone(),
            granted: old
                .iter()
                .filter(|s| !new.contains(s))
                .map(|s| describe(s))
                .collect(),
            requested: new.iter().map(|s| describe(s)).collect(),
            client,
            user,
        }))
        .into());
    }

    // Issue the code; the pending request ends in the same transaction (it answers once).
    let code = crate::secret::generate();
    let revocation = app
        .repo
        .app_revoked(&tenant_id, &user.sub, &client.client_id)
        .await?
        .map(|m| m.version);
    let record = AuthCode {
        tenant: tenant_id.clone(),
        sub: user.sub.clone(),
        auth_time: session.auth_time,
        request: req.clone(),
        issued_at: now,
        revocation,
        user_epoch: Some(user.session_epoch),
        grant_epoch: Some(user.grant_epoch),
        issuer_scope: pending.value.issuer_scope.clone(),
    };
    let mut writes = vec![
        app.repo
            .create_code_write(&code.hash().to_hex(), &record, now + app.config.lifetimes.code)?,
        app.repo.finish_pending_write(id, pending.version),
    ];
    if approved == Some(true) {
        let merged = granted.union(&requested);
        let consent = Consent {
            tenant: tenant_id.clone(),
            sub: user.sub.clone(),
            client_id: client.client_id.clone(),
            scope: merged.to_scope_string(),
            granted_at: existing.as_ref().map(|c| c.value.granted_at).unwrap_or(now),
            updated_at: now,
            // What the user saw: the client as it was when this request began.
            client_epoch: pending.value.client_epoch,
            resources: crate::domain::authorize::merged_resources(consented_resources, &req.resources),
            user_epoch: user.grant_epoch,
        };
        writes.extend(
            app.repo
                .put_consent_writes(&consent, existing.as_ref().map(|c| c.version))?,
        );
        writes.push(app.repo.audit_write(
            &tenant_id,
            AuditKind::ConsentGranted,
            &user.sub,
            &client.client_id,
        )?);
    }
    match app.repo.commit(writes).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(expired()),
        Err(e) => return Err(e.into()),
    }
    Ok(respond(
        app,
        &req.redirect_uri,
        req.state.as_deref(),
        vec![("code", code.expose())],
    ))
}

/// The origin (`scheme://host[:port]`) of a verified redirect URI, as a CSP source.
pub fn origin_of(uri: &str) -> Option<String> {
    url::Url::parse(uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
}

/// A scope's catalog description (or its name, if the catalog has none).
pub fn describe_scope(tenant: &Tenant, scope: &str) -> String {
    tenant
        .scopes
        .get(scope)
        .cloned()
        .unwrap_or_else(|| scope.to_string())
}

/// The display names of an app's agents (for the consent page), in name order, at most 50
/// (then "and N more").
async fn agent_names(app: &App, client: &Client) -> Result<Vec<String>, OAuthError> {
    let mut names = Vec::new();
    for id in app.repo.agents_of(&client.client_id).await? {
        if let Some(a) = app.repo.client_in(client.tenant.as_str(), &id).await?
            && a.value.agent_of.as_deref() == Some(client.client_id.as_str())
        {
            names.push(a.value.metadata.client_name.clone().unwrap_or(id));
        }
    }
    names.sort();
    if names.len() > 50 {
        let more = names.len() - 50;
        names.truncate(50);
        names.push(format!("and {more} more"));
    }
    Ok(names)
}
