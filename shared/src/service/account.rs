//! The end user's account page: the apps they connected, and taking one back.

use crate::domain::audit::AuditKind;
use crate::domain::id::{ClientId, Subject};
use crate::domain::tenant::TenantId;
use std::collections::BTreeMap;

use crate::error::OAuthError;
use crate::service::App;
use crate::service::authorize::describe_scope;

/// One connected app as the account page shows it.
#[derive(Debug, Clone)]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    pub client_uri: Option<String>,
    /// (scope, description).
    pub scopes: Vec<(String, String)>,
    pub granted_at: i64,
    pub last_used: Option<i64>,
    /// The agents that have acted for the user through this app.
    pub agents: Vec<ActingAgent>,
}

/// An agent that has acted for the user (RFC 8693 token exchange through an app).
#[derive(Debug, Clone)]
pub struct ActingAgent {
    pub client_id: String,
    pub name: String,
    pub last_acted: i64,
    pub stopped: bool,
}

/// Every app the user consented to or holds a grant for, most recently used first.
pub async fn connected_apps(
    app: &App,
    tenant: &TenantId,
    sub: &Subject,
) -> Result<Vec<ConnectedApp>, OAuthError> {
    let t = app
        .repo
        .tenant(tenant)
        .await?
        .ok_or_else(OAuthError::server_error)?
        .value;
    let mut by_client: BTreeMap<String, ConnectedApp> = BTreeMap::new();
    for c in app.repo.consents_of(tenant, sub).await? {
        by_client.insert(
            c.client_id.to_string(),
            ConnectedApp {
                client_id: c.client_id.to_string(),
                name: String::new(),
                client_uri: None,
                scopes: c
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|s| (s.to_string(), describe_scope(&t, s)))
                    .collect(),
                granted_at: c.granted_at,
                last_used: None,
                agents: Vec::new(),
            },
        );
    }
    for g in app.repo.grants_of(sub).await? {
        if g.tenant != tenant {
            continue;
        }
        let entry = by_client
            .entry(g.client_id.to_string())
            .or_insert_with(|| ConnectedApp {
                client_id: g.client_id.to_string(),
                name: String::new(),
                client_uri: None,
                scopes: g
                    .scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|s| (s.to_string(), describe_scope(&t, s)))
                    .collect(),
                granted_at: g.created_at,
                last_used: None,
                agents: Vec::new(),
            });
        entry.last_used = Some(entry.last_used.unwrap_or(0).max(g.last_used));
    }
    for a in by_client.values_mut() {
        let mut names: Vec<String> = a.scopes.iter().map(|(n, _)| n.clone()).collect();
        crate::domain::scope::display_order(&mut names);
        a.scopes = names
            .into_iter()
            .map(|n| {
                let d = describe_scope(&t, &n);
                (n, d)
            })
            .collect();
    }
    for d in app.repo.delegations_of(sub).await? {
        let Some(entry) = by_client.get_mut(d.app.as_str()) else {
            continue;
        };
        match app.repo.client_in(tenant, &d.agent).await? {
            Some(c) if d.tenant == tenant => {
                // A stopped agent acts again once the user allows the app's agents again (a
                // later consent with agent:act): show it as it will behave.
                let stopped = d.stopped && {
                    let again = app.repo.consent(tenant, sub, &d.app).await?.is_some_and(|c| {
                        Some(c.version) != d.stopped_consent
                            && c.value
                                .scope
                                .split(' ')
                                .any(|s| s == crate::domain::exchange::AGENT_ACT)
                    });
                    !again
                };
                entry.agents.push(ActingAgent {
                    name: c
                        .value
                        .metadata
                        .client_name
                        .clone()
                        .unwrap_or_else(|| d.agent.to_string()),
                    client_id: d.agent.into_string(),
                    last_acted: d.last_acted,
                    stopped,
                });
            }
            // A deleted agent acts no more.
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(by_client.len());
    for (id, mut a) in by_client {
        // A deleted client's leftovers are not an app the user can use any more.
        if let Some(c) = app.repo.client_in(tenant, &id).await? {
            a.name = c.value.display_name();
            a.client_uri = c.value.metadata.client_uri.clone();
            out.push(a);
        }
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.last_used.unwrap_or(a.granted_at)));
    Ok(out)
}

/// How long a "the user took this app back" marker is kept: longer than any code issued before
/// it could still be redeemed.
const REVOKED_MARKER_TTL: i64 = 600;

/// Take an app back: its consent, every grant (so its refresh tokens, and its access tokens at
/// introspection), and any code issued before now (the marker below), with an audit event.
/// The consent and the marker go first, in one transaction: a code redeemed or a silent
/// authorization racing with this either landed before (and its grant is listed and ended) or
/// is refused. Returns whether there was anything to revoke.
pub async fn revoke_app(
    app: &App,
    tenant: &TenantId,
    sub: &Subject,
    client_id: &ClientId,
    actor: &str,
) -> Result<bool, OAuthError> {
    let consent = app.repo.consent(tenant, sub, client_id).await?;
    let any_grant = app
        .repo
        .grants_of(sub)
        .await?
        .iter()
        .any(|g| g.client_id == client_id && g.tenant == tenant);
    if consent.is_none() && !any_grant {
        return Ok(false);
    }
    let now = app.now();
    let mut writes =
        vec![
            app.repo
                .app_revoked_write(tenant, sub, client_id, now, now + REVOKED_MARKER_TTL)?,
        ];
    writes.extend(app.repo.delete_consent_writes(tenant, sub, client_id));
    writes.push(app.repo.audit_write_detail(
        tenant,
        AuditKind::ConsentRevoked,
        actor,
        client_id,
        (actor != sub).then(|| format!("user={sub}")),
    )?);
    app.repo.commit(writes).await?;
    let grants: Vec<_> = app
        .repo
        .grants_of(sub)
        .await?
        .into_iter()
        .filter(|g| g.client_id == client_id && g.tenant == tenant)
        .map(|g| g.reference())
        .collect();
    crate::service::grants::revoke_grants(app, &grants, None).await?;
    // The app's agents go with it (their tokens died with the grants above).
    let delegations: Vec<_> = app
        .repo
        .delegations_of(sub)
        .await?
        .into_iter()
        .filter(|d| d.app == client_id)
        .map(|d| app.repo.delete_delegation_write(sub, &d.app, &d.agent))
        .collect();
    for chunk in delegations.chunks(25) {
        app.repo.commit(chunk.to_vec()).await?;
    }
    Ok(true)
}

/// Stop one agent acting for the user through an app (the account page's Stop): its
/// delegated tokens stop working at once, and its exchanges fail until the user allows the
/// app's agents again on the consent page (`agent:act` leaves the remembered consent, so the
/// next request for it asks). Other agents of the app keep working. Returns whether there was
/// such an agent.
pub async fn stop_agent(
    app: &App,
    tenant: &TenantId,
    sub: &Subject,
    app_id: &ClientId,
    agent: &ClientId,
) -> Result<bool, OAuthError> {
    for _ in 0..3 {
        let Some(d) = app.repo.delegation(sub, app_id, agent).await? else {
            return Ok(false);
        };
        if d.value.tenant != tenant {
            return Ok(false);
        }
        let consent = app.repo.consent(tenant, sub, app_id).await?;
        let mut writes = Vec::with_capacity(4);
        let consent_version = match &consent {
            Some(c) => {
                let mut without = c.value.clone();
                let scopes = crate::domain::scope::ScopeSet::parse(&without.scope)
                    .unwrap_or_default()
                    .retain(|s| s != crate::domain::exchange::AGENT_ACT);
                without.scope = scopes.to_scope_string();
                without.updated_at = app.now();
                writes.extend(app.repo.put_consent_writes(&without, Some(c.version))?);
                Some(c.version + 1)
            }
            None => None,
        };
        let mut stopped = d.value.clone();
        stopped.stopped = true;
        stopped.stopped_consent = consent_version;
        writes.push(app.repo.put_delegation_write(&stopped, Some(d.version))?);
        writes.push(app.repo.audit_write_detail(
            tenant,
            AuditKind::AgentStopped,
            sub,
            agent,
            Some(format!("app={app_id}")),
        )?);
        match app.repo.commit(writes).await {
            Ok(()) => return Ok(true),
            Err(crate::store::StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OAuthError::unavailable())
}
