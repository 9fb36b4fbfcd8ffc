//! End users: creation and deactivation (CLI), password login with a store-backed throttle,
//! and browser sessions.

use crate::domain::audit::{AuditKind, Noted};
use crate::domain::id::Subject;
use std::sync::{Arc, LazyLock};

use crate::domain::tenant::TenantId;
use crate::domain::user::{User, check_email, check_new_password, normalize_username};
use crate::error::OAuthError;
use crate::metrics::Event;
use crate::secret::{Secret, SecretHash, hash_password, random_id, verify_against_no_user, verify_password};
use crate::service::App;
use crate::service::tenants::AdminError;
use crate::store::repo::Versioned;
use crate::store::repo_users::{LoginAttempt, Session};
use crate::store::{StoreError, Write};

/// Password hashing (argon2id: 19 MiB and tens of milliseconds each) runs on Tokio's blocking
/// pool, at most this many at once, so that a storm of logins never stalls the async workers
/// that answer every other request (JWKS, token, ...), and memory stays bounded.
static HASHING: LazyLock<Arc<tokio::sync::Semaphore>> = LazyLock::new(|| {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    Arc::new(tokio::sync::Semaphore::new(n.clamp(1, 8)))
});

/// Run a password-hashing closure on the bounded blocking pool. The slot is held by the
/// blocking job itself, so a request dropped midway (client gone, request timeout) keeps it
/// until its hash is done: the bound holds for the work, not just for the requests.
pub async fn on_hashing_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OAuthError> {
    let slot = HASHING
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| OAuthError::server_error())?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        f()
    })
    .await
    .map_err(|_| OAuthError::server_error())
}

/// The user `sub` of `tenant`, if it exists and is active (with its version, so that a write
/// can be conditioned on it not having changed).
pub async fn active_user(
    app: &App,
    tenant: &TenantId,
    sub: &Subject,
) -> Result<Option<Versioned<User>>, OAuthError> {
    Ok(app
        .repo
        .user(sub)
        .await?
        .filter(|u| u.value.active && u.value.tenant.as_str() == tenant))
}

/// How to name user `sub` to themselves (their name, else their username); `None` if there is
/// no such user.
pub async fn display_name(app: &App, sub: &Subject) -> Result<Option<String>, OAuthError> {
    Ok(app
        .repo
        .user(sub)
        .await?
        .map(|u| u.value.name.clone().unwrap_or(u.value.username)))
}

/// What `bulwark user create` takes.
pub struct NewUser<'a> {
    pub tenant: &'a str,
    pub username: &'a str,
    pub password: &'a Secret,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    /// The tenant-admin role.
    pub admin: bool,
}

pub async fn create(app: &App, n: NewUser<'_>) -> Result<User, AdminError> {
    create_by(app, n, "cli").await
}

/// [`create`], recording `actor` in the audit trail.
pub async fn create_by(app: &App, n: NewUser<'_>, actor: &str) -> Result<User, AdminError> {
    let tenant = crate::service::tenants::get(app, n.tenant).await?;
    let username = normalize_username(n.username).map_err(AdminError::Invalid)?;
    check_new_password(n.password).map_err(AdminError::Invalid)?;
    if let Some(e) = n.email {
        check_email(e).map_err(AdminError::Invalid)?;
    }
    if let Some(name) = n.name {
        crate::domain::user::check_display_name(name).map_err(AdminError::Invalid)?;
    }
    let user = User {
        sub: random_id(16).into(),
        tenant: TenantId::parse(tenant.id.as_str()).map_err(AdminError::Invalid)?,
        username,
        password_hash: {
            let p = n.password.clone();
            on_hashing_pool(move || hash_password(&p)).await?
        },
        email: n.email.map(str::to_string),
        name: n.name.map(|s| s.trim().to_string()),
        active: true,
        created_at: app.now(),
        session_epoch: 0,
        grant_epoch: 0,
        admin: n.admin,
    };
    match app.repo.create_user(&user, actor).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict) => Err(AdminError::Exists(format!(
            "user {} in tenant {}",
            user.username, n.tenant
        ))),
        Err(e) => Err(e.into()),
    }
}

/// How far a change to a user signs them out. Either way their session epoch moves
/// (`User::session_epoch`), so their browser sessions and the codes issued in them end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignOut {
    /// Their sessions only; what apps and agents hold for them stays.
    Sessions,
    /// "Sign out everywhere": their sessions and every grant — refresh tokens, the access
    /// tokens issued from them (introspection, userinfo, token exchange) and agents' delegated
    /// tokens — through deactivation's cascade (`end_grants`), the user staying active.
    /// Audited as `user.signed_out_everywhere` in the change's transaction, and each grant it
    /// ends as `grant.revoked`.
    Everywhere,
}

impl SignOut {
    pub fn everywhere_if(everywhere: bool) -> Self {
        if everywhere {
            SignOut::Everywhere
        } else {
            SignOut::Sessions
        }
    }

    /// The audit event of this sign-out, for the transaction of the change that moves the
    /// user's session epoch (none for sessions alone: the change's own event says it).
    pub(crate) fn audit_write(
        self,
        app: &App,
        tenant: &TenantId,
        actor: &str,
        sub: &Subject,
    ) -> Result<Option<Write>, StoreError> {
        match self {
            SignOut::Sessions => Ok(None),
            SignOut::Everywhere => app
                .repo
                .audit_write(tenant, AuditKind::UserSignedOutEverywhere, actor, sub)
                .map(Some),
        }
    }

    /// What the change does to the user item: a new session epoch (every session and code
    /// ends) and, everywhere, a new grant epoch (every grant made until now is dead at its next
    /// use, [`User::grant_epoch`], before the cascade below has deleted it — and so is one a
    /// request in flight writes after the cascade has listed the grants).
    pub(crate) fn apply(self, u: &mut User) {
        u.session_epoch += 1;
        if self == SignOut::Everywhere {
            u.grant_epoch += 1;
        }
    }

    /// Once that change has landed: delete the user's sessions and, everywhere, end their
    /// grants. The user item changed first, so a code redemption or refresh racing with this
    /// fails its transaction's check on the user, or landed before and is listed; and a grant
    /// the cascade does not reach (a failure midway) is dead anyway by
    /// [`User::grant_epoch`]. Asking again runs the cascade again.
    pub(crate) async fn after_commit(
        self,
        app: &App,
        tenant: &TenantId,
        sub: &Subject,
        actor: &str,
    ) -> Result<(), AdminError> {
        app.repo.delete_sessions_of(sub).await?;
        if self == SignOut::Everywhere {
            end_grants(app, sub, actor).await?;
            // And what the user agreed to: an app authorized during a compromise is not
            // authorized again without a consent page (and no agent acts again without one).
            end_consents(app, tenant, sub).await?;
        }
        Ok(())
    }
}

/// Every consent `sub` gave in `tenant` and every delegation to an app's agents ends (deleting
/// a user, [`SignOut::Everywhere`]): the next authorization asks again.
pub(crate) async fn end_consents(app: &App, tenant: &TenantId, sub: &Subject) -> Result<(), OAuthError> {
    for c in app.repo.consents_of(tenant, sub).await? {
        let writes = app.repo.delete_consent_writes(tenant, sub, &c.client_id).to_vec();
        app.repo.commit(writes).await?;
    }
    let delegations: Vec<_> = app
        .repo
        .delegations_of(sub)
        .await?
        .into_iter()
        .map(|d| app.repo.delete_delegation_write(sub, &d.app, &d.agent))
        .collect();
    for chunk in delegations.chunks(25) {
        app.repo.commit(chunk.to_vec()).await?;
    }
    Ok(())
}

/// The user cascade (deactivation, [`SignOut::Everywhere`]): every grant of `sub` is listed
/// (a strongly consistent listing, all pages) and revoked, a `grant.revoked` event each. A
/// grant's refresh tokens and every access token that names it — the user's own and agents'
/// delegated tokens alike — end with it. Call it after the change to the user item has landed.
pub(crate) async fn end_grants(app: &App, sub: &Subject, actor: &str) -> Result<(), OAuthError> {
    let grants: Vec<_> = app
        .repo
        .grants_of(sub)
        .await?
        .iter()
        .map(|g| g.reference())
        .collect();
    crate::service::grants::revoke_grants(app, &grants, Some((AuditKind::GrantRevoked, actor))).await
}

/// Read-modify-write a user by username (retrying when a concurrent writer got there first),
/// with an audit event in the same transaction; then sign them out as far as `sign_out` says.
async fn update_user_as(
    app: &App,
    tenant: &TenantId,
    username: &str,
    kind: AuditKind,
    actor: &str,
    sign_out: SignOut,
    f: impl Fn(&mut User),
) -> Result<User, AdminError> {
    let username = normalize_username(username).map_err(AdminError::Invalid)?;
    for _ in 0..5 {
        let current = app
            .repo
            .user_by_name(tenant, &username)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("user {username} in tenant {tenant}")))?;
        let mut user = current.value.clone();
        f(&mut user);
        // Every change made here ends the user's sessions (see `User::session_epoch`).
        sign_out.apply(&mut user);
        let mut writes = vec![
            app.repo.replace_user_write(&user, current.version)?,
            app.repo.audit_write(tenant, kind, actor, &user.sub)?,
        ];
        writes.extend(sign_out.audit_write(app, tenant, actor, &user.sub)?);
        match app.repo.commit(writes).await {
            Ok(()) => {
                sign_out.after_commit(app, tenant, &user.sub, actor).await?;
                return Ok(user);
            }
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::OAuth(OAuthError::unavailable()))
}

/// Set a new password (`bulwark user set-password`): the user's sessions end, and with
/// [`SignOut::Everywhere`] every grant too (`--sign-out-everywhere`).
pub async fn set_password(
    app: &App,
    tenant: &TenantId,
    username: &str,
    password: &Secret,
    sign_out: SignOut,
) -> Result<(), AdminError> {
    check_new_password(password).map_err(AdminError::Invalid)?;
    let p = password.clone();
    let hash = on_hashing_pool(move || hash_password(&p)).await?;
    update_user_as(
        app,
        tenant,
        username,
        AuditKind::UserPasswordSet,
        "cli",
        sign_out,
        |u| u.password_hash = hash.clone(),
    )
    .await
    .map(|_| ())
}

/// Deactivate a user: no more logins, and their sessions and grants (so their refresh tokens,
/// and their access tokens at introspection and userinfo) end now. The user item changes first,
/// so a code redemption or refresh racing with this fails its transaction's check on the user;
/// then every grant is listed and revoked (`end_grants`).
pub async fn deactivate(app: &App, tenant: &TenantId, username: &str) -> Result<User, AdminError> {
    deactivate_by(app, tenant, username, "cli").await
}

/// [`deactivate`], recording `actor` in the audit trail.
pub async fn deactivate_by(
    app: &App,
    tenant: &TenantId,
    username: &str,
    actor: &str,
) -> Result<User, AdminError> {
    let user = update_user_as(
        app,
        tenant,
        username,
        AuditKind::UserDeactivated,
        actor,
        SignOut::Sessions,
        // Every grant ends: at once by the mark (so none comes back with a reactivation, even
        // one the cascade below did not reach), then by the cascade.
        |u| {
            u.active = false;
            u.grant_epoch += 1;
        },
    )
    .await?;
    end_grants(app, &user.sub, actor).await?;
    Ok(user)
}

/// Let a deactivated user sign in again. Nothing that deactivation ended comes back.
pub async fn reactivate(
    app: &App,
    tenant: &TenantId,
    username: &str,
    actor: &str,
) -> Result<User, AdminError> {
    update_user_as(
        app,
        tenant,
        username,
        AuditKind::UserReactivated,
        actor,
        SignOut::Sessions,
        |u| u.active = true,
    )
    .await
}

/// Link a user to their subject at a trusted identity provider, so that the JWT bearer grant
/// can issue tokens for them. A subject links to one user; the issuer must be trusted.
pub async fn link(
    app: &App,
    tenant: &TenantId,
    username: &str,
    issuer: &str,
    subject: &str,
) -> Result<crate::store::repo_users::FederatedLink, AdminError> {
    let t = app
        .repo
        .tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("tenant {tenant}")))?
        .value;
    match t.trusted_issuer(issuer) {
        None => {
            return Err(AdminError::Invalid(format!(
                "{issuer} is not a trusted issuer of tenant {tenant} (bulwark issuer add)"
            )));
        }
        Some(trusted) => crate::domain::tenant::check_links_users(trusted).map_err(AdminError::Invalid)?,
    }
    if subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "--subject must be 1 to 256 characters".into(),
        ));
    }
    let name = normalize_username(username).map_err(AdminError::Invalid)?;
    let user = app
        .repo
        .user_by_name(tenant, &name)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("user {name} in tenant {tenant}")))?
        .value;
    let l = crate::store::repo_users::FederatedLink {
        tenant: tenant.clone(),
        issuer: issuer.to_string(),
        subject: subject.to_string(),
        sub: user.sub.clone(),
        created_at: app.now(),
    };
    let writes = vec![
        app.repo.create_link_write(&l)?,
        app.repo.audit_write_detail(
            tenant,
            AuditKind::UserLinked,
            "cli",
            &user.sub,
            Some(format!("issuer={issuer}")),
        )?,
    ];
    match app.repo.commit(writes).await {
        Ok(()) => Ok(l),
        Err(StoreError::Conflict) => Err(AdminError::Exists(format!("a link for that subject at {issuer}"))),
        Err(e) => Err(e.into()),
    }
}

/// Why a login failed. The page shows the same words for an unknown user and a wrong password
/// ([`LoginFailure::BadCredentials`]).
#[derive(Debug)]
pub enum LoginError {
    Invalid,
    /// Too many failures for this username: seconds until it may try again.
    Locked(i64),
    Backend(OAuthError),
}

/// Why a login form is shown again (the words are the page's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user, inactive user or wrong password: one answer for all.
    BadCredentials,
    /// Too many failures for this username: seconds until it may try again.
    Locked { retry_after: i64 },
}

impl LoginError {
    /// What the login form is told; `Err` for a backend failure (a 503, not a form).
    pub fn failure(self) -> Result<LoginFailure, OAuthError> {
        match self {
            LoginError::Invalid => Ok(LoginFailure::BadCredentials),
            LoginError::Locked(secs) => Ok(LoginFailure::Locked { retry_after: secs }),
            LoginError::Backend(e) => Err(e),
        }
    }
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Backend(e.into())
    }
}

/// Check a username and password for `tenant`. Unknown user, inactive user and wrong password
/// take the same time and give the same answer. Each attempt is first reserved in the store's
/// per-username counter (a conditional write, so the limit holds across instances and under
/// any number of parallel tries): once the limit is reached within the window, no further
/// password is even checked until it ends. Failures are audited.
pub async fn login(
    app: &App,
    tenant: &TenantId,
    username: &str,
    password: &Secret,
) -> Result<User, LoginError> {
    let Ok(name) = normalize_username(username) else {
        let p = password.clone();
        on_hashing_pool(move || verify_against_no_user(&p))
            .await
            .map_err(LoginError::Backend)?;
        // Audited, but never with the string itself (a stranger chose it to mislead whoever
        // reads the trail).
        let shown = crate::domain::user::refused_username(username);
        app.repo.note(tenant, Noted::LoginFailed, &shown, &shown).await?;
        app.metrics.record(Event::LoginFailed {
            tenant: tenant.as_str(),
        });
        return Err(LoginError::Invalid);
    };
    if let LoginAttempt::Locked(wait) = app.repo.reserve_login_attempt(tenant, &name).await? {
        // Once per username per lockout window: a stranger hammering a locked name must not
        // be able to write an event per try.
        if app
            .repo
            .take_from_window(
                &format!("lockednote#{tenant}#{name}"),
                1,
                crate::domain::user::THROTTLE_WINDOW,
            )
            .await?
        {
            app.repo.note(tenant, Noted::LoginLocked, &name, &name).await?;
            app.metrics.record(Event::LoginLockedOut {
                tenant: tenant.as_str(),
            });
        }
        return Err(LoginError::Locked(wait));
    }
    let found = app.repo.user_by_name(tenant, &name).await?;
    let p = password.clone();
    let phc = found.as_ref().map(|u| u.value.password_hash.clone());
    let verified = on_hashing_pool(move || match phc {
        Some(h) => verify_password(&p, &h),
        None => verify_against_no_user(&p),
    })
    .await
    .map_err(LoginError::Backend)?;
    match found {
        Some(u) if verified && u.value.active => {
            app.repo.clear_login_failures(tenant, &name).await?;
            Ok(u.value)
        }
        _ => {
            app.repo.note(tenant, Noted::LoginFailed, &name, &name).await?;
            app.metrics.record(Event::LoginFailed {
                tenant: tenant.as_str(),
            });
            Err(LoginError::Invalid)
        }
    }
}

/// Start a session for `user`; returns the cookie value (shown to the browser only).
pub async fn start_session(app: &App, user: &User) -> Result<(Secret, Session), OAuthError> {
    let id = crate::secret::generate();
    let now = app.now();
    let ttl = app
        .repo
        .tenant(user.tenant.as_str())
        .await?
        .and_then(|t| t.value.session_ttl)
        .unwrap_or(app.config.lifetimes.session);
    let session = Session {
        tenant: user.tenant.clone(),
        sub: user.sub.clone(),
        auth_time: now,
        user_epoch: user.session_epoch,
        created_at: now,
        expires_at: now + ttl,
    };
    // Two single writes, not a transaction (which bills twice): the session, then its audit
    // event. If the event fails, the caller gets an error and never the session's id, so no
    // session is used without its event, and no event tells of a session that was not written.
    app.repo
        .commit(vec![
            app.repo.create_session_write(&id.hash().to_hex(), &session)?,
        ])
        .await?;
    app.repo
        .commit(vec![app.repo.audit_write(
            user.tenant.as_str(),
            AuditKind::LoginSucceeded,
            &user.sub,
            &user.sub,
        )?])
        .await?;
    Ok((id, session))
}

/// The live session a cookie names, if it belongs to `tenant` and its user is still active.
pub async fn session(
    app: &App,
    tenant: &TenantId,
    cookie: Option<&Secret>,
) -> Result<Option<(Session, User)>, OAuthError> {
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    if cookie.expose().len() > 100 {
        return Ok(None);
    }
    let hash = cookie.hash().to_hex();
    let Some(s) = app.repo.session(&hash).await? else {
        return Ok(None);
    };
    // Found by its hash; the comparison of hashes is constant-time all the same.
    if !SecretHash::from_hex(&hash).is_some_and(|h| h.verify(cookie)) || s.tenant != tenant {
        return Ok(None);
    }
    match app.repo.user(&s.sub).await? {
        Some(u)
            if u.value.active
                && u.value.tenant.as_str() == tenant
                && s.user_epoch == u.value.session_epoch =>
        {
            Ok(Some((s, u.value)))
        }
        _ => Ok(None),
    }
}

pub async fn end_session(app: &App, cookie: &Secret) -> Result<(), OAuthError> {
    app.repo.delete_session(&cookie.hash().to_hex()).await?;
    Ok(())
}

/// The user signs out on the account page: their session ends, with its audit event, in one
/// transaction.
pub async fn sign_out(
    app: &App,
    tenant: &TenantId,
    cookie: &Secret,
    sub: &Subject,
) -> Result<(), OAuthError> {
    app.repo
        .commit(vec![
            app.repo.delete_session_write(&cookie.hash().to_hex()),
            app.repo.audit_write(tenant, AuditKind::Logout, sub, sub)?,
        ])
        .await?;
    Ok(())
}
