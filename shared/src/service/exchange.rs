//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): an agent of an app
//! exchanges a user's access token (one the app holds, or one another agent of the same app
//! obtained this way) for a token about the same user that says who is acting (`act`).
//!
//! What makes it safe: the subject token must be live (signature, expiry, tenant, its grant,
//! user and clients — [`live_claims`]); the user must have granted the app `agent:act`; the
//! caller must be the app or registered (by the tenant admin) as one of its agents; the user
//! must not have stopped this agent; the new token's scopes are within the subject token's,
//! less `agent:act`, and within the agent's own; it never outlives the subject token; and it
//! stays tied to the grant and to this agent's delegation, so that Revoke, Stop, deleting the
//! app or the agent and deactivating the user all end it.

use crate::domain::audit::AuditKind;
use crate::domain::claims::{Delegated, choose_audience, delegated_claims};
use crate::domain::client::Client;
use crate::domain::exchange::{AGENT_ACT, Refusal, delegable, delegate, delegated_scope, may_act_for};
use crate::domain::grant_type::{ACCESS_TOKEN_TYPE, TokenResponse};
use crate::domain::id::{ClientId, Subject};
use crate::domain::params::Params;
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::TenantId;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::random_id;
use crate::service::App;
use crate::service::token_endpoint::TokenRequest;
use crate::service::tokens::{ACCESS_TOKEN_TYP, Live, access_token_ttl, live_claims};
use crate::store::StoreError;
use crate::store::repo::Versioned;
use crate::store::repo_users::Delegation;

/// How stale the account page's "last acted" may get before an exchange writes it again (so
/// that a busy agent does not write the same item on every exchange).
const LAST_ACTED_GRANULARITY: i64 = 60;

fn refused(r: Refusal) -> OAuthError {
    match r {
        Refusal::NotDelegable(d) => OAuthError::invalid_request(d),
        Refusal::Scope(d) => OAuthError::invalid_scope(d),
    }
}

/// The grant. `agent` has authenticated and is registered for it.
pub async fn token_exchange(app: &App, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (agent, p) = (req.client, req.params);
    let tenant_id = &agent.tenant;
    let subject_token = p.require("subject_token").map_err(OAuthError::invalid_request)?;
    let subject_type = p
        .require("subject_token_type")
        .map_err(OAuthError::invalid_request)?;
    if subject_type != ACCESS_TOKEN_TYPE {
        return Err(OAuthError::invalid_request(
            "subject_token_type must be urn:ietf:params:oauth:token-type:access_token",
        ));
    }
    if p.get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::invalid_request(
            "only access tokens are issued (requested_token_type urn:ietf:params:oauth:token-type:access_token)",
        ));
    }
    check_actor_token(app, agent, p, req.dpop.as_ref()).await?;

    let invalid_subject = || OAuthError::invalid_request("the subject token is invalid, expired or revoked");
    let Some(Live {
        claims: subject,
        user: Some(user),
        grant: Some(grant),
        ..
    }) = live_claims(app, subject_token, Some(tenant_id)).await?
    else {
        return Err(invalid_subject());
    };
    // A DPoP-bound subject token is never traded for a bearer token: what the agent gets must
    // be bound to a key of its own (it never holds the app's key, which RFC 8693 does not ask
    // it to prove).
    if subject.cnf.is_some() && req.dpop.is_none() {
        return Err(OAuthError::invalid_dpop_proof(
            "the subject token is DPoP-bound: send a DPoP proof of the agent's own key, to which the new token is bound",
        ));
    }
    let delegated = subject.act.is_some();
    let app_id = &grant.client_id;
    if !may_act_for(&agent.client_id, agent.agent_of.as_deref(), app_id) {
        return Err(OAuthError::invalid_request(
            "this client is not an agent of the app the subject token was issued to",
        ));
    }
    if subject
        .act
        .as_ref()
        .is_some_and(|a| a.chain().contains(&agent.client_id.as_str()))
    {
        return Err(OAuthError::invalid_request(
            "this agent already acts in the subject token's chain",
        ));
    }
    let tenant = app
        .tenant(tenant_id)
        .await?
        .ok_or_else(OAuthError::server_error)?;
    let Some(the_app) = app.repo.client_in(tenant_id, app_id).await? else {
        return Err(invalid_subject());
    };
    // What the user granted, less what the app may no longer hold (a scope restricted or
    // dropped since): an app that lost agent:act no longer lends it.
    let token_scope = ScopeSet::parse(&subject.scope).unwrap_or_default();
    let grant_scope = ScopeSet::parse(&grant.scope)
        .unwrap_or_default()
        .retain(|s| the_app.value.allowed_scopes(&tenant).contains(s));
    delegable(&token_scope, &grant_scope, delegated).map_err(refused)?;
    // Agents act only under the user's consent to the app as it is now: a consent given before
    // the app gained an agent (or a redirect URI) is of an older epoch, and the user must see
    // the app's agents again first.
    let consent_current = app
        .repo
        .consent(tenant_id, &user.sub, app_id)
        .await?
        .is_some_and(|c| c.value.counts(the_app.value.consent_epoch, user.grant_epoch));
    if !consent_current {
        return Err(OAuthError::invalid_request(
            "the user has not consented to this app's agents as they are now; the app must ask again",
        ));
    }
    let act = delegate(subject.act.as_ref(), &agent.client_id).map_err(refused)?;
    let scope =
        delegated_scope(p.get("scope"), &token_scope, &agent.allowed_scopes(&tenant)).map_err(refused)?;
    // The audience: the subject token's, unless the request names another resource of the
    // tenant (RFC 8707 / RFC 8693 `resource`, `audience`) — of the user's grant, where the
    // authorization request bound it to some: an agent reaches no further than the app.
    let mut targets: Vec<String> = p.all("resource").to_vec();
    targets.extend(p.all("audience").iter().cloned());
    targets.dedup();
    let allowed_targets: Vec<String> = if grant.resources.is_empty() {
        let mut all = tenant.resources.clone();
        all.push(tenant.default_audience.clone());
        all
    } else {
        grant
            .resources
            .iter()
            .filter(|r| tenant.resources.contains(r))
            .cloned()
            .collect()
    };
    let audience = choose_audience(&targets, &allowed_targets, &subject.aud)
        .map_err(|d| OAuthError::new(ErrorCode::InvalidTarget, d))?;

    let now = app.now();
    let ttl = access_token_ttl(app, &tenant).min(subject.exp - now);
    if ttl <= 0 {
        return Err(invalid_subject());
    }
    let delegation = current_delegation(app, tenant_id, &user.sub, app_id, &agent.client_id).await?;
    let claims = delegated_claims(Delegated {
        subject: &subject,
        agent: &agent.client_id,
        act,
        did: delegation.value.did.clone(),
        scope: &scope,
        audience,
        ttl,
        now,
        jti: random_id(16),
    })
    .bound_to(req.dpop.as_ref());
    let payload = serde_json::to_vec(&claims).map_err(|_| OAuthError::server_error())?;
    let token = app.signer.sign_jwt(ACCESS_TOKEN_TYP, &payload).await?;

    let mut writes = vec![app.repo.audit_write_detail(
        tenant_id,
        AuditKind::TokenExchanged,
        &agent.client_id,
        &user.sub,
        Some(format!(
            "app={app_id} scope={} depth={}",
            scope.to_scope_string(),
            claims.act.as_ref().map_or(0, |a| a.depth())
        )),
    )?];
    if delegation.value.last_acted + LAST_ACTED_GRANULARITY <= now {
        let mut touched = delegation.value.clone();
        touched.last_acted = now;
        writes.push(
            app.repo
                .put_delegation_write(&touched, Some(delegation.version))?,
        );
    }
    match app.repo.commit(writes).await {
        Ok(()) => {}
        // Someone else touched the delegation meanwhile: another exchange (fine) or a Stop.
        Err(StoreError::Conflict) => match app.repo.delegation(&user.sub, app_id, &agent.client_id).await? {
            Some(d) if !d.value.stopped && d.value.did == delegation.value.did => {
                app.repo
                    .commit(vec![app.repo.audit_write_detail(
                        tenant_id,
                        AuditKind::TokenExchanged,
                        &agent.client_id,
                        &user.sub,
                        Some(format!("app={app_id} scope={}", scope.to_scope_string())),
                    )?])
                    .await?;
            }
            _ => return Err(stopped()),
        },
        Err(e) => return Err(e.into()),
    }
    let mut response = TokenResponse::issued(
        token,
        claims.exp - now,
        Some(scope.to_scope_string()),
        req.dpop.as_ref(),
    );
    response.issued_token_type = Some(ACCESS_TOKEN_TYPE);
    Ok(response)
}

fn stopped() -> OAuthError {
    OAuthError::invalid_request("the user has stopped this agent from acting for them")
}

/// The agent's live delegation for this user and app: created on its first exchange; if the
/// user stopped it, it starts anew (new `did`) only once the user has consented to the app's
/// agents again.
async fn current_delegation(
    app: &App,
    tenant: &TenantId,
    sub: &Subject,
    app_id: &ClientId,
    agent: &ClientId,
) -> Result<Versioned<Delegation>, OAuthError> {
    for _ in 0..3 {
        let now = app.now();
        let existing = app.repo.delegation(sub, app_id, agent).await?;
        let (next, version) = match existing {
            Some(d) if !d.value.stopped => return Ok(d),
            Some(d) => {
                // Stopped: only a consent to agent:act given after the Stop starts it again.
                let consent = app.repo.consent(tenant, sub, app_id).await?;
                let again = consent.is_some_and(|c| {
                    Some(c.version) != d.value.stopped_consent
                        && ScopeSet::parse(&c.value.scope)
                            .unwrap_or_default()
                            .contains(AGENT_ACT)
                });
                if !again {
                    return Err(stopped());
                }
                let next = Delegation {
                    did: random_id(16),
                    stopped: false,
                    stopped_consent: None,
                    first_acted: now,
                    last_acted: now,
                    ..d.value
                };
                (next, Some(d.version))
            }
            None => (
                Delegation {
                    tenant: tenant.clone(),
                    sub: sub.clone(),
                    app: app_id.clone(),
                    agent: agent.clone(),
                    did: random_id(16),
                    stopped: false,
                    stopped_consent: None,
                    first_acted: now,
                    last_acted: now,
                },
                None,
            ),
        };
        let mut writes = vec![app.repo.put_delegation_write(&next, version)?];
        if version.is_none() {
            writes.push(app.repo.audit_write_detail(
                tenant,
                AuditKind::AgentFirstActed,
                agent,
                sub,
                Some(format!("app={app_id}")),
            )?);
        }
        match app.repo.commit(writes).await {
            Ok(()) => {
                return Ok(Versioned {
                    value: next,
                    version: version.map_or(1, |v| v + 1),
                });
            }
            // A concurrent first exchange (or a Stop) won: read what is there now.
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::unavailable())
}

/// RFC 8693 §2.1 `actor_token`: if given, it must be a live token of the calling client itself
/// (its own client-credentials token), of the access-token type.
async fn check_actor_token(
    app: &App,
    agent: &Client,
    p: &Params,
    dpop: Option<&crate::domain::dpop::Jkt>,
) -> Result<(), OAuthError> {
    match (p.get("actor_token"), p.get("actor_token_type")) {
        (None, None) => Ok(()),
        (Some(token), Some(ty)) if ty == ACCESS_TOKEN_TYPE => {
            match live_claims(app, token, Some(agent.tenant.as_str())).await? {
                Some(Live {
                    claims, user: None, ..
                }) if claims.sub == agent.client_id && claims.client_id == agent.client_id => {
                    // The agent's own DPoP-bound token proves nothing without its key: the
                    // request's proof must be of that key.
                    match &claims.cnf {
                        Some(cnf) if dpop != Some(&cnf.jkt) => Err(OAuthError::invalid_dpop_proof(
                            "the actor token is DPoP-bound: send a DPoP proof of its key",
                        )),
                        _ => Ok(()),
                    }
                }
                _ => Err(OAuthError::invalid_request(
                    "the actor token must be a live access token of the calling client itself",
                )),
            }
        }
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "actor_token_type must be urn:ietf:params:oauth:token-type:access_token",
        )),
        _ => Err(OAuthError::invalid_request(
            "actor_token and actor_token_type go together",
        )),
    }
}
