//! The user-facing grants at the token endpoint: `authorization_code` (PKCE, single use,
//! replay revokes what the code issued) and `refresh_token` (rotation on every use, reuse
//! revokes the family), the ID token, userinfo, and revoking a grant.
//!
//! Nothing is issued to a user deactivated or a client deleted meanwhile: the user is read
//! before signing, and the transaction that lands a grant or a rotation also checks that the
//! user item has not changed and the client still exists (so a cascade that runs concurrently
//! either sees the new grant or makes its transaction fail).

use crate::domain::audit::AuditKind;
use serde_json::{Value, json};

use crate::domain::authorize::verify_pkce;
use crate::domain::claims::{IdClaims, UserGrant, at_hash, choose_audience, user_claims};
use crate::domain::client::{ADMIN_SCOPE, Client};
use crate::domain::dpop::Jkt;
use crate::domain::grant_type::{GrantType, TokenResponse};
use crate::domain::id::Subject;
use crate::domain::params::Params;
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::Tenant;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::{Secret, random_id};
use crate::service::App;
use crate::service::token_endpoint::TokenRequest;
use crate::service::tokens::{ACCESS_TOKEN_TYP, access_token_ttl};
use crate::service::users::active_user;
use crate::store::repo::Versioned;
use crate::store::repo_users::{Grant, GrantRef, RefreshToken, UsedCode};
use crate::store::{StoreError, Write};

fn invalid_grant(d: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, d)
}

/// How often a token request retries a transaction that lost to a benign concurrent change
/// (e.g. the user's profile was edited between our read and our write).
pub(crate) const ATTEMPTS: usize = 3;

/// Revoke a grant: its refresh tokens stop working and its access tokens introspect inactive.
pub async fn revoke_grant(app: &App, g: &GrantRef, kind: AuditKind, actor: &str) -> Result<(), OAuthError> {
    let mut writes: Vec<Write> = app.repo.delete_grant_writes(g).into();
    writes.push(app.repo.audit_write(&g.tenant, kind, actor, &g.gid)?);
    app.repo.commit(writes).await?;
    Ok(())
}

/// Revoke many grants, a bounded transaction at a time; `audit`: (kind, actor) of an event
/// per grant.
pub async fn revoke_grants(
    app: &App,
    grants: &[GrantRef],
    audit: Option<(AuditKind, &str)>,
) -> Result<(), OAuthError> {
    // At most three writes per grant (grant, its pointer, the audit event): 24 per transaction.
    for chunk in grants.chunks(8) {
        let mut writes = Vec::with_capacity(chunk.len() * 3);
        for g in chunk {
            writes.extend(app.repo.delete_grant_writes(g));
            if let Some((kind, actor)) = audit {
                writes.push(app.repo.audit_write(&g.tenant, kind, actor, &g.gid)?);
            }
        }
        app.repo.commit(writes).await?;
    }
    Ok(())
}

/// What a redemption of code `c` by `client` must get right before the code is taken: the
/// client it was issued to — this very client, not one made again under the same id since (a
/// metadata-document client deleted and met again) —, its tenant, the issuer its request came
/// to (whose `iss` the client was told), not issued before the client's tokens were revoked,
/// the redirect URI and the PKCE verifier.
fn check_redemption(
    app: &App,
    client: &Client,
    c: &crate::store::repo_users::AuthCode,
    p: &Params,
    dpop: Option<&Jkt>,
) -> Result<(), OAuthError> {
    let req = &c.request;
    if req.client_id != client.client_id
        || c.tenant != client.tenant.as_str()
        || c.issued_at <= client.tokens_revoked_before
        || c.issued_at < client.issued_at
        || c.issuer_scope != app.config.tenant_scope
    {
        return Err(invalid_grant(
            "the authorization code is invalid, expired or already used",
        ));
    }
    match p.get("redirect_uri") {
        Some(r) if r == req.redirect_uri => {}
        None if !req.redirect_uri_explicit => {}
        _ => {
            return Err(invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
    }
    let Some(verifier) = p.get("code_verifier") else {
        return Err(invalid_grant("code_verifier is required (PKCE)"));
    };
    if !verify_pkce(verifier, &req.code_challenge) {
        return Err(invalid_grant(
            "the code_verifier does not match the code_challenge",
        ));
    }
    // RFC 9449 §10: a code bound to a DPoP key (`dpop_jkt`) goes only with a proof of that key.
    if let Some(bound) = &req.dpop_jkt
        && dpop != Some(bound)
    {
        return Err(invalid_grant(
            "the authorization code is bound to another DPoP key (dpop_jkt)",
        ));
    }
    Ok(())
}

/// The DPoP key a new refresh token of `client` is bound to: a public client's is bound to the
/// key of the request that got it (RFC 9449 §5); a confidential client's is not.
pub(crate) fn refresh_binding(client: &Client, dpop: Option<&Jkt>) -> Option<Jkt> {
    if client.metadata.is_public() {
        dpop.cloned()
    } else {
        None
    }
}

/// `grant_type=authorization_code`.
pub async fn authorization_code(app: &App, r: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (client, p, dpop) = (r.client, r.params, r.dpop.as_ref());
    let code = Secret::new(p.require("code").map_err(OAuthError::invalid_request)?);
    let hash = code.hash().to_hex();
    let bad = || invalid_grant("the authorization code is invalid, expired or already used");
    // Replayed? Then revoke what its first redemption issued (RFC 6749 §4.1.2) — if the replay
    // proves it holds the code's PKCE verifier too: whoever merely saw a used code (a log, a
    // browser's history) cannot end the user's grant with it.
    let replayed = || async {
        let proves = |u: &UsedCode| match (&u.challenge, p.get("code_verifier")) {
            (None, _) => true,
            (Some(ch), Some(v)) => verify_pkce(v, ch),
            (Some(_), None) => false,
        };
        if let Some(used) = app.repo.used_code(&hash).await?
            && used.grant.tenant == client.tenant.as_str()
            && used.grant.client_id == client.client_id
            && proves(&used)
        {
            tracing::warn!(client_id = %client.client_id, "authorization code replayed; revoking its grant");
            revoke_grant(app, &used.grant, AuditKind::CodeReplayed, &client.client_id).await?;
        }
        Err::<TokenResponse, OAuthError>(bad())
    };
    // Read, check everything the request itself must get right, and only then take the code:
    // another client (or another tenant, or the wrong issuer, redirect URI or verifier) cannot
    // use up a code that is not its to redeem.
    let Some(c) = app.repo.code(&hash).await? else {
        return replayed().await;
    };
    check_redemption(app, client, &c, p, dpop)?;
    if app.repo.take_code(&hash).await?.is_none() {
        // Redeemed concurrently: exactly one redemption gets it.
        return replayed().await;
    }
    let now = app.now();
    let req = &c.request;
    // A code minted before the user was deactivated, or before the user took the app back on
    // the account page, is worth nothing afterwards.
    let Some(user) = active_user(app, &c.tenant, &c.sub).await? else {
        return Err(bad());
    };
    // ... or before anything that ends the user's sessions (a deactivation, even if undone
    // since, a new password, a role change).
    if c.user_epoch.is_some_and(|e| e != user.value.session_epoch) {
        return Err(bad());
    }
    // ... or before the user was signed out everywhere.
    let grant_epoch = c.grant_epoch.unwrap_or(user.value.grant_epoch);
    if !user.value.grant_stands(grant_epoch) {
        return Err(bad());
    }
    let revoked = app.repo.app_revoked(&c.tenant, &c.sub, &client.client_id).await?;
    if revoked.as_ref().map(|r| r.version) != c.revocation {
        return Err(bad());
    }
    let tenant = app
        .tenant(&c.tenant)
        .await?
        .ok_or_else(OAuthError::server_error)?;
    // The administrator may have taken the app off the allowlist, or the user out of its
    // policy, since the code was issued.
    crate::service::access::require(app, &tenant, client, &c.sub).await?;
    // What the client may be issued now: a scope restricted, or taken out of the client or the
    // catalog, since the authorization request is not.
    let allowed = client.allowed_scopes(&tenant);
    let scope = req.scopes().retain(|s| allowed.contains(s));
    let (idle, absolute) = refresh_lifetimes(app, &tenant);
    let grant = Grant {
        gid: random_id(16),
        tenant: c.tenant.clone(),
        sub: c.sub.clone(),
        client_id: client.client_id.clone(),
        scope: scope.to_scope_string(),
        auth_time: c.auth_time,
        created_at: now,
        last_used: now,
        expires_at: now + absolute,
        user_epoch: Some(user.value.session_epoch),
        grant_epoch,
        resources: req.resources.clone(),
    };
    let refresh = client
        .metadata
        .allows_grant(GrantType::RefreshToken)
        .then(crate::secret::generate);
    // Each on its own, no transaction: the used-code marker first (a replay from now on finds
    // the grant to end), the pointer that lists the grant under its client before the grant
    // (a client's cascade never misses it), the grant, its refresh token, the audit event.
    let writes = (|| {
        let [grant_item, pointer] = app.repo.create_grant_writes(&grant)?;
        let mut writes = vec![
            app.repo.used_code_write(
                &hash,
                &UsedCode {
                    grant: grant.reference(),
                    challenge: Some(c.request.code_challenge.clone()),
                },
                now + app.config.lifetimes.used_code,
            )?,
            pointer,
            grant_item,
        ];
        if let Some(r) = &refresh {
            let mut rt = new_refresh(&grant, now, idle);
            rt.jkt = refresh_binding(client, dpop);
            writes.push(app.repo.create_refresh_write(&r.hash().to_hex(), &rt)?);
        }
        writes.push(app.repo.audit_write(
            &c.tenant,
            AuditKind::GrantCreated,
            &client.client_id,
            &grant.gid,
        )?);
        Ok::<_, StoreError>(writes)
    })()?;
    // Sign first, write second: if KMS or DynamoDB fails, nothing is issued, the code is put
    // back, and the client may simply retry (what a failed write left is a grant nobody holds a
    // token of: it expires).
    let issued = Issue {
        client,
        tenant: &tenant,
        grant: &grant,
        scope: &scope,
        params: p,
        nonce: req.nonce.as_deref(),
        refresh: refresh.as_ref(),
        dpop,
    };
    let result = match issue(app, issued).await {
        Err(e) => Err(e),
        Ok(body) => land_grant(app, writes, &grant, &c, client, revoked.map(|r| r.version))
            .await
            .map(|()| body),
    };
    if let Err(e) = &result
        && e.code == ErrorCode::TemporarilyUnavailable
    {
        let restore = app
            .repo
            .create_code_write(&hash, &c, c.issued_at + app.config.lifetimes.code);
        if let Ok(w) = restore
            && app.repo.commit(vec![w]).await.is_err()
        {
            tracing::warn!("could not put an authorization code back after a backend failure");
        }
    }
    result
}

/// Write a redeemed code's grant, each write on its own, then make sure no cascade missed it.
///
/// No condition on the user or the client goes with the writes: every use of a grant reads
/// both (`User::grant_stands`, the client's `issued_at` and `tokens_revoked_before`), so a grant
/// written after a deactivation, a "sign out everywhere" or a client's deletion listed the
/// user's or client's grants is dead at its first use. The one thing no use reads is whether
/// the user took the app back (`account::revoke_app`: its marker, then a listing of the user's
/// grants): read again after the grant landed, a marker moved since the code's check means that
/// listing may have missed this grant, which then goes.
async fn land_grant(
    app: &App,
    writes: Vec<Write>,
    grant: &Grant,
    c: &crate::store::repo_users::AuthCode,
    client: &Client,
    marker: Option<u64>,
) -> Result<(), OAuthError> {
    for w in writes {
        app.repo.commit(vec![w]).await?;
    }
    let current = app.repo.app_revoked(&c.tenant, &c.sub, &client.client_id).await?;
    if current.map(|m| m.version) != marker {
        revoke_grants(app, &[grant.reference()], None).await?;
        return Err(invalid_grant(
            "the authorization code is invalid, expired or already used",
        ));
    }
    Ok(())
}

/// Which grant without a browser a [`Direct`] is: what the audit trail calls it, and whether
/// it may come with a refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DirectKind {
    /// RFC 6749 §4.3.
    Password,
    /// RFC 7523 §2.1, an identity provider's assertion.
    JwtBearer,
    /// An identity assertion authorization grant (an ID-JAG, a profile of RFC 7523): the
    /// enterprise IdP decides each time, so it never comes with a refresh token.
    IdJag,
}

impl DirectKind {
    /// The grant's name in the audit trail.
    pub const fn audit_name(self) -> &'static str {
        match self {
            DirectKind::Password => "password",
            DirectKind::JwtBearer => "jwt-bearer",
            DirectKind::IdJag => "id-jag",
        }
    }

    /// Whether a client registered for `refresh_token` gets one.
    pub const fn refresh(self) -> bool {
        match self {
            DirectKind::Password | DirectKind::JwtBearer => true,
            DirectKind::IdJag => false,
        }
    }
}

/// A grant that needs no browser (password, JWT bearer): `sub` gets tokens at `client`.
pub(crate) struct Direct<'a> {
    pub client: &'a Client,
    pub tenant: &'a Tenant,
    pub sub: &'a Subject,
    pub scope: &'a ScopeSet,
    pub params: &'a Params,
    pub kind: DirectKind,
    /// The key of the request's DPoP proof: the access token is bound to it.
    pub dpop: Option<&'a Jkt>,
    /// RFC 8707 resources the grant is bound to (empty: unbound), as for a code's grant.
    pub resources: Vec<String>,
    /// The user as the grant's check found them (the password grant's login), if it read
    /// them: a user changed since (a new password, "sign out everywhere") gets no grant.
    /// `None`: the user as first read here.
    pub checked: Option<&'a crate::domain::user::User>,
}

/// Issue tokens for a [`Direct`] grant: a grant item is created as a code redemption creates
/// one — so Revoke, user deactivation and client deletion end it — with a refresh token only
/// for clients registered for `refresh_token` (and only if its [`DirectKind::refresh`]), landing only if the
/// user is still as checked and the client exists.
pub(crate) async fn direct_grant(app: &App, d: Direct<'_>) -> Result<TokenResponse, OAuthError> {
    let Direct {
        client,
        tenant,
        sub,
        scope,
        params: p,
        kind,
        dpop,
        resources,
        checked,
    } = d;
    // Letting agents act for a user is the user's decision on the consent page, where the
    // agents are named: a grant without a browser never carries agent:act.
    let agent_act = crate::domain::exchange::AGENT_ACT;
    if p.get("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == agent_act))
    {
        return Err(OAuthError::invalid_scope(
            "agent:act needs the user's consent on the consent page",
        ));
    }
    let scope = &scope.clone().retain(|s| s != agent_act);
    crate::service::access::require(app, tenant, client, sub).await?;
    let now = app.now();
    let (idle, absolute) = refresh_lifetimes(app, tenant);
    let grant = Grant {
        gid: random_id(16),
        tenant: tenant.id.clone(),
        sub: sub.clone(),
        client_id: client.client_id.clone(),
        scope: scope.to_scope_string(),
        auth_time: now,
        created_at: now,
        last_used: now,
        expires_at: now + absolute,
        user_epoch: None,
        grant_epoch: 0,
        resources,
    };
    let refresh = (kind.refresh() && client.metadata.allows_grant(GrantType::RefreshToken))
        .then(crate::secret::generate);
    let body = issue(
        app,
        Issue {
            client,
            tenant,
            grant: &grant,
            scope,
            params: p,
            nonce: None,
            refresh: refresh.as_ref(),
            dpop,
        },
    )
    .await?;
    let gone = || {
        OAuthError::new(
            ErrorCode::InvalidGrant,
            "the user is not active, or changed meanwhile (a new password, signed out everywhere); sign in again",
        )
    };
    let mut expected = checked.map(|u| (u.session_epoch, u.grant_epoch));
    for _ in 0..ATTEMPTS {
        let Some(current) = active_user(app, &tenant.id, sub).await? else {
            return Err(gone());
        };
        // The user as checked, or as first read: changed since (a new password, signed out
        // everywhere), no grant.
        let epochs = (current.value.session_epoch, current.value.grant_epoch);
        if *expected.get_or_insert(epochs) != epochs {
            return Err(gone());
        }
        let grant = Grant {
            grant_epoch: epochs.1,
            ..grant.clone()
        };
        let mut writes: Vec<Write> = app.repo.create_grant_writes(&grant)?.into();
        writes.push(app.repo.audit_write_detail(
            tenant.id.as_str(),
            AuditKind::LoginSucceeded,
            sub,
            sub,
            Some(format!(
                "grant_type={} client={}",
                kind.audit_name(),
                client.client_id
            )),
        )?);
        writes.push(app.repo.audit_write_detail(
            tenant.id.as_str(),
            AuditKind::GrantCreated,
            &client.client_id,
            &grant.gid,
            Some(format!("grant_type={}", kind.audit_name())),
        )?);
        if let Some(r) = &refresh {
            let mut rt = new_refresh(&grant, now, idle);
            rt.jkt = refresh_binding(client, dpop);
            writes.push(app.repo.create_refresh_write(&r.hash().to_hex(), &rt)?);
        }
        writes.push(app.repo.client_exists_check(client));
        writes.push(app.repo.user_unchanged_check(sub, current.version));
        match app.repo.commit(writes).await {
            Ok(()) => return Ok(body),
            Err(StoreError::Conflict) => {
                if app
                    .repo
                    .client_in(client.tenant.as_str(), &client.client_id)
                    .await?
                    .is_none()
                {
                    return Err(OAuthError::invalid_client("client authentication failed"));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::unavailable())
}

/// (idle, absolute) refresh-token lifetimes: the tenant's, else the deployment's defaults.
pub(crate) fn refresh_lifetimes(app: &App, t: &Tenant) -> (i64, i64) {
    let d = app.config.lifetimes;
    (
        t.refresh_idle_ttl.unwrap_or(d.refresh_idle),
        t.refresh_absolute_ttl.unwrap_or(d.refresh_absolute),
    )
}

pub fn new_refresh(grant: &Grant, now: i64, idle: i64) -> RefreshToken {
    RefreshToken {
        gid: grant.gid.clone(),
        tenant: grant.tenant.clone(),
        client_id: grant.client_id.clone(),
        sub: grant.sub.clone(),
        scope: grant.scope.clone(),
        rotated: false,
        created_at: now,
        expires_at: (now + idle).min(grant.expires_at),
        rotated_at: 0,
        successor: None,
        jkt: None,
    }
}

/// Seconds after a refresh token's rotation during which presenting it again returns the same
/// next refresh token (with access and ID tokens signed afresh) instead of revoking the family:
/// one client refreshing from several places at once (an MCP client's parallel tool calls), or
/// retrying after a lost response. Beyond it, reuse is theft (RFC 9700 §4.14.2) and ends the
/// family.
pub const REFRESH_REUSE_GRACE: i64 = 10;

const SUCCESSOR_LABEL: &str = "refresh-successor";

/// What a rotation left for a re-presentation within the grace, sealed in the rotated token:
/// the next refresh token, and what the rotating request asked for. (Sealed blobs written before
/// this held the whole pair too; those fields are ignored: the access and ID tokens are signed
/// afresh, so the rotated item stays under one write unit.)
#[derive(serde::Serialize, serde::Deserialize)]
struct Successor {
    refresh_token: String,
    /// What the rotating request asked for: a re-presentation within the grace gets the next
    /// refresh token only if it asks for the same.
    #[serde(default)]
    asked: Asked,
}

/// The `scope` and `resource`s a refresh request named (normalised: a scope set, sorted
/// resources), to tell a retry of the same request from a different one.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Asked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    resources: Vec<String>,
    /// The key of its DPoP proof: the pair is bound to it, so it goes only to the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop: Option<Jkt>,
}

impl Asked {
    fn of(p: &Params, dpop: Option<&Jkt>) -> Result<Self, OAuthError> {
        let scope = match p.get("scope") {
            None => None,
            Some(s) => Some(
                ScopeSet::parse(s)
                    .map_err(OAuthError::invalid_scope)?
                    .to_scope_string(),
            ),
        };
        let mut resources: Vec<String> = p.all("resource").to_vec();
        resources.sort();
        resources.dedup();
        Ok(Self {
            scope,
            resources,
            dpop: dpop.cloned(),
        })
    }
}

/// What a rotated token presented within the grace gets.
enum Again {
    /// The refresh token its rotation returned (with access and ID tokens signed afresh, for
    /// the same scope and resource, after every check a rotation makes).
    SameNext(Secret),
    /// Nothing: the request asks for another scope or resource than the rotation did (it could
    /// otherwise get back a wider pair than it asked for).
    DifferentRequest,
    /// Past the grace, or the successor was used or its family ended: reuse.
    Reuse,
}

/// Within [`REFRESH_REUSE_GRACE`] of its rotation, a rotated token's successor, if that
/// successor has not itself been used (a client that moved on does not go back) and the request
/// asks for what the rotating one asked for. (Whether the family stands is checked by the
/// caller, as for any refresh.)
async fn same_next_within_grace(
    app: &App,
    presented: &Secret,
    rt: &RefreshToken,
    p: &Params,
    dpop: Option<&Jkt>,
    now: i64,
) -> Result<Again, OAuthError> {
    if now - rt.rotated_at > REFRESH_REUSE_GRACE {
        return Ok(Again::Reuse);
    }
    let Some(s) = rt
        .successor
        .as_deref()
        .and_then(|sealed| crate::secret::open_with(presented, SUCCESSOR_LABEL, sealed))
        .and_then(|plain| serde_json::from_slice::<Successor>(&plain).ok())
    else {
        return Ok(Again::Reuse);
    };
    let next = Secret::new(s.refresh_token);
    match app.repo.refresh_token(&next.hash().to_hex()).await? {
        Some(n) if !n.value.rotated && n.value.gid == rt.gid => {}
        _ => return Ok(Again::Reuse),
    }
    if Asked::of(p, dpop)? != s.asked {
        return Ok(Again::DifferentRequest);
    }
    Ok(Again::SameNext(next))
}

/// How often a refresh moves its grant's `last_used` (the account page's and the admin API's
/// "last used"): at most once an hour, so that a rotation writes only its two refresh tokens.
pub const GRANT_TOUCH_EVERY: i64 = 3600;

/// `grant_type=refresh_token`: only for clients registered for it.
///
/// A rotation is two single-item writes, no transaction: the new token (a random hash nobody
/// else can name), then the presented one marked `rotated` at the version read — the
/// conditional write that makes exactly one of concurrent uses the rotation. The grant, user and
/// client are read fresh before; a cascade that ends any of them deletes the grant, which the
/// next use (and introspection) reads, so no condition check on them is needed here.
pub async fn refresh_token(app: &App, r: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (client, p, dpop) = (r.client, r.params, r.dpop.as_ref());
    let presented = Secret::new(p.require("refresh_token").map_err(OAuthError::invalid_request)?);
    let hash = presented.hash().to_hex();
    let bad = || invalid_grant("the refresh token is invalid, expired or revoked");
    for _ in 0..ATTEMPTS {
        let Some(Versioned { value: rt, version }) = app.repo.refresh_token(&hash).await? else {
            return Err(bad());
        };
        if rt.client_id != client.client_id || rt.tenant != client.tenant.as_str() {
            return Err(bad());
        }
        // A token bound to a DPoP key goes only with a proof of that key; without one it is
        // refused as it stands — no rotation, no reuse detection (a copy without the key gets
        // no tokens and cannot set off the family's revocation this way).
        if let Some(bound) = &rt.jkt
            && dpop != Some(bound)
        {
            return Err(invalid_grant(
                "the refresh token is bound to a DPoP key: send a proof of that key",
            ));
        }
        let mut again = None;
        if rt.rotated {
            match same_next_within_grace(app, &presented, &rt, p, dpop, app.now()).await? {
                Again::SameNext(next) => again = Some(next),
                Again::DifferentRequest => {
                    tracing::info!(client_id = %client.client_id, "refresh token presented again within the grace for another scope or resource; refused");
                    return Err(invalid_grant(
                        "the refresh token was just used; within the grace it is answered only for the same scope and resource as then",
                    ));
                }
                Again::Reuse => {
                    tracing::warn!(client_id = %client.client_id, "refresh token reused; revoking its family");
                    revoke_grant(app, &rt.grant(), AuditKind::RefreshReused, &client.client_id).await?;
                    app.metrics.record(crate::metrics::Event::RefreshReuse {
                        tenant: client.tenant.as_str(),
                    });
                    return Err(bad());
                }
            }
        }
        let Some(Versioned {
            value: mut grant,
            version: grant_version,
        }) = app.repo.grant(&rt.sub, &rt.gid).await?
        else {
            return Err(bad());
        };
        // A grant from before the client was disabled ended then, swept or not; one from before
        // this client existed (an id made again) was never its.
        if grant.created_at <= client.tokens_revoked_before || grant.created_at < client.issued_at {
            return Err(bad());
        }
        let Some(user) = active_user(app, &rt.tenant, &rt.sub).await? else {
            return Err(bad());
        };
        // Signed out everywhere (or deactivated) since the grant was made.
        if !user.value.grant_stands(grant.grant_epoch) {
            return Err(bad());
        }
        let tenant = app
            .tenant(&grant.tenant)
            .await?
            .ok_or_else(OAuthError::server_error)?;
        crate::service::access::require(app, &tenant, client, &rt.sub).await?;
        // The family's scope, less what the client may no longer be issued (restricted, or
        // narrowed through RFC 7592, or gone from the catalog since the user consented).
        let allowed = client.allowed_scopes(&tenant);
        let family_scope = ScopeSet::parse(&rt.scope)
            .unwrap_or_default()
            .retain(|s| allowed.contains(s));
        let scope = match p.get("scope") {
            None => family_scope.clone(),
            Some(s) => {
                let asked = ScopeSet::parse(s).map_err(OAuthError::invalid_scope)?;
                if !asked.is_subset(&family_scope) {
                    return Err(OAuthError::invalid_scope(
                        "a refresh may narrow the scope, never widen it (nor keep one this client may no longer hold)",
                    ));
                }
                asked
            }
        };
        let issued = |refresh| Issue {
            client,
            tenant: &tenant,
            grant: &grant,
            scope: &scope,
            params: p,
            nonce: None,
            refresh,
            dpop,
        };
        // Presented again within the grace for the same request: the refresh token the
        // rotation returned, with access and ID tokens signed now; nothing is written.
        if let Some(next) = again {
            tracing::info!(client_id = %client.client_id, "refresh token presented again within the grace; the same next token");
            return issue(app, issued(Some(&next))).await;
        }
        let now = app.now();
        let next = crate::secret::generate();
        let (idle, _) = refresh_lifetimes(app, &tenant);
        // Sign first (a KMS failure leaves the token unused), then rotate, sealing the next
        // token in the old one for the reuse grace.
        let body = issue(app, issued(Some(&next))).await?;
        let successor = serde_json::to_vec(&Successor {
            refresh_token: next.expose().to_string(),
            asked: Asked::of(p, dpop)?,
        })
        .ok()
        .and_then(|plain| crate::secret::seal_for(&presented, SUCCESSOR_LABEL, &plain));
        let next_hash = next.hash().to_hex();
        // The new token first: if the rotation below loses, it is a token nobody was given
        // (removed again); if this process dies in between, it expires unknown.
        app.repo
            .commit(vec![app.repo.create_refresh_write(
                &next_hash,
                &RefreshToken {
                    // The family stays bound to its key; an unbound public client's family
                    // becomes bound once it refreshes with a proof (RFC 9449 §5).
                    jkt: rt.jkt.clone().or_else(|| refresh_binding(client, dpop)),
                    ..new_refresh(&grant, now, idle)
                },
            )?])
            .await?;
        match app
            .repo
            .commit(vec![
                app.repo
                    .rotate_refresh_write(&hash, &rt, version, now, successor)?,
            ])
            .await
        {
            Ok(()) => {}
            // Used (or revoked) meanwhile: look again — rotated is the grace or reuse above,
            // gone is a dead token.
            Err(StoreError::Conflict) => {
                app.repo
                    .commit(vec![app.repo.delete_refresh_write(&next_hash)])
                    .await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        // "Last used", at most once an hour; a grant revoked meanwhile stays revoked (the lost
        // condition is no error: the tokens just issued die with it).
        if now - grant.last_used >= GRANT_TOUCH_EVERY {
            grant.last_used = now;
            match app
                .repo
                .commit(vec![app.repo.touch_grant_write(&grant, grant_version)?])
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(body);
    }
    Err(OAuthError::unavailable())
}

/// What a token response for a user grant is made of (the tenant already read by the caller).
pub(crate) struct Issue<'a> {
    pub client: &'a Client,
    pub tenant: &'a Tenant,
    pub grant: &'a Grant,
    pub scope: &'a ScopeSet,
    pub params: &'a Params,
    pub nonce: Option<&'a str>,
    pub refresh: Option<&'a Secret>,
    /// The key of the request's DPoP proof: the access token is bound to it.
    pub dpop: Option<&'a Jkt>,
}

/// The token response for a user grant: access token, maybe a refresh token and an ID token.
pub(crate) async fn issue(app: &App, i: Issue<'_>) -> Result<TokenResponse, OAuthError> {
    let Issue {
        client,
        tenant,
        grant,
        scope,
        params: p,
        nonce,
        refresh,
        dpop,
    } = i;
    // `bulwark:admin` (only the console's users may be granted it: `service::access`) goes
    // alone, in a token for the admin API and nothing else.
    let admin_aud;
    let grant_audience: String;
    let audience = if scope.contains(ADMIN_SCOPE) {
        if scope.iter().count() != 1 || !client.may_hold_admin_scope() {
            return Err(OAuthError::invalid_scope(format!(
                "{ADMIN_SCOPE} is issued alone"
            )));
        }
        admin_aud = crate::service::tokens::admin_audience(app);
        admin_aud.as_str()
    } else if grant.resources.is_empty() {
        choose_audience(p.all("resource"), &tenant.resources, &tenant.default_audience)
            .map_err(|d| OAuthError::new(ErrorCode::InvalidTarget, d))?
    } else {
        // A resource-bound grant: one of its resources (the first unless the request names
        // another of them), still one the tenant serves, and nothing else.
        let live: Vec<String> = grant
            .resources
            .iter()
            .filter(|r| tenant.resources.contains(r))
            .cloned()
            .collect();
        let Some(first) = live.first() else {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "the resources this grant is for are no longer served",
            ));
        };
        let chosen = choose_audience(p.all("resource"), &live, first).map_err(|_| {
            OAuthError::new(
                ErrorCode::InvalidTarget,
                "the resource is not one this grant is for",
            )
        })?;
        grant_audience = chosen.to_string();
        grant_audience.as_str()
    };
    let ttl = access_token_ttl(app, tenant);
    let now = app.now();
    let claims = user_claims(UserGrant {
        issuer: &app.config.issuer,
        tenant: &grant.tenant,
        client_id: &client.client_id,
        sub: &grant.sub,
        gid: &grant.gid,
        auth_time: grant.auth_time,
        scope,
        audience,
        ttl,
        now,
        jti: random_id(16),
    })
    .bound_to(dpop);
    let payload = serde_json::to_vec(&claims).map_err(|_| OAuthError::server_error())?;
    let access = app.signer.sign_jwt(ACCESS_TOKEN_TYP, &payload).await?;
    let mut body = TokenResponse::issued(access.clone(), ttl, Some(scope.to_scope_string()), dpop);
    body.refresh_token = refresh.map(|r| r.expose().to_string());
    if scope.contains("openid") {
        let id = IdClaims {
            iss: app.config.issuer.clone(),
            sub: grant.sub.to_string(),
            aud: client.client_id.to_string(),
            azp: client.client_id.to_string(),
            exp: now + app.config.lifetimes.id_token,
            iat: now,
            auth_time: grant.auth_time,
            nonce: nonce.map(str::to_string),
            at_hash: at_hash(&access),
            tid: grant.tenant.to_string(),
        };
        let payload = serde_json::to_vec(&id).map_err(|_| OAuthError::server_error())?;
        body.id_token = Some(app.signer.sign_jwt("JWT", &payload).await?);
    }
    Ok(body)
}

/// RFC 7662 for a refresh token issued to the caller (no one else is told about it): active
/// while unused, unexpired, its grant stands, its user is active and its client exists. `None`
/// if `token` is not one of our refresh tokens.
pub async fn introspect_refresh(
    app: &App,
    caller: &Client,
    token: &Secret,
) -> Result<Option<Value>, OAuthError> {
    let Some(Versioned { value: rt, .. }) = app.repo.refresh_token(&token.hash().to_hex()).await? else {
        return Ok(None);
    };
    let inactive = Ok(Some(json!({"active": false})));
    let seen = crate::domain::introspection::Token::Refresh {
        client_id: &rt.client_id,
    };
    if rt.tenant != caller.tenant.as_str()
        || rt.rotated
        || crate::domain::introspection::may_introspect(caller, seen).is_none()
    {
        return inactive;
    }
    let client_stands = app.repo.client_in(&rt.tenant, &rt.client_id).await?.is_some();
    let Some(grant) = app.repo.grant(&rt.sub, &rt.gid).await? else {
        return inactive;
    };
    let user_stands = active_user(app, &rt.tenant, &rt.sub)
        .await?
        .is_some_and(|u| u.value.grant_stands(grant.value.grant_epoch));
    if !client_stands || !user_stands {
        return inactive;
    }
    Ok(Some(json!({
        "active": true,
        "client_id": rt.client_id,
        "sub": rt.sub,
        "scope": rt.scope,
        "exp": rt.expires_at,
        "iat": rt.created_at,
        "iss": app.config.issuer,
        "tid": rt.tenant,
        "token_type": "refresh_token",
    })))
}

/// RFC 7009 for a refresh token: revoking it ends its grant (the whole family and the access
/// tokens issued from it). Returns whether `token` was one of ours.
pub async fn revoke_refresh(app: &App, caller: &Client, token: &Secret) -> Result<bool, OAuthError> {
    let Some(Versioned { value: rt, .. }) = app.repo.refresh_token(&token.hash().to_hex()).await? else {
        return Ok(false);
    };
    if rt.client_id == caller.client_id && rt.tenant == caller.tenant.as_str() {
        revoke_grant(app, &rt.grant(), AuditKind::RefreshRevoked, &caller.client_id).await?;
    }
    Ok(true)
}

/// OpenID Connect userinfo for a bearer access token: `sub` always, `name` and
/// `preferred_username` with `profile`, `email` with `email`. The token must be a live user
/// token (see [`crate::service::tokens::live_claims`]) with `openid`.
pub async fn userinfo(
    app: &App,
    token: &Secret,
    presented: crate::service::dpop::Presented<'_>,
) -> Result<Value, OAuthError> {
    let invalid = || {
        let e = OAuthError::invalid_token("the access token is invalid, expired or revoked");
        match presented {
            crate::service::dpop::Presented::Bearer => e,
            crate::service::dpop::Presented::DPoP { .. } => e.dpop_challenge(),
        }
    };
    let Some(crate::service::tokens::Live {
        claims: c,
        user: Some(user),
        ..
    }) = crate::service::tokens::live_claims(app, token.expose(), None).await?
    else {
        // Not live, or not a user token.
        return Err(invalid());
    };
    crate::service::dpop::check_presentation(
        app,
        c.cnf.as_ref().map(|cnf| &cnf.jkt),
        token.expose(),
        presented,
        &app.config.endpoint("/oauth2/userinfo"),
    )
    .await?;
    let scope = ScopeSet::parse(&c.scope).unwrap_or_default();
    if !scope.contains("openid") {
        let e = OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token lacks the openid scope",
        );
        return Err(match presented {
            crate::service::dpop::Presented::Bearer => e,
            crate::service::dpop::Presented::DPoP { .. } => e.dpop_challenge(),
        });
    }
    let mut body = json!({"sub": user.sub});
    if scope.contains("profile") {
        body["preferred_username"] = json!(user.username);
        if let Some(n) = &user.name {
            body["name"] = json!(n);
        }
    }
    if scope.contains("email")
        && let Some(e) = &user.email
    {
        body["email"] = json!(e);
        body["email_verified"] = json!(false);
    }
    Ok(body)
}
