//! The authorization endpoint's flow: validate the request, log the user in, ask for consent,
//! issue the code. Each step answers with an [`Outcome`], what happened, that the HTTP layer
//! renders (a page or a redirect); nothing here knows HTML, cookies' wire form or the pages'
//! words.
//!
//! A request in progress is a [`PendingAuth`] in the store, bound to the browser that started
//! it (the SHA-256 of its `bulwark_bid` cookie). Forms carry the pending id and a CSRF token
//! derived from that cookie (http derives it, the flow checks it); a form posted from another
//! site arrives without the cookie (`SameSite=Lax`) and is refused.

use crate::domain::access::Denied;
use crate::domain::audit::AuditKind;
use crate::domain::authorize::{
    AuthRequest, AuthzError, Refusal, UntrustedRedirect, login_fresh, pushed_reference,
    pushed_requests_required, redirect_with, validate,
};
use crate::domain::client::Client;
use crate::domain::params::Params;
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::Tenant;
use crate::domain::tenant::TenantId;
use crate::domain::user::User;
use crate::error::OAuthError;
use crate::secret::{Secret, ct_eq_str, random_id};
use crate::service::App;
use crate::service::users::{self, LoginFailure};
use crate::store::repo::Versioned;
use crate::store::repo_users::{AuthCode, Consent, PendingAuth, Session};
use crate::store::{Cond, StoreError, Write};

/// What happened, for the browser's next page: the flow's terms only (the pages, their words and
/// their status codes are http's).
#[derive(Debug)]
pub enum Outcome {
    /// The user must sign in (again, after a `failure`).
    NeedLogin(LoginRequest),
    /// The user must decide on access not granted yet.
    NeedConsent(Box<ConsentRequest>),
    /// 303 to a verified redirect URI (code or error).
    Redirect(String),
    /// Refused on our own page; never a redirect (the redirect URI is not trusted, or the request
    /// is gone).
    Refused(PageRefusal),
}

/// Why a request is refused on our own page. One variant per thing the user is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageRefusal {
    /// The request has no `client_id`.
    NoClientId,
    /// The `client_id` names no client this issuer serves.
    UnknownClient,
    /// A metadata-document client that cannot be used.
    Document(crate::service::cimd::Refused),
    /// The request's redirect URI cannot be trusted.
    RedirectUri(UntrustedRedirect),
    /// The pending request a form answers is gone, already answered, another browser's, or the
    /// form's CSRF token does not match.
    RequestExpired,
    /// The consent form came without a live session for the tenant.
    SessionEnded,
    /// The consent form answered neither approve nor deny.
    NoDecision,
    /// The client was deleted since the request began.
    ClientGone,
    /// The client no longer registers the request's redirect URI.
    RegistrationChanged,
    /// The tenant's administrator does not let this user use this app.
    NotPermitted(Denied),
    /// The `request_uri` names no pushed request this client may use here: unknown, expired,
    /// already used, another client's or another issuer's (RFC 9126 §4).
    PushedRequestUnusable,
    /// The client (or its tenant) sends authorization requests only by the pushed
    /// authorization request endpoint, and this one was not pushed (RFC 9126 §5, §6).
    PushedRequestRequired,
}

/// The login form a pending request needs.
#[derive(Debug)]
pub struct LoginRequest {
    /// The pending request the form answers (its `interaction`).
    pub pending_id: String,
    /// The display name of the client the request is for (`None`: deleted since it began).
    pub client_name: Option<String>,
    /// The username to fill in: what was typed (at most 128 characters), or the login hint.
    pub username: String,
    /// Why the last attempt failed.
    pub failure: Option<LoginFailure>,
    /// The request's verified redirect URI: a login that needs no consent answers with a 303 to
    /// it.
    pub redirect_uri: String,
}

/// The consent a pending request needs.
#[derive(Debug)]
pub struct ConsentRequest {
    pub pending_id: String,
    pub client: Client,
    pub user: User,
    /// (scope, the tenant's description) already granted earlier, in display order.
    pub granted: Vec<(String, String)>,
    /// (scope, the tenant's description) asked for now, in display order.
    pub requested: Vec<(String, String)>,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// When the request asks for `agent:act`: the agents that would act for the user (the
    /// app's registered agents).
    pub agents: Option<AgentNames>,
    /// The RFC 8707 resources the access is for (none: the tenant's default audience).
    pub resources: Vec<RequestedResource>,
}

/// An app's agents by display name, in name order: the first [`AGENTS_LISTED`], and how many
/// more there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentNames {
    pub names: Vec<String>,
    pub more: usize,
}

/// Most agents [`AgentNames`] names.
pub const AGENTS_LISTED: usize = 50;

/// A resource a request names: its URI, and the name the tenant gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedResource {
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

fn refused(why: PageRefusal) -> Step {
    Outcome::Refused(why).into()
}

fn expired() -> Step {
    refused(PageRefusal::RequestExpired)
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

/// `GET`/`POST /oauth2/authorize` with the request's parameters: a plain request, or
/// `client_id` + `request_uri` naming a pushed one (RFC 9126 §4; then every other parameter of
/// the query is ignored: the pushed request is the whole request).
pub async fn begin(
    app: &App,
    p: &Params,
    browser: &Secret,
    cookie: CookieSessions<'_>,
) -> Result<Step, OAuthError> {
    let Some(client_id) = p.get("client_id") else {
        return Ok(refused(PageRefusal::NoClientId));
    };
    if let Some(request_uri) = p.get("request_uri") {
        return begin_pushed(app, client_id, request_uri, browser, cookie).await;
    }
    let unknown = || Ok(refused(PageRefusal::UnknownClient));
    let (client, tenant) = if crate::domain::cimd::is_url_id(client_id) {
        // A Client ID Metadata Document: only under a tenant's own issuer (the URL names no
        // tenant), and only if that tenant accepts the document's host.
        let Some(tid) = &app.config.tenant_scope else {
            return unknown();
        };
        let Some(tenant) = app.repo.tenant(tid).await?.map(|t| t.value) else {
            return unknown();
        };
        match crate::service::cimd::resolve(app, &tenant, client_id, p.get("redirect_uri")).await? {
            Ok(c) => (c, tenant),
            Err(why) => return Ok(refused(PageRefusal::Document(why))),
        }
    } else {
        let Some(client) = app
            .repo
            .client(client_id)
            .await?
            .map(|c| c.value)
            .filter(|c| app.config.serves_tenant(c.tenant.as_str()))
        else {
            return unknown();
        };
        let Some(tenant) = app.repo.tenant(client.tenant.as_str()).await?.map(|t| t.value) else {
            return unknown();
        };
        (client, tenant)
    };
    // RFC 9126 §5, §6: a client that must push its requests gets no answer to a plain one at
    // its redirect URI (whatever the query says, it did not come from that client).
    if pushed_requests_required(&client, &tenant) {
        return Ok(refused(PageRefusal::PushedRequestRequired));
    }
    let request = match check_request(p, &client, &tenant) {
        Ok(r) => r,
        Err(Refusal::Page(why)) => return Ok(refused(PageRefusal::RedirectUri(why))),
        Err(Refusal::Redirect {
            redirect_uri,
            error,
            description,
            state,
        }) => {
            let params = vec![
                ("error", error.as_str()),
                ("error_description", description.as_str()),
            ];
            return Ok(respond(app, &redirect_uri, state.as_deref(), params));
        }
    };
    start(app, client, request, browser, cookie).await
}

/// An authorization request's parameters checked for `client` of `tenant`: the domain's rules
/// (`domain::authorize::validate`), then every RFC 8707 resource named must be one of the
/// tenant's (the redirect URI is verified by then, so that error goes to the client). The
/// authorization endpoint and the pushed authorization request endpoint both check by this.
pub fn check_request(p: &Params, client: &Client, tenant: &Tenant) -> Result<AuthRequest, Refusal> {
    let request = validate(p, client, &client.allowed_scopes(tenant))?;
    if request.resources.iter().any(|r| !tenant.resources.contains(r)) {
        return Err(Refusal::Redirect {
            redirect_uri: request.redirect_uri,
            error: AuthzError::InvalidTarget,
            description: "a resource is not one this tenant serves".into(),
            state: request.state,
        });
    }
    Ok(request)
}

/// `client_id` + `request_uri`: take the pushed request (once: a conditional delete) and go on
/// with it as with a plain request just validated. Unknown, expired, used, another client's or
/// another issuer's: our page, never a redirect (nothing in the query can be trusted).
async fn begin_pushed(
    app: &App,
    client_id: &str,
    request_uri: &str,
    browser: &Secret,
    cookie: CookieSessions<'_>,
) -> Result<Step, OAuthError> {
    let unusable = || Ok(refused(PageRefusal::PushedRequestUnusable));
    let Some(reference) = pushed_reference(request_uri) else {
        return unusable();
    };
    let hash = Secret::new(reference).hash().to_hex();
    let Some(pushed) = app.repo.take_pushed(&hash).await? else {
        return unusable();
    };
    if !pushed.usable_by(client_id, app.config.tenant_scope.as_deref()) {
        tracing::info!("a pushed authorization request was presented by another client or at another issuer");
        return unusable();
    }
    // The client as it is now (deleted or disabled since the push: not found).
    let Some(client) = app
        .repo
        .client_in(&pushed.tenant, client_id)
        .await?
        .map(|c| c.value)
    else {
        return Ok(refused(PageRefusal::ClientGone));
    };
    start(app, client, pushed.request, browser, cookie).await
}

/// A validated request begins: it is stored as a pending request bound to this browser, and the
/// flow goes on (login, consent or the code).
async fn start(
    app: &App,
    client: Client,
    request: AuthRequest,
    browser: &Secret,
    cookie: CookieSessions<'_>,
) -> Result<Step, OAuthError> {
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
    let user = match users::login(app, &tenant, username, &password).await {
        Ok(u) => u,
        Err(e) => {
            return Ok(Outcome::NeedLogin(LoginRequest {
                pending_id: id,
                client_name: client.as_ref().map(Client::display_name),
                username: username.chars().take(128).collect(),
                failure: Some(e.failure()?),
                redirect_uri: pending.value.request.redirect_uri.clone(),
            })
            .into());
        }
    };
    let (cookie, session) = users::start_session(app, &user).await?;
    // Not written here: the next step writes the pending request anyway, at the version read
    // (the consent page stores it with this flag; a code ends it), and a refusal ends the flow.
    pending.value.login_done = true;
    let mut step = proceed(app, &id, pending, client, Some((session.clone(), user)), None).await?;
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
        return Ok(refused(PageRefusal::SessionEnded));
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
            proceed(app, &id, pending, client, Some((session, user)), Some(true)).await
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
        _ => Ok(refused(PageRefusal::NoDecision)),
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
    approved: Option<bool>,
) -> Result<Step, OAuthError> {
    let req = pending.value.request.clone();
    let tenant_id = pending.value.tenant.clone();
    let Some(client) = client else {
        return Ok(refused(PageRefusal::ClientGone));
    };
    // The client may have changed its redirect URIs since the request began: a code goes only
    // to one it has now.
    if !crate::domain::authorize::redirect_matches(&client.metadata.redirect_uris, &req.redirect_uri) {
        return Ok(refused(PageRefusal::RegistrationChanged));
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
        return Ok(Outcome::NeedLogin(LoginRequest {
            pending_id: id.to_string(),
            client_name: Some(client.display_name()),
            username: req.login_hint.clone().unwrap_or_default(),
            failure: None,
            redirect_uri: req.redirect_uri.clone(),
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
        return Ok(refused(PageRefusal::NotPermitted(d)));
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
        return Ok(Outcome::NeedConsent(Box::new(ConsentRequest {
            agents,
            resources: req
                .resources
                .iter()
                .map(|r| RequestedResource {
                    uri: r.clone(),
                    name: tenant.resource_name(r).map(str::to_string),
                })
                .collect(),
            pending_id: id.to_string(),
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
    // With a consent to write, one transaction. Without (a remembered consent), two single
    // writes (a transaction bills twice): the pending request ended at the version read first
    // — the conditional delete that lets it answer once —, then the code. A failure between
    // leaves no code and a request that has answered: the user starts again.
    let landed = match <[Write; 2]>::try_from(writes) {
        Ok([code_write, finish]) => match app.repo.commit(vec![finish]).await {
            Ok(()) => app.repo.commit(vec![code_write]).await,
            Err(e) => Err(e),
        },
        Err(writes) => app.repo.commit(writes).await,
    };
    match landed {
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

/// A scope's catalog description (or its name, if the catalog has none).
pub fn describe_scope(tenant: &Tenant, scope: &str) -> String {
    tenant
        .scopes
        .get(scope)
        .cloned()
        .unwrap_or_else(|| scope.to_string())
}

/// The display names of an app's agents (for the consent page), in name order: the first
/// [`AGENTS_LISTED`], and how many more.
pub(crate) async fn agent_names(app: &App, client: &Client) -> Result<AgentNames, OAuthError> {
    let mut names = Vec::new();
    for id in app.repo.agents_of(&client.client_id).await? {
        if let Some(a) = app.repo.client_in(client.tenant.as_str(), &id).await?
            && a.value.agent_of.as_deref() == Some(client.client_id.as_str())
        {
            names.push(a.value.metadata.client_name.clone().unwrap_or(id));
        }
    }
    names.sort();
    let more = names.len().saturating_sub(AGENTS_LISTED);
    names.truncate(AGENTS_LISTED);
    Ok(AgentNames { names, more })
}
