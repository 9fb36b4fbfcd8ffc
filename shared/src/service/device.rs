//! The device authorization grant (RFC 8628): the device authorization endpoint, the
//! verification page's flow (enter the code, sign in, confirm and approve or deny), and the
//! token endpoint's `urn:ietf:params:oauth:grant-type:device_code`.
//!
//! A device code is a [`DeviceCode`] in the store under the SHA-256 of its device code (256
//! bits: the hash protects it), with a pointer under the SHA-256 of its user code (37 bits: the
//! hash does not protect it, see below); neither code is logged.
//! Every change to it is a write at the version read: a poll in time records its time (too
//! fast: the interval grows by 5 s, RFC 8628 §3.5, on every instance; at its cap, no write), a user's decision lands once, and
//! the redemption of an approved code takes it in the same transaction that creates the grant,
//! so of any number of concurrent polls exactly one gets tokens.
//!
//! User codes are guessable by design (short, to be typed; stored hashed, which hides them from
//! a casual look only): what protects them is their 10-minute life, the bounds on wrong codes
//! — per signed-in user and, as a backstop, per tenant, counted in fixed windows in the store
//! (`Repo::take_from_window`) — and the user's confirmation of the code their device shows. A
//! code is looked up only for a signed-in user; a right code counts against no one. Refusals
//! are audited at most [`AUDITED_PER_WINDOW`] times per tenant and window. A client may be
//! issued at most [`CODES_PER_CLIENT_PER_WINDOW`] device codes per window.

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

/// Wrong codes one signed-in user may type per window (wrong, expired or answered codes):
/// beyond it that user's page refuses codes until the window ends — that user only.
pub const USER_MISSES_PER_WINDOW: u64 = 10;

/// Wrong codes per tenant and window, from all its users: a backstop honest load never reaches
/// (each user has [`USER_MISSES_PER_WINDOW`]). At 1,000 guesses per 10 minutes against 20⁸
/// codes, guessing one of even 10⁴ live codes is a 4·10⁻⁴ chance per window.
pub const TENANT_MISSES_PER_WINDOW: u64 = 1_000;

/// Lookups of one code (the code step and the decision) per window: more only hurts that
/// code's own holder.
pub const LOOKUPS_PER_CODE: u64 = 10;

/// Device codes one client may be issued per window: bounds the store writes a stranger can
/// make with a public client's `client_id` (beyond it, 429 `temporarily_unavailable`).
pub const CODES_PER_CLIENT_PER_WINDOW: u64 = 1_000;

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
    if !app
        .repo
        .take_from_window(
            &format!("device-issued#{}#{}", client.tenant.as_str(), client.client_id),
            CODES_PER_CLIENT_PER_WINDOW,
            ATTEMPT_WINDOW,
        )
        .await?
    {
        tracing::warn!(tenant = client.tenant.as_str(), "device codes per client used up");
        app.metrics.record(crate::metrics::Event::RateLimited {
            tenant: client.tenant.as_str(),
        });
        return Err(OAuthError::too_many_requests(
            "too many device codes for this client; try again in a few minutes",
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
    /// The user must sign in to the tenant first (again, after a `failure`), carrying the code
    /// typed or filled in (`XXXX-XXXX`, or empty), not looked up yet.
    NeedLogin {
        user_code: String,
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
    /// The user's wrong codes (or the tenant's, or the code's lookups) are used up for now.
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
///
/// A code is looked up only for a user signed in to the tenant: a visitor without a session is
/// asked to sign in first (a code from `verification_uri_complete` is kept, filled in, for the
/// user to confirm once signed in), so that wrong codes count against the user who typed them
/// (and a tenant-wide backstop), never against everyone.
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
    // A code carried along is shown only in its normal form (nothing else from the form).
    let prefill = form
        .get("user_code")
        .and_then(normalize_user_code)
        .map(|c| display_user_code(&c))
        .unwrap_or_default();
    if !posted {
        return Ok(match cookie.for_tenant_of(app, &tenant).await? {
            Some(_) => DeviceOutcome::EnterCode { prefill },
            None => need_login(prefill, String::new(), None),
        }
        .into());
    }
    if !crate::domain::csrf::check(form.get("csrf"), browser.expose()) {
        tracing::info!("device verification form refused: CSRF token");
        return refused(DeviceRefusal::FormExpired);
    }
    let session = cookie.for_tenant_of(app, &tenant).await?;
    match form.get("action") {
        Some("code") => {
            let Some((_, user)) = session else {
                // Sign in first; the code is looked up once the user is known.
                return Ok(need_login(prefill, String::new(), None).into());
            };
            let found = match lookup(app, &tenant, &user, form.get("user_code")).await? {
                Ok(f) => f,
                Err(why) => return refused(why),
            };
            confirm(app, found.client, user, &found.device.value, found.user_code).await
        }
        Some("login") => {
            let username = form.get("username").unwrap_or_default();
            let password = Secret::new(form.get("password").unwrap_or_default());
            let user = match users::login(app, &tenant, username, &password).await {
                Ok(u) => u,
                Err(e) => {
                    let failure = e.failure()?;
                    return Ok(
                        need_login(prefill, username.chars().take(128).collect(), Some(failure)).into(),
                    );
                }
            };
            let (cookie, session) = users::start_session(app, &user).await?;
            // Back to the code, still filled in: the user confirms it, now signed in.
            Ok(DeviceStep {
                outcome: DeviceOutcome::EnterCode { prefill },
                new_session: Some((cookie, session)),
            })
        }
        Some("decide") => {
            let Some((session, user)) = session else {
                return refused(DeviceRefusal::SessionEnded);
            };
            let Found {
                hash,
                device,
                client,
                user_code,
            } = match lookup(app, &tenant, &user, form.get("user_code")).await? {
                Ok(f) => f,
                Err(why) => return refused(why),
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

fn need_login(user_code: String, username: String, failure: Option<LoginFailure>) -> DeviceOutcome {
    DeviceOutcome::NeedLogin {
        user_code,
        username,
        failure,
    }
}

/// A code found live and undecided, with its client.
struct Found {
    hash: String,
    device: Versioned<DeviceCode>,
    client: Client,
    /// `XXXX-XXXX`.
    user_code: String,
}

/// Look up what the signed-in `user` typed: a live, undecided code of `tenant` at this issuer.
///
/// Increment first, check second (so that a burst cannot evaluate more guesses than the bound):
/// one of the user's [`USER_MISSES_PER_WINDOW`] and one of the tenant's
/// [`TENANT_MISSES_PER_WINDOW`] are taken before the code is looked up, and both are given back
/// when the code is found — a right code counts against no one. A found code is then counted
/// against itself ([`LOOKUPS_PER_CODE`]): it only hurts its own holder.
async fn lookup(
    app: &App,
    tenant: &TenantId,
    user: &User,
    typed: Option<&str>,
) -> Result<Result<Found, DeviceRefusal>, OAuthError> {
    let user_key = format!("device-user#{}#{}", tenant.as_str(), user.sub.as_str());
    if !app
        .repo
        .take_from_window(&user_key, USER_MISSES_PER_WINDOW, ATTEMPT_WINDOW)
        .await?
    {
        note_refusal(app, tenant, "the user's wrong codes used up").await?;
        return Ok(Err(DeviceRefusal::TooManyAttempts));
    }
    let tenant_key = format!("device-refused#{}", tenant.as_str());
    if !app
        .repo
        .take_from_window(&tenant_key, TENANT_MISSES_PER_WINDOW, ATTEMPT_WINDOW)
        .await?
    {
        app.repo.give_back_to_window(&user_key, ATTEMPT_WINDOW).await?;
        note_refusal(app, tenant, "the tenant's wrong codes used up").await?;
        return Ok(Err(DeviceRefusal::TooManyAttempts));
    }
    let found = find(app, tenant, typed).await?;
    let Some((hash, device, code)) = found else {
        note_refusal(app, tenant, "unknown, expired or answered code").await?;
        return Ok(Err(DeviceRefusal::UnknownCode));
    };
    app.repo.give_back_to_window(&user_key, ATTEMPT_WINDOW).await?;
    app.repo.give_back_to_window(&tenant_key, ATTEMPT_WINDOW).await?;
    if !app
        .repo
        .take_from_window(&format!("device-code#{hash}"), LOOKUPS_PER_CODE, ATTEMPT_WINDOW)
        .await?
    {
        note_refusal(app, tenant, "the code's confirmations used up").await?;
        return Ok(Err(DeviceRefusal::TooManyAttempts));
    }
    let d = &device.value;
    let Some(client) = app
        .repo
        .client_in(d.tenant.as_str(), &d.client_id)
        .await?
        .map(|c| c.value)
        .filter(|c| c.issued_at <= d.created_at)
    else {
        return Ok(Err(DeviceRefusal::ClientGone));
    };
    Ok(Ok(Found {
        hash,
        device,
        client,
        user_code: display_user_code(&code),
    }))
}

/// The live, undecided code of `tenant` at this issuer that `typed` is, if any.
async fn find(
    app: &App,
    tenant: &TenantId,
    typed: Option<&str>,
) -> Result<Option<(String, Versioned<DeviceCode>, String)>, OAuthError> {
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
    Ok(Some((hash, device, code)))
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
        // Too fast with the interval at its cap: nothing changed, nothing to write.
        Poll::SlowDown { .. } if next == device.value => Err(OAuthError::new(
            ErrorCode::SlowDown,
            "polling too fast: wait 5 seconds longer between polls",
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
