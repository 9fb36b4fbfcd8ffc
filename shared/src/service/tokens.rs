//! The token endpoint's client-credentials grant, introspection (RFC 7662) and revocation
//! (RFC 7009). Client authentication, which all three share, is `service::client_auth`
//! (re-exported here as `authenticate`).

use crate::domain::audit::AuditKind;
use crate::domain::id::{ClientId, Subject};
use crate::domain::tenant::TenantId;
use serde_json::{Value, json};

use crate::domain::claims::{
    AccessClaims, ClientCredentialsGrant, check_active, choose_audience, client_credentials_claims,
};
use crate::domain::client::{ADMIN_SCOPE, Client};
use crate::domain::grant_type::TokenResponse;
use crate::domain::introspection;
use crate::domain::scope::grant_scope;
use crate::error::{ErrorCode, OAuthError};
use crate::keys::jws;
use crate::secret::random_id;
use crate::service::App;
use crate::service::token_endpoint::TokenRequest;

pub use crate::service::client_auth::authenticate;

/// The JWS `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `grant_type=client_credentials`: a token for the client itself, with the requested scopes
/// (inside the registered ones) or all registered scopes.
pub async fn client_credentials(app: &App, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (client, params) = (req.client, req.params);
    let tenant = app
        .tenant(client.tenant.as_str())
        .await?
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    let mut scope = grant_scope(params.get("scope"), &client.allowed_scopes(&tenant))
        .map_err(OAuthError::invalid_scope)?;
    // bulwark:admin is only ever issued alone, in a token whose audience is the admin API, so
    // that no resource server ever holds an admin credential.
    let admin_aud = admin_audience(app);
    let admin_asked = params
        .get("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == ADMIN_SCOPE));
    let resources = params.all("resource");
    let admin_target = resources.is_empty() || resources == [admin_aud.clone()];
    if scope.contains(ADMIN_SCOPE) {
        let alone = scope.iter().count() == 1;
        if admin_target && alone {
            // issued below with the admin audience
        } else if admin_asked {
            return Err(OAuthError::invalid_scope(format!(
                "{ADMIN_SCOPE} is issued alone, for resource {admin_aud}"
            )));
        } else {
            scope = scope.retain(|s| s != ADMIN_SCOPE);
        }
    }
    let audience: &str = if scope.contains(ADMIN_SCOPE) {
        &admin_aud
    } else {
        choose_audience(
            params.all("resource"),
            &tenant.resources,
            &tenant.default_audience,
        )
        .map_err(|d| OAuthError::new(ErrorCode::InvalidTarget, d))?
    };
    let ttl = access_token_ttl(app, &tenant);
    let claims = client_credentials_claims(ClientCredentialsGrant {
        issuer: &app.config.issuer,
        tenant: tenant.id.as_str(),
        client_id: &client.client_id,
        scope: &scope,
        audience,
        ttl,
        now: app.now(),
        jti: random_id(16),
    })
    .bound_to(req.dpop.as_ref());
    let payload = serde_json::to_vec(&claims).map_err(|_| OAuthError::server_error())?;
    let token = app.signer.sign_jwt(ACCESS_TOKEN_TYP, &payload).await?;
    Ok(TokenResponse::issued(
        token,
        ttl,
        (!scope.is_empty()).then(|| scope.to_scope_string()),
        req.dpop.as_ref(),
    ))
}

/// The `aud` of every token carrying `bulwark:admin`, and the only one the admin API accepts.
pub fn admin_audience(app: &App) -> String {
    // The admin API lives on the shared issuer only, whichever issuer minted the token.
    format!("{}/admin/v1", app.config.base)
}

/// The access-token lifetime for a tenant: its own, else the deployment's, within bounds.
pub(crate) fn access_token_ttl(app: &App, tenant: &crate::domain::tenant::Tenant) -> i64 {
    tenant
        .access_token_ttl
        .unwrap_or(app.config.access_token_ttl)
        .clamp(60, app.config.max_access_token_ttl)
}

/// Verify a token's signature against our published keys and decode its claims. `None` for
/// anything that is not an access token we signed.
pub(crate) async fn verified_claims(app: &App, token: &str) -> Result<Option<AccessClaims>, OAuthError> {
    let keys = app.signer.public_keys().await?;
    let Ok(payload) = jws::verify(token, &keys, ACCESS_TOKEN_TYP) else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&payload).ok())
}

/// A live access token: its claims, and for a user token its (active) user and its grant.
pub struct Live {
    pub claims: AccessClaims,
    /// The token's client (`client_id`), as read to check it.
    pub client: Client,
    pub user: Option<crate::domain::user::User>,
    pub grant: Option<crate::store::repo_users::Grant>,
}

/// `token` if it is an access token of ours that is live right now for `tenant` (`None`: the
/// token's own tenant): signature, issuer, expiry and tenant; not revoked (`jti`); its client
/// still exists in that tenant; for a user token, its grant stands, the grant's app exists and
/// its user is active; for a delegated token, every agent in its `act` chain exists and is
/// still the user's live, unstopped delegation for that app.
/// Every endpoint that accepts an access token asks here, so that every revocation cascade (a
/// revoked token, grant, app, deleted client or agent, stopped agent, deactivated user) ends it
/// everywhere.
pub async fn live_claims(app: &App, token: &str, tenant: Option<&str>) -> Result<Option<Live>, OAuthError> {
    let Some(c) = verified_claims(app, token).await? else {
        return Ok(None);
    };
    // Only this tenant's tokens where a tenant's own issuer serves the request.
    let tenant = tenant.or(app.config.tenant_scope.as_deref());
    let issuer_ok = |iss: &str, tid: &str| app.config.accepts_issuer(iss, tid);
    if let Err(why) = check_active(&c, issuer_ok, tenant.unwrap_or(&c.tid), app.now()) {
        tracing::debug!(reason = ?why, "access token inactive");
        return Ok(None);
    }
    if app.repo.is_denied(&c.jti).await? {
        return Ok(None);
    }
    let Ok(tid) = TenantId::parse(&c.tid) else {
        return Ok(None);
    };
    let in_tenant = |client: &Client| client.tenant.as_str() == c.tid;
    let Some(own) = app
        .repo
        .client_in(&c.tid, &c.client_id)
        .await?
        .map(|v| v.value)
        .filter(|cl| in_tenant(cl) && c.iat > cl.tokens_revoked_before && c.iat >= cl.issued_at)
    else {
        return Ok(None);
    };
    let Some(gid) = &c.gid else {
        // A client's own token: nobody acts for anybody.
        if c.act.is_some() {
            return Ok(None);
        }
        return Ok(Some(Live {
            claims: c,
            client: own,
            user: None,
            grant: None,
        }));
    };
    let Some(grant) = app.repo.grant(&c.sub, gid).await? else {
        return Ok(None);
    };
    let grant = grant.value;
    if grant.tenant != c.tid {
        return Ok(None);
    }
    // The app the grant is for: the token's own client, or (delegated) the app its agents act for.
    let app_client = if grant.client_id == own.client_id {
        own.clone()
    } else {
        match app
            .repo
            .client_in(&c.tid, &grant.client_id)
            .await?
            .map(|v| v.value)
        {
            Some(a) if in_tenant(&a) => a,
            _ => return Ok(None),
        }
    };
    match &c.act {
        None if grant.client_id != c.client_id => return Ok(None),
        None => {}
        Some(act) => {
            let chain = act.chain();
            if chain.first() != Some(&c.client_id.as_str())
                || chain.len() != c.dlg.len()
                || chain.len() != c.prv.len()
            {
                return Ok(None);
            }
            // Revoking a token it was exchanged from ends it too.
            for parent in &c.prv {
                if app.repo.is_denied(parent).await? {
                    return Ok(None);
                }
            }
            for (agent, did) in chain.iter().zip(&c.dlg) {
                let live = match app.repo.delegation(&c.sub, &grant.client_id, agent).await? {
                    Some(d) => !d.value.stopped && d.value.did == *did && d.value.tenant == c.tid,
                    None => false,
                };
                if !live
                    || (*agent != c.client_id
                        && !client_in_tenant(app, &ClientId::from(*agent), &tid).await?)
                {
                    return Ok(None);
                }
            }
        }
    }
    let sub = Subject::from(c.sub.as_str());
    let Some(user) = crate::service::users::active_user(app, &tid, &sub)
        .await?
        .filter(|u| u.value.grant_stands(grant.grant_epoch))
    else {
        return Ok(None);
    };
    // The tenant's administrator still lets this user use the app the grant is for (the app
    // allowlist, the app's user policy): otherwise the grant's tokens stop working. (The
    // tenant's policy as cached for the token path: an allowlist change reaches here within
    // `config.tenant_cache_secs`; the user policy, groups, client, grant, user and deny list are
    // read fresh.)
    let Some(tenant) = app.tenant(&c.tid).await? else {
        return Ok(None);
    };
    if grant.created_at <= app_client.tokens_revoked_before || grant.created_at < app_client.issued_at {
        return Ok(None);
    }
    if crate::service::access::permitted(app, &tenant, &app_client, &sub)
        .await?
        .is_err()
    {
        return Ok(None);
    }
    Ok(Some(Live {
        claims: c,
        client: own,
        user: Some(user.value),
        grant: Some(grant),
    }))
}

async fn client_in_tenant(app: &App, client_id: &ClientId, tenant: &TenantId) -> Result<bool, OAuthError> {
    Ok(app.repo.client_in(tenant, client_id).await?.is_some())
}

/// RFC 7662: `{"active": true, ...}` only for a live access token (see [`live_claims`]) or
/// refresh token of the caller's tenant that the caller may be told about
/// ([`crate::domain::introspection`]: its own, its agents', or for an audience it serves);
/// `{"active": false}` for everything else.
pub async fn introspect(app: &App, caller: &Client, token: &str) -> Result<Value, OAuthError> {
    let inactive = json!({"active": false});
    if !token.contains('.') {
        return Ok(crate::service::grants::introspect_refresh(
            app,
            caller,
            &crate::secret::Secret::new(token),
        )
        .await?
        .unwrap_or(inactive));
    }
    let Some(Live { claims: c, grant, .. }) = live_claims(app, token, Some(caller.tenant.as_str())).await?
    else {
        return Ok(inactive);
    };
    let seen = introspection::Token::Access {
        client_id: &c.client_id,
        aud: &c.aud,
        grant_app: grant.as_ref().map(|g| g.client_id.as_str()),
    };
    if introspection::may_introspect(caller, seen).is_none() {
        return Ok(inactive);
    }
    let mut body = json!({
        "active": true,
        "client_id": c.client_id,
        "token_type": if c.cnf.is_some() { "DPoP" } else { "Bearer" },
        "exp": c.exp,
        "iat": c.iat,
        "nbf": c.nbf,
        "sub": c.sub,
        "aud": c.aud,
        "iss": c.iss,
        "jti": c.jti,
        "tid": c.tid,
    });
    if !c.scope.is_empty() {
        body["scope"] = json!(c.scope);
    }
    if let Some(t) = c.auth_time {
        body["auth_time"] = json!(t);
    }
    if let Some(act) = &c.act {
        body["act"] = json!(act);
    }
    // RFC 9449 §6.2: the key a DPoP-bound token is bound to, for the resource server to check.
    if let Some(cnf) = &c.cnf {
        body["cnf"] = json!(cnf);
    }
    Ok(body)
}

/// RFC 7009: revoke an access token or a refresh token (which ends its grant) the caller was
/// issued. Anything else (unknown, expired,
/// another client's or tenant's token) is answered the same way and changes nothing.
pub async fn revoke(app: &App, caller: &Client, token: &str) -> Result<(), OAuthError> {
    let Some(c) = verified_claims(app, token).await? else {
        if !token.contains('.') {
            crate::service::grants::revoke_refresh(app, caller, &crate::secret::Secret::new(token)).await?;
        }
        return Ok(());
    };
    if !app.config.accepts_issuer(&c.iss, &c.tid) || c.tid != caller.tenant.as_str() {
        return Ok(());
    }
    // The client it was issued to may revoke it; so may the app whose user grant a delegated
    // token (an agent's) was exchanged from.
    let own = c.client_id == caller.client_id;
    let apps_agent = c.act.is_some()
        && match (&c.gid, own) {
            (Some(gid), false) => app
                .repo
                .grant(&c.sub, gid)
                .await?
                .is_some_and(|g| g.value.client_id == caller.client_id),
            _ => false,
        };
    if !own && !apps_agent {
        return Ok(());
    }
    let now = app.now();
    if c.exp <= now {
        return Ok(());
    }
    let writes = vec![
        app.repo.deny_jti_write(&c.jti, &c.tid, c.exp),
        app.repo
            .audit_write(c.tid.as_str(), AuditKind::TokenRevoked, &caller.client_id, &c.jti)?,
    ];
    app.repo.commit(writes).await?;
    Ok(())
}
