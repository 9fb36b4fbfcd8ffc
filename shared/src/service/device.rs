//! The device authorization grant (RFC 8628): the device authorization endpoint, the
//! verification page's flow (enter the code, sign in, confirm and approve or deny), and the
//! token endpoint's `urn:ietf:params:oauth:grant-type:device_code`.
//!
//! A device code is a [`DeviceCode`] in the store under the hash of its device code, with a
//! pointer under the hash of its user code; neither code is stored or logged in the clear.
//! Every change to it is a write at the version read: a poll records its time (too fast: the
//! interval grows by 5 s, RFC 8628 §3.5, on every instance), a user's decision lands once, and
//! the redemption of an approved code takes it in the same transaction that creates the grant,
//! so of any number of concurrent polls exactly one gets tokens.
//!
//! User codes are guessable by design: the verification page counts refusals per tenant and
//! lookups per client in fixed windows in the store (`Repo::take_from_window`), refuses once
//! either is used up, and audits refusals at most [`AUDITED_PER_WINDOW`] times per tenant and
//! window.

use crate::domain::access::Denied;
use crate::domain::audit::{AuditKind, Noted};
use crate::domain::client::Client;
use crate::domain::device::{
    Approval, DEFAULT_INTERVAL, DeviceCode, DeviceStatus, Poll, display_user_code, normalize_user_code,
    user_code_from,
};
use crate::domain::grant_type::{GrantType, TokenResponse};
use crate::domain::params::Params;
use crate::domain::scope::{ScopeSet, grant_scope};
use crate::domain::tenant::TenantId;
use crate::domain::user::User;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::{Secret, random_id};
use crate::service::App;
use crate::service::authorize::{AgentNames, CookieSessions, RequestedResource, agent_names, describe_scope};
use crate::service::grants::{ATTEMPTS, Issue, issue, new_refresh, refresh_binding, refresh_lifetimes};
use crate::service::token_endpoint::TokenRequest;
use crate::service::users::{self, LoginFailure, active_user};
use crate::store::repo::Versioned;
use crate::store::repo_users::{Consent, Grant, Session};
use crate::store::{StoreError, Write};

/// How long a device code and its user code live, in seconds.
pub const DEVICE_CODE_TTL: i64 = 600;

/// The window the verification page's counters count in, in seconds.
pub const ATTEMPT_WINDOW: i64 = 600;

/// Refused user codes per tenant and window (wrong, expired or answered codes): beyond it the
/// tenant's verification page refuses every code until the window ends. With at most this many
/// guesses per 10 minutes against 20⁸ codes, guessing a live one is hopeless.
pub const TENANT_REFUSALS_PER_WINDOW: u64 = 100;

/// Lookups of one client's live codes per window (a user entering a code, signing in,
/// deciding): bounds what one client's codes can be tried for.
pub const CLIENT_LOOKUPS_PER_WINDOW: u64 = 300;

/// Refusals audited per tenant and window: the rest are counted, not written.
pub const AUDITED_PER_WINDOW: u64 = 10;

/// The answer of the device authorization endpoint (RFC 8628 §3.2); http adds the URIs.
#[derive(Debug)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    /// `XXXX-XXXX`.
    pub user_code: String,
    pub expires_in: i64,
    pub interval: i64,
    /// The tenant whose verification page approves it.
    pub tenant: TenantId,
}

/// `POST /oauth2/device_authorization` by `client` (authenticated as at the token endpoint).
pub async fn authorize(app: &App, client: &Client, p: &Params) -> Result<DeviceAuthorization, OAuthError> {
    if !client.may_use_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the device_code grant",
        ));
    }
    let tenant = app
        .tenant(client.tenant.as_str())
        .await?
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    // `agent:act` too: the confirmation page names the app's agents, as the consent page does.
    let scope =
        grant_scope(p.get("scope"), &client.allowed_scopes(&tenant)).map_err(OAuthError::invalid_scope)?;
    let mut resources: Vec<String> = p.all("resource").to_vec();
    resources.sort();
    resources.dedup();
    if resources.iter().any(|r| !tenant.resources.contains(r)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "a resource is not one this tenant serves",
        ));
    }
    let now = app.now();
    for _ in 0..ATTEMPTS {
        let device_code = crate::secret::generate();
        let user_code = draw_user_code();
        let record = DeviceCode {
            tenant: client.tenant.clone(),
            client_id: client.client_id.clone(),
            scope: scope.to_scope_string(),
            resources: resources.clone(),
            issuer_scope: app.config.tenant_scope.clone(),
            user_code_hash: Secret::new(&user_code).hash().to_hex(),
            created_at: now,
            expires_at: now + DEVICE_CODE_TTL,
            interval: DEFAULT_INTERVAL,
            last_poll: None,
            status: DeviceStatus::Pending,
        };
        let writes = app
            .repo
            .create_device_writes(&device_code.hash().to_hex(), &record)?;
        match app.repo.commit(writes.into()).await {
            Ok(()) => {
                return Ok(DeviceAuthorization {
                    device_code,
                    user_code: display_user_code(&user_code),
                    expires_in: DEVICE_CODE_TTL,
                    interval: DEFAULT_INTERVAL,
                    tenant: client.tenant.clone(),
                });
            }
            // The user code is live already (one in 10⁶ at a million live codes): draw again.
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::unavailable())
}

fn draw_user_code() -> String {
    use rand::RngCore;
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        if let Some(code) = user_code_from(&bytes) {
            return code;
        }
    }
}

// ---- the verification page ----------------------------------------------------------------

/// What the verification page shows next: the flow's terms only (words, forms and CSRF tokens
/// are http's).
#[derive(Debug)]
pub enum DeviceOutcome {
    /// The form to type the code in, filled in with `prefill` (a code from
    /// `verification_uri_complete`, still to be confirmed by the user).
    EnterCode { prefill: String },
    /// The user must sign in to the code's tenant (again, after a `failure`).
    NeedLogin {
        user_code: String,
        client_name: String,
        username: String,
        failure: Option<LoginFailure>,
    },
    /// The user confirms the code and approves or denies.
    Confirm(Box<DeviceConsent>),
    /// The user's decision landed.
    Done { approved: bool, client_name: String },
    /// Refused on our own page (never a redirect).
    Refused(DeviceRefusal),
}

/// What the confirmation page shows.
#[derive(Debug)]
pub struct DeviceConsent {
    /// `XXXX-XXXX`: the user checks it against the one their device shows.
    pub user_code: String,
    pub client: Client,
    pub user: User,
    /// (scope, the tenant's description), in display order.
    pub scopes: Vec<(String, String)>,
    pub resources: Vec<RequestedResource>,
    /// When it asks for `agent:act`: the app's agents, which would act for the user.
    pub agents: Option<AgentNames>,
    /// The app's consent epoch the page shows it at: the decision carries it back, and an app
    /// changed since (a new agent, a new redirect URI) is shown again rather than approved.
    pub client_epoch: u64,
}

/// Why the verification page refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRefusal {
    /// No live, undecided code of this tenant (at this issuer) is that code: wrong, expired,
    /// already approved or denied.
    UnknownCode,
    /// The tenant's (or the code's client's) attempts are used up for now.
    TooManyAttempts,
    /// The form's CSRF token does not match this browser, or the form is not one we show.
    FormExpired,
    /// The decision came without a live session for the tenant.
    SessionEnded,
    /// The form answered neither approve nor deny.
    NoDecision,
    /// The code's client was deleted since.
    ClientGone,
    /// The tenant's administrator does not let this user use this app.
    NotPermitted(Denied),
    /// The page names no tenant this issuer serves.
    UnknownTenant,
}

/// A step of the verification page, plus a new session cookie to set (after a login).
pub struct DeviceStep {
    pub outcome: DeviceOutcome,
    pub new_session: Option<(Secret, Session)>,
}

impl From<DeviceOutcome> for DeviceStep {
    fn from(outcome: DeviceOutcome) -> Self {
        DeviceStep {
            outcome,
            new_session: None,
        }
    }
}

fn refused(why: DeviceRefusal) -> Result<DeviceStep, OAuthError> {
    Ok(DeviceOutcome::Refused(why).into())
}

/// The verification page for `tenant`: a `GET` (`form` is the query: at most a code to fill
/// in) or a posted form (`action` = `code`, `login` or `decide`, with its CSRF token).
pub async fn page(
    app: &App,
    tenant: Option<&str>,
    form: &Params,
    posted: bool,
    browser: &Secret,
    cookie: CookieSessions<'_>,
) -> Result<DeviceStep, OAuthError> {
    let Some(tenant) = tenant
        .filter(|t| app.config.serves_tenant(t))
        .and_then(|t| TenantId::parse(t).ok())
    else {
        return refused(DeviceRefusal::UnknownTenant);
    };
    if app.repo.tenant(tenant.as_str()).await?.is_none() {
        return refused(DeviceRefusal::UnknownTenant);
    }
    if !posted {
        // A prefilled code is shown only in its normal form (nothing else from the URL).
        let prefill = form
            .get("user_code")
            .and_then(normalize_user_code)
            .map(|c| display_user_code(&c))
            .unwrap_or_default();
        return Ok(DeviceOutcome::EnterCode { prefill }.into());
    }
    if !crate::domain::csrf::check(form.get("csrf"), browser.expose()) {
        tracing::info!("device verification form refused: CSRF token");
        return refused(DeviceRefusal::FormExpired);
    }
    let Some(found) = lookup(app, &tenant, form.get("user_code")).await? else {
        return Ok(DeviceOutcome::Refused(refusal_of(app, &tenant).await?).into());
    };
    let Found {
        hash,
        device,
        client,
        user_code,
    } = match found {
        Ok(f) => f,
        Err(why) => return refused(why),
    };
    let session = cookie.for_tenant_of(app, &tenant).await?;
    match form.get("action") {
        Some("code") => match session {
            Some((_, user)) => confirm(app, client, user, &device.value, user_code).await,
            None => Ok(need_login(&client, user_code, String::new(), None)),
        },
        Some("login") => {
            let username = form.get("username").unwrap_or_default();
            let password = Secret::new(form.get("password").unwrap_or_default());
            let user = match users::login(app, &tenant, username, &password).await {
                Ok(u) => u,
                Err(e) => {
                    let failure = e.failure()?;
                    return Ok(need_login(
                        &client,
                        user_code,
                        username.chars().take(128).collect(),
                        Some(failure),
                    ));
                }
            };
            let (cookie, session) = users::start_session(app, &user).await?;
            let mut step = confirm(app, client, user, &device.value, user_code).await?;
            step.new_session = Some((cookie, session));
            Ok(step)
        }
        Some("decide") => {
            let Some((session, user)) = session else {
                return refused(DeviceRefusal::SessionEnded);
            };
            let approve = match form.get("decision") {
                Some("approve") => true,
                Some("deny") => false,
                _ => return refused(DeviceRefusal::NoDecision),
            };
            // Approval is of the app as the page showed it (its agents): changed since, show it
            // again. A denial stands whatever changed.
            let shown = form.get("epoch").and_then(|e| e.parse::<u64>().ok());
            if approve && shown != Some(client.consent_epoch) {
                return confirm(app, client, user, &device.value, user_code).await;
            }
            decide(app, &hash, device, &client, &session, &user, approve).await
        }
        _ => refused(DeviceRefusal::FormExpired),
    }
}

impl CookieSessions<'_> {
    async fn for_tenant_of(
        &self,
        app: &App,
        tenant: &TenantId,
    ) -> Result<Option<(Session, User)>, OAuthError> {
        let cookie = (self.lookup)(tenant.as_str());
        users::session(app, tenant, cookie.as_ref()).await
    }
}

fn need_login(
    client: &Client,
    user_code: String,
    username: String,
    failure: Option<LoginFailure>,
) -> DeviceStep {
    DeviceOutcome::NeedLogin {
        user_code,
        client_name: client.display_name(),
        username,
        failure,
    }
    .into()
}

/// A code found live and undecided, with its client.
struct Found {
    hash: String,
    device: Versioned<DeviceCode>,
    client: Client,
    /// `XXXX-XXXX`.
    user_code: String,
}

/// Look up what the user typed. `None`: no such live, undecided code of `tenant` at this
/// issuer (counted against the tenant's window). `Some(Err)`: found, but the client's lookups
/// are used up or the client is gone.
async fn lookup(
    app: &App,
    tenant: &TenantId,
    typed: Option<&str>,
) -> Result<Option<Result<Found, DeviceRefusal>>, OAuthError> {
    // Once the tenant's refusals are used up, no code is even looked up until the window ends.
    if app
        .repo
        .window_count(&tenant_refusals_key(tenant), ATTEMPT_WINDOW)
        .await?
        >= TENANT_REFUSALS_PER_WINDOW
    {
        return Ok(Some(Err(DeviceRefusal::TooManyAttempts)));
    }
    let Some(code) = typed.and_then(normalize_user_code) else {
        return Ok(None);
    };
    let user_code_hash = Secret::new(&code).hash().to_hex();
    let Some((hash, device)) = app.repo.device_by_user_code(&user_code_hash).await? else {
        return Ok(None);
    };
    let d = &device.value;
    if d.tenant != *tenant || d.issuer_scope != app.config.tenant_scope || !d.awaits_decision(app.now()) {
        return Ok(None);
    }
    let client_key = format!("device-client#{}#{}", d.tenant.as_str(), d.client_id);
    if !app
        .repo
        .take_from_window(&client_key, CLIENT_LOOKUPS_PER_WINDOW, ATTEMPT_WINDOW)
        .await?
    {
        note_refusal(app, tenant, "client attempts used up").await?;
        return Ok(Some(Err(DeviceRefusal::TooManyAttempts)));
    }
    let Some(client) = app
        .repo
        .client_in(d.tenant.as_str(), &d.client_id)
        .await?
        .map(|c| c.value)
        .filter(|c| c.issued_at <= d.created_at)
    else {
        return Ok(Some(Err(DeviceRefusal::ClientGone)));
    };
    Ok(Some(Ok(Found {
        hash,
        device,
        client,
        user_code: display_user_code(&code),
    })))
}

fn tenant_refusals_key(tenant: &TenantId) -> String {
    format!("device-refused#{}", tenant.as_str())
}

/// A code not found: count it against the tenant's window, audit it (bounded), and say why.
async fn refusal_of(app: &App, tenant: &TenantId) -> Result<DeviceRefusal, OAuthError> {
    let counted = app
        .repo
        .take_from_window(
            &tenant_refusals_key(tenant),
            TENANT_REFUSALS_PER_WINDOW,
            ATTEMPT_WINDOW,
        )
        .await?;
    note_refusal(app, tenant, "unknown, expired or answered code").await?;
    Ok(if counted {
        DeviceRefusal::UnknownCode
    } else {
        DeviceRefusal::TooManyAttempts
    })
}

/// Audit a refusal, at most [`AUDITED_PER_WINDOW`] per tenant and window: a stranger can make
/// refusals without end, but not audit items.
async fn note_refusal(app: &App, tenant: &TenantId, why: &str) -> Result<(), OAuthError> {
    let key = format!("device-audited#{}", tenant.as_str());
    if app
        .repo
        .take_from_window(&key, AUDITED_PER_WINDOW, ATTEMPT_WINDOW)
        .await?
    {
        app.repo
            .note(
                tenant.as_str(),
                Noted::DeviceCodeRefused,
                "verification page",
                why,
            )
            .await?;
    }
    tracing::info!(tenant = tenant.as_str(), why, "user code refused");
    Ok(())
}

/// The confirmation page for a signed-in `user` (if the tenant's administrator lets them use
/// the app).
async fn confirm(
    app: &App,
    client: Client,
    user: User,
    d: &DeviceCode,
    user_code: String,
) -> Result<DeviceStep, OAuthError> {
    let tenant = app
        .repo
        .tenant(d.tenant.as_str())
        .await?
        .map(|t| t.value)
        .ok_or_else(OAuthError::server_error)?;
    if let Err(why) = crate::service::access::permitted(app, &tenant, &client, &user.sub).await? {
        return refused(DeviceRefusal::NotPermitted(why));
    }
    let scope = ScopeSet::parse(&d.scope).unwrap_or_default();
    let mut names: Vec<&str> = scope.iter().collect();
    crate::domain::scope::display_order(&mut names);
    let scopes = names
        .iter()
        .map(|s| (s.to_string(), describe_scope(&tenant, s)))
        .collect();
    let resources = d
        .resources
        .iter()
        .map(|r| RequestedResource {
            uri: r.clone(),
            name: tenant.resource_name(r).map(str::to_string),
        })
        .collect();
    let agents = if scope.contains(crate::domain::exchange::AGENT_ACT) {
        Some(agent_names(app, &client).await?)
    } else {
        None
    };
    Ok(DeviceOutcome::Confirm(Box::new(DeviceConsent {
        user_code,
        client_epoch: client.consent_epoch,
        client,
        user,
        scopes,
        resources,
        agents,
    }))
    .into())
}

/// The user's decision, landing once (a write at the version read): approve records who
/// approved (and the user's consent, as the consent page does), deny marks it denied.
async fn decide(
    app: &App,
    hash: &str,
    device: Versioned<DeviceCode>,
    client: &Client,
    session: &Session,
    user: &User,
    approve: bool,
) -> Result<DeviceStep, OAuthError> {
    let tenant_id = device.value.tenant.clone();
    let tenant = app
        .repo
        .tenant(tenant_id.as_str())
        .await?
        .map(|t| t.value)
        .ok_or_else(OAuthError::server_error)?;
    if let Err(why) = crate::service::access::permitted(app, &tenant, client, &user.sub).await? {
        return refused(DeviceRefusal::NotPermitted(why));
    }
    let now = app.now();
    let mut d = device.value.clone();
    let mut writes: Vec<Write> = Vec::new();
    if approve {
        let revocation = app
            .repo
            .app_revoked(tenant_id.as_str(), &user.sub, &client.client_id)
            .await?
            .map(|m| m.version);
        d.status = DeviceStatus::Approved(Approval {
            sub: user.sub.clone(),
            auth_time: session.auth_time,
            user_epoch: user.session_epoch,
            grant_epoch: user.grant_epoch,
            revocation,
        });
        let existing = app
            .repo
            .consent(tenant_id.as_str(), &user.sub, &client.client_id)
            .await?;
        let counted = existing
            .as_ref()
            .filter(|c| c.value.counts(client.consent_epoch, user.grant_epoch));
        let granted = counted
            .map(|c| ScopeSet::parse(&c.value.scope).unwrap_or_default())
            .unwrap_or_default();
        let consent = Consent {
            tenant: tenant_id.clone(),
            sub: user.sub.clone(),
            client_id: client.client_id.clone(),
            scope: granted
                .union(&ScopeSet::parse(&d.scope).unwrap_or_default())
                .to_scope_string(),
            granted_at: existing.as_ref().map(|c| c.value.granted_at).unwrap_or(now),
            updated_at: now,
            client_epoch: client.consent_epoch,
            resources: crate::domain::authorize::merged_resources(
                counted.map(|c| &c.value.resources),
                &d.resources,
            ),
            user_epoch: user.grant_epoch,
        };
        writes.extend(
            app.repo
                .put_consent_writes(&consent, existing.as_ref().map(|c| c.version))?,
        );
        writes.push(app.repo.audit_write_detail(
            tenant_id.as_str(),
            AuditKind::ConsentGranted,
            &user.sub,
            &client.client_id,
            Some("device_code".into()),
        )?);
    } else {
        d.status = DeviceStatus::Denied;
        writes.push(app.repo.audit_write_detail(
            tenant_id.as_str(),
            AuditKind::ConsentDenied,
            &user.sub,
            &client.client_id,
            Some("device_code".into()),
        )?);
    }
    let mut current = device.value.clone();
    let mut at = device.version;
    for _ in 0..ATTEMPTS {
        let mut attempt = writes.clone();
        let mut decided = current.clone();
        decided.status = d.status.clone();
        attempt.push(app.repo.put_device_write(hash, &decided, at)?);
        match app.repo.commit(attempt).await {
            Ok(()) => {
                return Ok(DeviceOutcome::Done {
                    approved: approve,
                    client_name: client.display_name(),
                }
                .into());
            }
            // The device polled meanwhile (its poll time and interval changed): decide on the
            // code as it is now, if it still awaits a decision.
            Err(StoreError::Conflict) => match app.repo.device(hash).await? {
                Some(now_is) if now_is.value.awaits_decision(app.now()) => {
                    current = now_is.value;
                    at = now_is.version;
                }
                // Answered in another tab, or expired: the user looks again.
                Some(_) | None => return refused(DeviceRefusal::FormExpired),
            },
            Err(e) => return Err(e.into()),
        }
    }
    refused(DeviceRefusal::FormExpired)
}

// ---- the token endpoint ---------------------------------------------------------------------

fn invalid_grant() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        "the device code is invalid, expired or already used",
    )
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code`: a poll (RFC 8628 §3.4, §3.5).
pub async fn device_code(app: &App, r: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (client, p) = (r.client, r.params);
    let code = Secret::new(p.require("device_code").map_err(OAuthError::invalid_request)?);
    let hash = code.hash().to_hex();
    let Some(device) = app.repo.device(&hash).await? else {
        return Err(invalid_grant());
    };
    // Only the client it was issued to — this very client, not one made again under its id
    // since, nor one whose tokens were revoked since —, at the issuer it was issued at.
    let d = &device.value;
    if d.client_id != client.client_id
        || d.tenant != client.tenant
        || d.issuer_scope != app.config.tenant_scope
        || d.created_at < client.issued_at
        || d.created_at <= client.tokens_revoked_before
    {
        return Err(invalid_grant());
    }
    let mut next = device.value.clone();
    match next.poll(app.now()) {
        Poll::Expired => Err(OAuthError::new(
            ErrorCode::ExpiredToken,
            "the device code expired: start again",
        )),
        outcome @ (Poll::Pending | Poll::SlowDown { .. }) => {
            let write = app.repo.put_device_write(&hash, &next, device.version)?;
            match (app.repo.commit(vec![write]).await, outcome) {
                (Ok(()), Poll::Pending) => Err(OAuthError::new(
                    ErrorCode::AuthorizationPending,
                    "the user has not approved the request yet",
                )),
                // Another poll (or the user's decision) landed between our read and our write:
                // polled too fast, unless it was the decision (then the next poll gets it).
                (Ok(()), _) | (Err(StoreError::Conflict), _) => Err(OAuthError::new(
                    ErrorCode::SlowDown,
                    "polling too fast: wait 5 seconds longer between polls",
                )),
                (Err(e), _) => Err(e.into()),
            }
        }
        Poll::Denied => {
            let take = app.repo.take_device_writes(&hash, d, device.version);
            match app.repo.commit(take.into()).await {
                // RFC 8628 §3.5: a token endpoint error, so 400 (RFC 6749 §5.2), not 403.
                Ok(()) => Err(
                    OAuthError::new(ErrorCode::AccessDenied, "the user denied the request")
                        .with_status(http::StatusCode::BAD_REQUEST),
                ),
                Err(StoreError::Conflict) => Err(invalid_grant()),
                Err(e) => Err(e.into()),
            }
        }
        Poll::Approved(a) => redeem(app, r, &hash, device, a).await,
    }
}

/// Redeem an approved device code: a grant as a code redemption creates one (the same
/// functions: `create_grant_writes`, `issue`, the refresh token), in one transaction with the
/// take of the device code at the version read, so exactly one poll gets the tokens.
async fn redeem(
    app: &App,
    r: &TokenRequest<'_>,
    hash: &str,
    device: Versioned<DeviceCode>,
    a: Approval,
) -> Result<TokenResponse, OAuthError> {
    let (client, p, dpop) = (r.client, r.params, r.dpop.as_ref());
    let d = &device.value;
    let tenant_id = d.tenant.clone();
    // The user as approved: deactivated, a new password, signed out everywhere or the app
    // taken back since — nothing.
    let Some(mut user) = active_user(app, &tenant_id, &a.sub).await? else {
        return Err(invalid_grant());
    };
    if user.value.session_epoch != a.user_epoch || !user.value.grant_stands(a.grant_epoch) {
        return Err(invalid_grant());
    }
    let revoked = app
        .repo
        .app_revoked(tenant_id.as_str(), &a.sub, &client.client_id)
        .await?
        .map(|m| m.version);
    if revoked != a.revocation {
        return Err(invalid_grant());
    }
    let tenant = app
        .tenant(tenant_id.as_str())
        .await?
        .ok_or_else(OAuthError::server_error)?;
    crate::service::access::require(app, &tenant, client, &a.sub).await?;
    let allowed = client.allowed_scopes(&tenant);
    let scope = ScopeSet::parse(&d.scope)
        .unwrap_or_default()
        .retain(|s| allowed.contains(s));
    let now = app.now();
    let (idle, absolute) = refresh_lifetimes(app, &tenant);
    let grant = Grant {
        gid: random_id(16),
        tenant: tenant_id.clone(),
        sub: a.sub.clone(),
        client_id: client.client_id.clone(),
        scope: scope.to_scope_string(),
        auth_time: a.auth_time,
        created_at: now,
        last_used: now,
        expires_at: now + absolute,
        user_epoch: Some(a.user_epoch),
        grant_epoch: a.grant_epoch,
        resources: d.resources.clone(),
    };
    let refresh = client
        .metadata
        .allows_grant(GrantType::RefreshToken)
        .then(crate::secret::generate);
    let mut writes: Vec<Write> = app.repo.create_grant_writes(&grant)?.into();
    writes.extend(app.repo.take_device_writes(hash, d, device.version));
    writes.push(app.repo.audit_write_detail(
        tenant_id.as_str(),
        AuditKind::GrantCreated,
        &client.client_id,
        &grant.gid,
        Some(format!("grant_type={}", GrantType::DeviceCode.as_str())),
    )?);
    if let Some(rt) = &refresh {
        let mut record = new_refresh(&grant, now, idle);
        record.jkt = refresh_binding(client, dpop);
        writes.push(app.repo.create_refresh_write(&rt.hash().to_hex(), &record)?);
    }
    writes.push(app.repo.client_exists_check(client));
    writes.push(
        app.repo
            .app_revoked_unchanged_check(tenant_id.as_str(), &a.sub, &client.client_id, revoked),
    );
    // Sign first, write second: if the transaction does not land, nothing was issued.
    let body = issue(
        app,
        Issue {
            client,
            tenant: &tenant,
            grant: &grant,
            scope: &scope,
            params: p,
            nonce: None,
            refresh: refresh.as_ref(),
            dpop,
        },
    )
    .await?;
    for _ in 0..ATTEMPTS {
        let mut attempt = writes.clone();
        attempt.push(app.repo.user_unchanged_check(&user.value.sub, user.version));
        match app.repo.commit(attempt).await {
            Ok(()) => return Ok(body),
            Err(StoreError::Conflict) => {
                // Taken by another poll (or changed), or the user or client changed: look again.
                let still = app.repo.device(hash).await?;
                if still.map(|s| s.version) != Some(device.version) {
                    return Err(invalid_grant());
                }
                let (Some(u), Some(_)) = (
                    active_user(app, &tenant_id, &a.sub).await?,
                    app.repo
                        .client_in(client.tenant.as_str(), &client.client_id)
                        .await?,
                ) else {
                    return Err(invalid_grant());
                };
                if u.value.session_epoch != a.user_epoch || !u.value.grant_stands(a.grant_epoch) {
                    return Err(invalid_grant());
                }
                let marker = app
                    .repo
                    .app_revoked(tenant_id.as_str(), &a.sub, &client.client_id)
                    .await?;
                if marker.map(|m| m.version) != revoked {
                    return Err(invalid_grant());
                }
                user = u;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::unavailable())
}
