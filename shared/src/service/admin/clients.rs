//! Clients through the admin API, the console and the CLI: list, create, change (the one rule:
//! `domain::client_update`), delete, rotate the secret.

use super::*;

// ---- clients ----------------------------------------------------------------------------------

/// One page of the tenant's clients (live and disabled), in client-id order. The console's own
/// client is the server's, not the tenant's: never listed, found or changed here.
pub async fn list_clients(
    app: &App,
    tenant: &TenantId,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Client>, Option<String>), AdminError> {
    let (mut items, next) = app.repo.clients_of(tenant, cursor, limit).await?;
    items.retain(|c| c.origin != Origin::Console);
    Ok((items, next))
}

/// A client of the tenant, live or disabled; another tenant's is not found, nor the console's.
pub async fn client(
    app: &App,
    tenant: &TenantId,
    client_id: &ClientId,
) -> Result<Versioned<Client>, AdminError> {
    app.repo
        .client_any_in(tenant, client_id)
        .await?
        .filter(|c| c.value.origin != Origin::Console)
        .ok_or_else(|| AdminError::NotFound("client".into()))
}

/// A client holding `bulwark:admin` belongs to the operator: the admin API may read it but
/// not change, disable, rotate or delete it (a leaked admin token cannot lock the other
/// administrators out, nor keep itself alive by rotating).
pub(super) fn operator_managed(c: &Versioned<Client>) -> Result<(), AdminError> {
    if c.value.metadata.scopes().contains(ADMIN_SCOPE) {
        return Err(AdminError::Operator);
    }
    Ok(())
}

/// Fields of a client body that only the admin sets.
pub(super) const ADMIN_ONLY: [&str; 5] = [
    "first_party",
    "agent_of",
    "disabled",
    "authorized_users",
    "resource_server_for",
];
/// Fields the server sets; a body may not.
pub(super) const SERVER_MANAGED: [&str; 9] = [
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
    "tenant",
    "origin",
    "previous_secret_expires_at",
];

/// `authorized_users`: absent (unchanged), `null` (everyone in the tenant) or
/// `{"users": [user ids], "groups": [group ids]}`, each of this tenant.
pub(super) async fn user_policy_field(
    app: &App,
    tenant: &TenantId,
    obj: &Map<String, Value>,
) -> Result<Option<Option<UserPolicy>>, AdminError> {
    let field = "authorized_users";
    let bad = |why: &str| AdminError::Field(field.into(), why.to_string());
    let v = match obj.get(field) {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(bad(
                "authorized_users is null or {\"users\": [...], \"groups\": [...]}",
            ));
        }
    };
    if let Some(k) = v.keys().find(|k| *k != "users" && *k != "groups") {
        return Err(bad(&format!("unknown key {k:.40}")));
    }
    let list = |k: &str| -> Result<Vec<String>, AdminError> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) if a.len() <= MAX_LISTED => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("ids are strings"))
                })
                .collect(),
            Some(_) => Err(bad(&format!("{k} is a list of at most {MAX_LISTED} ids"))),
        }
    };
    let (users, groups) = (list("users")?, list("groups")?);
    for u in &users {
        if user(app, tenant, &Subject::from(u.as_str())).await.is_err() {
            return Err(bad(&format!("no user {u:.64} in this tenant")));
        }
    }
    for g in &groups {
        if group(app, tenant, g).await.is_err() {
            return Err(bad(&format!("no group {g:.64} in this tenant")));
        }
    }
    Ok(Some(Some(UserPolicy {
        users: users.into_iter().collect(),
        groups: groups.into_iter().collect(),
    })))
}

/// `resource_server_for`: absent (unchanged), `null` or `[]` (none), or a list of the tenant's
/// resource URIs (checked with the client by `domain::introspection`).
pub(super) fn resource_server_field(obj: &Map<String, Value>) -> Result<Option<Vec<String>>, AdminError> {
    let field = "resource_server_for";
    let bad = || {
        AdminError::Field(
            field.into(),
            "resource_server_for is a list of resource URIs".into(),
        )
    };
    match obj.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(a)) if a.len() <= crate::domain::introspection::MAX_SERVED => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

pub(super) fn bool_field(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, AdminError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(AdminError::Field(
            name.into(),
            format!("{name} must be true or false"),
        )),
    }
}

/// Create a client through the admin API: RFC 7591 metadata (validated as for the operator, so
/// restricted scopes are allowed, but never `bulwark:admin`) plus `first_party` and `agent_of`.
pub async fn create_client(
    app: &App,
    tenant: &TenantId,
    body: &Value,
    actor: &str,
) -> Result<Registered, AdminError> {
    let obj = body
        .as_object()
        .ok_or_else(|| AdminError::Invalid("the body must be a JSON object".into()))?;
    for f in SERVER_MANAGED.iter().chain(["disabled"].iter()) {
        if obj.contains_key(*f) {
            return Err(AdminError::Field(
                (*f).into(),
                format!("{f} is set by the server"),
            ));
        }
    }
    let first_party = bool_field(obj, "first_party")?.unwrap_or(false);
    let agent_of = match obj.get("agent_of") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(AdminError::Field(
                "agent_of".into(),
                "agent_of must be a client id".into(),
            ));
        }
    };
    let user_policy = user_policy_field(app, tenant, obj).await?.flatten();
    let resource_server_for = resource_server_field(obj)?.unwrap_or_default();
    let mut metadata = obj.clone();
    for f in ADMIN_ONLY {
        metadata.remove(f);
    }
    let reg = crate::service::clients::create_admin_made(
        app,
        tenant,
        &Value::Object(metadata),
        AdminFields {
            first_party,
            agent_of: agent_of.as_deref(),
            user_policy,
            resource_server_for,
        },
        Origin::Api,
        actor,
    )
    .await?;
    Ok(reg)
}

/// Change a client (RFC 7396 merge patch over its metadata, plus `first_party` and `disabled`).
/// The result is validated as a registration of the client's kind; it may not add
/// `bulwark:admin`, change how the client authenticates, or move it to another app. Adding a
/// redirect URI moves the consent epoch (users consent again); disabling it ends its grants,
/// consents and access tokens, as deleting does.
pub async fn patch_client(
    app: &App,
    tenant: &TenantId,
    client_id: &ClientId,
    expected_version: Option<u64>,
    patch: &Value,
    actor: &str,
) -> Result<Versioned<Client>, AdminError> {
    let patch = patch
        .as_object()
        .ok_or_else(|| AdminError::Invalid("the body must be a JSON object".into()))?;
    let current = client(app, tenant, client_id).await?;
    operator_managed(&current)?;
    check_version(expected_version, current.version)?;
    if current.value.origin == Origin::Cimd
        && let Some(f) = patch
            .keys()
            .find(|k| !["disabled", "authorized_users"].contains(&k.as_str()))
    {
        // Its metadata is its document's; and an app a stranger can change at any time is
        // never pre-approved.
        return Err(AdminError::Field(
            f.clone(),
            "a metadata-document client's metadata comes from its document; only disabled and authorized_users can be set"
                .into(),
        ));
    }
    for f in SERVER_MANAGED {
        if patch.contains_key(f) {
            return Err(AdminError::Field(f.into(), format!("{f} is set by the server")));
        }
    }
    let old = &current.value;
    if let Some(v) = patch.get("agent_of")
        && v.as_str() != old.agent_of.as_deref()
    {
        return Err(AdminError::Field(
            "agent_of".into(),
            "an agent's app is fixed when the agent is created".into(),
        ));
    }
    let first_party = bool_field(patch, "first_party")?;
    let disabled = bool_field(patch, "disabled")?;
    let user_policy = user_policy_field(app, tenant, patch).await?;
    let resource_server_for = resource_server_field(patch)?;
    let mut view = old.metadata.to_json();
    for (k, v) in patch {
        if ADMIN_ONLY.contains(&k.as_str()) {
            continue;
        }
        if v.is_null() {
            view.remove(k);
        } else {
            view.insert(k.clone(), v.clone());
        }
    }
    let t = app
        .repo
        .tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound("tenant".into()))?
        .value;
    // Judged as a registration by whoever registered the client: the admin cannot make an
    // anonymous registration into a machine client (it would keep the stranger's keys).
    let new = crate::domain::client::validate_metadata_change(
        &Value::Object(view),
        &t,
        old.registrant(),
        app.key_hosts(),
        &old.metadata,
    )?;
    let now = app.now();
    let Changed {
        client: mut c,
        redirect_added,
    } = change_metadata(old, new, Changer::Admin, now)?;
    if let Some(fp) = first_party {
        c.first_party = fp;
    }
    let policy_changed = user_policy.as_ref().is_some_and(|p| *p != old.user_policy);
    if let Some(p) = user_policy {
        c.user_policy = p;
    }
    if let Some(list) = resource_server_for {
        c.resource_server_for = crate::domain::introspection::check_resource_server_for(&c, &t, &list)
            .map_err(|why| AdminError::Field("resource_server_for".into(), why))?;
    }
    let was_disabled = old.disabled;
    let disabling = disabled == Some(true) && !was_disabled;
    let enabling = disabled == Some(false) && was_disabled;
    let mut writes = Vec::with_capacity(5);
    if disabling || enabling {
        c.disabled = disabling;
        // Disabling ends what was issued before; enabling also ends whatever a request that
        // raced the disable (client_credentials is not transactional) signed meanwhile — up to
        // the second before, so that what is issued the moment it is enabled works.
        c.tokens_revoked_before = if disabling {
            now
        } else {
            c.tokens_revoked_before.max(now - 1)
        };
        writes.extend(app.repo.move_client_writes(&c, current.version)?);
    } else {
        writes.push(app.repo.replace_client_write(&c, current.version)?);
    }
    writes.push(
        app.repo
            .audit_write(tenant, AuditKind::ClientUpdated, actor, client_id)?,
    );
    if disabling {
        writes.push(
            app.repo
                .audit_write(tenant, AuditKind::ClientDisabled, actor, client_id)?,
        );
    }
    if enabling {
        writes.push(
            app.repo
                .audit_write(tenant, AuditKind::ClientEnabled, actor, client_id)?,
        );
    }
    if policy_changed {
        writes.push(
            app.repo
                .audit_write(tenant, AuditKind::PolicyAppUsersSet, actor, client_id)?,
        );
    }
    if redirect_added {
        writes.push(
            app.repo
                .audit_write(tenant, AuditKind::ConsentReset, actor, client_id)?,
        );
    }
    match app.repo.commit(writes).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(stale()),
        Err(e) => return Err(e.into()),
    }
    if disabling || (disabled == Some(true) && was_disabled) {
        // Nothing new can be issued to it now (it is no longer found); end what it holds. Run
        // again when asked again, so that a sweep cut short is finished by the retry.
        let grants = app.repo.grants_of_client(tenant, client_id).await?;
        crate::service::grants::revoke_grants(app, &grants, None).await?;
        crate::service::clients::end_consents(app, tenant, client_id).await?;
    }
    Ok(Versioned {
        value: c,
        version: current.version + 1,
    })
}

/// Delete a client of the tenant and everything hanging off it.
pub async fn delete_client(
    app: &App,
    tenant: &TenantId,
    client_id: &ClientId,
    actor: &str,
) -> Result<(), AdminError> {
    let current = client(app, tenant, client_id).await?;
    operator_managed(&current)?;
    crate::service::clients::delete(app, current, actor).await?;
    Ok(())
}

/// Rotate a client's secret with a grace period for the previous one. `by_operator`: the CLI,
/// which may also rotate the secrets of clients holding `bulwark:admin`.
pub async fn rotate_secret(
    app: &App,
    tenant: &TenantId,
    client_id: &ClientId,
    grace_seconds: i64,
    actor: &str,
    by_operator: bool,
) -> Result<(Secret, Client), AdminError> {
    let current = client(app, tenant, client_id).await?;
    if !by_operator {
        operator_managed(&current)?;
    }
    match crate::service::clients::rotate_secret(app, current, grace_seconds, actor).await {
        Ok(r) => Ok(r),
        Err(e)
            if e.code == crate::error::ErrorCode::InvalidRequest
                && e.description.contains("grace_seconds") =>
        {
            Err(AdminError::Field(
                "grace_seconds".into(),
                e.description.to_string(),
            ))
        }
        Err(e) if e.code == crate::error::ErrorCode::InvalidRequest => {
            Err(AdminError::Invalid(e.description.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}
