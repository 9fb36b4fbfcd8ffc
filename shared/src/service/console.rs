//! The Connected Apps console's work: its built-in client, its sign-in (our own authorization
//! endpoint and hosted login, then our own token endpoint, as any client does), and the views
//! its pages show. Every change a console page makes goes through `service::admin`, as the
//! admin API's do, under the signed-in administrator's name.

use crate::domain::id::{ClientId, Subject};
use std::collections::BTreeSet;

use crate::domain::audit::AuditKind;
use crate::domain::client::Client;
use crate::domain::console::{self, CALLBACK_PATH, Flow};
use crate::domain::grant_type::GrantType;
use crate::domain::tenant::TenantId;
use crate::domain::user::User;
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::service::App;
use crate::service::tenants::AdminError;
use crate::store::StoreError;

/// An administrator signs out of the console: the admin token its session holds is denied
/// from now on, with the audit event, in one transaction. A token no longer live needs nothing.
pub async fn sign_out(app: &App, admin_token: &Secret) -> Result<(), OAuthError> {
    if let Some(live) = crate::service::tokens::live_claims(app, admin_token.expose(), None).await? {
        let c = &live.claims;
        app.repo
            .commit(vec![
                app.repo.deny_jti_write(&c.jti, &c.tid, c.exp),
                app.repo
                    .audit_write(&c.tid, AuditKind::ConsoleSignedOut, &c.sub, &c.sub)?,
            ])
            .await?;
    }
    Ok(())
}

pub fn callback_uri(app: &App) -> String {
    app.config.endpoint(CALLBACK_PATH)
}

/// The tenant's console client, made (or brought up to date with the issuer) if need be.
pub async fn ensure_client(app: &App, tenant: &TenantId) -> Result<Client, OAuthError> {
    let want = console::client(tenant, &callback_uri(app), app.now());
    for _ in 0..3 {
        let current = app.repo.client(&want.client_id).await?;
        let write = match &current {
            Some(c)
                if console::is_console(&c.value)
                    && c.value.metadata.redirect_uris == want.metadata.redirect_uris =>
            {
                return Ok(c.value.clone());
            }
            // A console client from another issuer (the deployment moved): its redirect URI
            // is brought up to date; anything else under the reserved id is replaced.
            Some(c) => {
                let mut fixed = want.clone();
                fixed.issued_at = c.value.issued_at;
                fixed.tokens_revoked_before = c.value.tokens_revoked_before;
                (
                    app.repo.replace_client_write(&fixed, c.version)?,
                    AuditKind::ClientUpdated,
                )
            }
            None => (app.repo.create_client_write(&want)?, AuditKind::ClientCreated),
        };
        let (write, kind) = write;
        let audit = app
            .repo
            .audit_write(tenant.as_str(), kind, "bulwark", &want.client_id)?;
        match app.repo.commit(vec![write, audit]).await {
            Ok(()) => return Ok(want),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::unavailable())
}

/// Where the browser goes to sign in to `tenant`'s console.
pub fn authorize_url(app: &App, tenant: &TenantId, flow: &Flow) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &console::client_id(tenant))
        .append_pair("redirect_uri", &callback_uri(app))
        .append_pair("scope", crate::domain::client::ADMIN_SCOPE)
        .append_pair("state", &flow.state)
        .append_pair("code_challenge", &flow.challenge)
        .append_pair("code_challenge_method", "S256")
        // An administrator signs in with a password at least this often, single sign-on or not.
        .append_pair("max_age", &console::MAX_AUTH_AGE.to_string())
        .finish();
    format!("{}?{q}", app.config.endpoint("/oauth2/authorize"))
}

/// A console session: the administrator's access token and how long it lives.
pub struct Signed {
    pub access_token: Secret,
    pub expires_in: i64,
}

/// Redeem the code at our own token endpoint. `Ok(None)`: the code is no good (used, expired,
/// the user lost the role meanwhile); the caller starts over.
pub async fn redeem(
    app: &App,
    tenant: &TenantId,
    code: &str,
    verifier: &str,
) -> Result<Option<Signed>, OAuthError> {
    let client_id = console::client_id(tenant);
    let redirect_uri = callback_uri(app);
    let form = [
        ("grant_type", GrantType::AuthorizationCode.as_str()),
        ("code", code),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", verifier),
        ("client_id", client_id.as_str()),
    ];
    let (status, body) = app
        .own_token_endpoint
        .post_form(&app.config.endpoint("/oauth2/token"), &form)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the console could not reach the token endpoint");
            OAuthError::unavailable()
        })?;
    match status {
        200 => {
            let token = body["access_token"].as_str().filter(|t| !t.is_empty());
            let admin = body["scope"].as_str() == Some(crate::domain::client::ADMIN_SCOPE);
            match token {
                Some(t) if admin => Ok(Some(Signed {
                    access_token: Secret::new(t),
                    expires_in: body["expires_in"].as_i64().unwrap_or(300).clamp(60, 86_400),
                })),
                _ => Ok(None),
            }
        }
        400 | 401 | 403 => {
            tracing::info!(
                error = body["error"].as_str().unwrap_or("-"),
                "the console's code was refused"
            );
            Ok(None)
        }
        _ => Err(OAuthError::unavailable()),
    }
}

/// The users who authorized an app (a consent or a grant of theirs names it), reading at most
/// `max` of each, and whether there may be more: a page costs a bounded number of reads however
/// popular the app.
pub async fn authorizing_users(
    app: &App,
    tenant: &TenantId,
    client_id: &ClientId,
    max: usize,
) -> Result<(BTreeSet<Subject>, bool), AdminError> {
    let mut subs = BTreeSet::new();
    let (consents, more_consents) = app.repo.consents_of_client_up_to(tenant, client_id, max).await?;
    subs.extend(consents.into_iter().filter(|c| c.tenant == tenant).map(|c| c.sub));
    let (grants, more_grants) = app.repo.grants_of_client_up_to(tenant, client_id, max).await?;
    subs.extend(
        grants
            .into_iter()
            .filter(|g| g.tenant == tenant && !g.sub.is_empty())
            .map(|g| g.sub),
    );
    Ok((subs, more_consents || more_grants))
}

/// Consents and grants read per app for the list's user count.
const COUNTED: usize = 100;

/// One row of the Connected Apps list.
pub struct AppRow {
    pub client: Client,
    /// Users who authorized it (at least this many when `more_users`).
    pub users: usize,
    pub more_users: bool,
    pub last_used: Option<i64>,
}

/// One page of the tenant's apps, with how many users authorized each and when it last got a
/// token.
pub async fn apps(
    app: &App,
    tenant: &TenantId,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<AppRow>, Option<String>), AdminError> {
    let (clients, next) = crate::service::admin::list_clients(app, tenant, cursor, limit).await?;
    let mut rows = Vec::with_capacity(clients.len());
    for c in clients {
        let (users, more_users) = authorizing_users(app, tenant, &c.client_id, COUNTED).await?;
        let last_used = app.repo.client_last_used(tenant, &c.client_id).await?;
        rows.push(AppRow {
            client: c,
            users: users.len(),
            more_users,
            last_used,
        });
    }
    Ok((rows, next))
}

/// An app's page: the app, who authorized it, its agents (or the app it is an agent of).
pub struct AppDetail {
    pub client: Client,
    pub version: u64,
    pub last_used: Option<i64>,
    pub users: Vec<User>,
    /// Users who authorized it beyond those shown.
    pub more_users: usize,
    /// Whether there may be yet more (beyond what was read).
    pub more_beyond: bool,
    pub agents: Vec<Client>,
    pub agent_of: Option<Client>,
}

/// Users shown on an app's page, and consents and grants read to find them.
const USERS_SHOWN: usize = 100;
const USERS_READ: usize = 1000;

pub async fn app_detail(app: &App, tenant: &TenantId, client_id: &ClientId) -> Result<AppDetail, AdminError> {
    let c = crate::service::admin::client(app, tenant, client_id).await?;
    let (subs, more) = authorizing_users(app, tenant, client_id, USERS_READ).await?;
    let mut users = Vec::new();
    for s in subs.iter().take(USERS_SHOWN) {
        if let Some(u) = app
            .repo
            .user(s)
            .await?
            .filter(|u| u.value.tenant.as_str() == tenant)
        {
            users.push(u.value);
        }
    }
    let mut agents = Vec::new();
    for id in app.repo.agents_of(client_id).await? {
        if let Ok(a) = crate::service::admin::client(app, tenant, &ClientId::from(id)).await {
            agents.push(a.value);
        }
    }
    let agent_of = match &c.value.agent_of {
        Some(of) => crate::service::admin::client(app, tenant, of)
            .await
            .ok()
            .map(|v| v.value),
        None => None,
    };
    Ok(AppDetail {
        last_used: app.repo.client_last_used(tenant, client_id).await?,
        more_users: subs.len().saturating_sub(USERS_SHOWN),
        more_beyond: more,
        version: c.version,
        client: c.value,
        users,
        agents,
        agent_of,
    })
}
