//! The tenant's own settings through the admin API and the console: policy, scopes, initial
//! access tokens, resources.

use super::*;

// ---- policy -----------------------------------------------------------------------------------

/// What a policy PATCH may change (`None`: unchanged; a lifetime `Some(None)`: the default).
#[derive(Default, Debug)]
pub struct PolicyChanges {
    pub dcr: Option<DcrPolicy>,
    pub access_token_ttl: Option<Option<i64>>,
    pub refresh_idle_ttl: Option<Option<i64>>,
    pub refresh_absolute_ttl: Option<Option<i64>>,
    pub session_ttl: Option<Option<i64>>,
    pub password_grant: Option<bool>,
    /// `Some(None)`: the allowlist off; `Some(Some(ids))`: only these apps.
    pub app_allowlist: Option<Option<Vec<String>>>,
    pub cimd: Option<crate::domain::cimd::CimdPolicy>,
    /// How far ahead a client assertion's `exp` may be (`Some(None)`: an hour).
    pub client_assertion_max_lifetime: Option<Option<i64>>,
    /// Whether DPoP proofs at the token endpoint must carry a server nonce.
    pub dpop_nonce_required: Option<bool>,
    /// Whether every client must push its authorization requests (RFC 9126 §5).
    pub require_pushed_authorization_requests: Option<bool>,
}

pub async fn tenant(app: &App, tenant: &TenantId) -> Result<Versioned<Tenant>, AdminError> {
    app.repo
        .tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound("tenant".into()))
}

/// Change the tenant's policy in one conditional write, with one audit event naming what changed.
pub async fn patch_policy(
    app: &App,
    tenant_id: &TenantId,
    expected_version: Option<u64>,
    c: PolicyChanges,
    actor: &str,
) -> Result<Versioned<Tenant>, AdminError> {
    let bounds = [
        (
            "access_token_ttl",
            c.access_token_ttl,
            60,
            app.config.max_access_token_ttl,
        ),
        ("refresh_idle_ttl", c.refresh_idle_ttl, 300, 366 * 86_400),
        (
            "refresh_absolute_ttl",
            c.refresh_absolute_ttl,
            300,
            2 * 366 * 86_400,
        ),
        ("session_ttl", c.session_ttl, 300, 30 * 86_400),
        (
            "client_assertion_max_lifetime",
            c.client_assertion_max_lifetime,
            crate::domain::assertion::MIN_ASSERTION_LIFETIME,
            crate::domain::assertion::MAX_ASSERTION_LIFETIME,
        ),
    ];
    for (name, v, min, max) in bounds {
        if let Some(Some(n)) = v
            && !(min..=max).contains(&n)
        {
            return Err(AdminError::Field(
                name.into(),
                format!("{name} is {min} to {max} seconds"),
            ));
        }
    }
    let current = tenant(app, tenant_id).await?;
    check_version(expected_version, current.version)?;
    let mut t = current.value.clone();
    let mut changed: Vec<&str> = Vec::new();
    if let Some(d) = c.dcr {
        t.dcr_policy = d;
        changed.push("dcr");
    }
    if let Some(v) = c.access_token_ttl {
        t.access_token_ttl = v;
        changed.push("access_token_ttl");
    }
    if let Some(v) = c.refresh_idle_ttl {
        t.refresh_idle_ttl = v;
        changed.push("refresh_idle_ttl");
    }
    if let Some(v) = c.refresh_absolute_ttl {
        t.refresh_absolute_ttl = v;
        changed.push("refresh_absolute_ttl");
    }
    if let Some(v) = c.session_ttl {
        t.session_ttl = v;
        changed.push("session_ttl");
    }
    if let Some(p) = c.password_grant {
        t.password_grant = p;
        changed.push("password_grant");
    }
    if let Some(p) = c.cimd {
        t.cimd = p;
        changed.push("cimd");
    }
    if let Some(r) = c.dpop_nonce_required {
        t.dpop_nonce_required = r;
        changed.push("dpop_nonce_required");
    }
    if let Some(v) = c.require_pushed_authorization_requests {
        t.require_pushed_authorization_requests = v;
        changed.push("require_pushed_authorization_requests");
    }
    if let Some(v) = c.client_assertion_max_lifetime {
        t.client_assertion_max_lifetime = v;
        changed.push("client_assertion_max_lifetime");
    }
    if let Some(list) = &c.app_allowlist {
        t.app_allowlist = match list {
            None => None,
            Some(ids) => {
                if ids.len() > MAX_LISTED {
                    return Err(AdminError::Field(
                        "app_allowlist".into(),
                        format!("at most {MAX_LISTED} apps"),
                    ));
                }
                for id in ids {
                    // A metadata-document client may be listed before anyone has met it.
                    let document = crate::domain::cimd::is_url_id(id)
                        && crate::domain::cimd::check_url(id, app.config.issuer_is_loopback_http()).is_ok();
                    if !document
                        && client(app, tenant_id, &ClientId::from(id.as_str()))
                            .await
                            .is_err()
                    {
                        return Err(AdminError::Field(
                            "app_allowlist".into(),
                            format!("no client {id:.64} in this tenant"),
                        ));
                    }
                }
                Some(ids.iter().cloned().collect())
            }
        };
        changed.push("app_allowlist");
    }
    let d = app.config.lifetimes;
    if t.refresh_idle_ttl.unwrap_or(d.refresh_idle) > t.refresh_absolute_ttl.unwrap_or(d.refresh_absolute) {
        return Err(AdminError::Field(
            "refresh_idle_ttl".into(),
            "the idle refresh lifetime cannot exceed the absolute one".into(),
        ));
    }
    let writes = vec![
        app.repo.replace_tenant_write(&t, current.version)?,
        app.repo.audit_write_detail(
            tenant_id,
            AuditKind::PolicyUpdated,
            actor,
            tenant_id,
            Some(changed.join(",")),
        )?,
    ];
    match app.commit_tenant_change(tenant_id, writes).await {
        Ok(()) => Ok(Versioned {
            value: t,
            version: current.version + 1,
        }),
        Err(StoreError::Conflict) => Err(stale()),
        Err(e) => Err(e.into()),
    }
}

// ---- scopes -----------------------------------------------------------------------------------

/// Add or re-describe a catalog scope; `restricted` (`None`: unchanged, new: false).
pub async fn put_scope(
    app: &App,
    tenant_id: &TenantId,
    name: &str,
    description: &str,
    restricted: Option<bool>,
    actor: &str,
) -> Result<Tenant, AdminError> {
    let parsed = ScopeSet::parse(name).map_err(|why| AdminError::Field("name".into(), why))?;
    if parsed.iter().count() != 1 || parsed.iter().next() != Some(name) {
        return Err(AdminError::Field(
            "name".into(),
            "give exactly one scope name".into(),
        ));
    }
    if name.starts_with(RESERVED_SCOPE_PREFIX) {
        return Err(AdminError::Field(
            "name".into(),
            format!("scopes named {RESERVED_SCOPE_PREFIX}... belong to Bulwark"),
        ));
    }
    let description = description.trim();
    if description.is_empty()
        || description.chars().count() > 300
        || !crate::domain::client::is_displayable(description)
    {
        return Err(AdminError::Field(
            "description".into(),
            "a description is 1 to 300 printable characters".into(),
        ));
    }
    if restricted == Some(true) && SEED_SCOPES.iter().any(|(s, _)| *s == name) {
        return Err(AdminError::Field(
            "restricted".into(),
            format!("{name} is a standard scope every app may ask users for; it cannot be restricted"),
        ));
    }
    for _ in 0..5 {
        let current = tenant(app, tenant_id).await?;
        let mut t = current.value;
        let existed = t.scopes.contains_key(name);
        t.scopes.insert(name.to_string(), description.to_string());
        match restricted {
            Some(true) => {
                t.restricted_scopes.insert(name.to_string());
            }
            Some(false) => {
                t.restricted_scopes.remove(name);
            }
            None => {}
        }
        let kind = if existed {
            AuditKind::ScopeUpdated
        } else {
            AuditKind::ScopeAdded
        };
        let writes = vec![
            app.repo.replace_tenant_write(&t, current.version)?,
            app.repo.audit_write(tenant_id, kind, actor, name)?,
        ];
        match app.commit_tenant_change(tenant_id, writes).await {
            Ok(()) => return Ok(t),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::OAuth(OAuthError::unavailable()))
}

/// Remove a scope from the catalog: no client is issued it from now on (a client may only be
/// issued catalog scopes). The standard scopes stay.
pub async fn delete_scope(
    app: &App,
    tenant_id: &TenantId,
    name: &str,
    actor: &str,
) -> Result<(), AdminError> {
    if SEED_SCOPES.iter().any(|(s, _)| *s == name) {
        return Err(AdminError::Field(
            "name".into(),
            format!("{name} is a standard scope; it cannot be removed"),
        ));
    }
    for _ in 0..5 {
        let current = tenant(app, tenant_id).await?;
        let mut t = current.value;
        if t.scopes.remove(name).is_none() {
            return Err(AdminError::NotFound("scope".into()));
        }
        t.restricted_scopes.remove(name);
        let writes = vec![
            app.repo.replace_tenant_write(&t, current.version)?,
            app.repo
                .audit_write(tenant_id, AuditKind::ScopeRemoved, actor, name)?,
        ];
        match app.commit_tenant_change(tenant_id, writes).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::OAuth(OAuthError::unavailable()))
}

// ---- initial access tokens ----------------------------------------------------------------------

/// One page of the tenant's live initial access tokens, by id (the SHA-256 of the token, which
/// is all the store has of it).
pub async fn list_iats(
    app: &App,
    tenant: &TenantId,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<(String, InitialAccessToken)>, Option<String>), AdminError> {
    Ok(app.repo.iats_of(tenant, cursor, limit).await?)
}

/// Delete (revoke) an initial access token of the tenant.
pub async fn delete_iat(app: &App, tenant: &TenantId, id: &str, actor: &str) -> Result<(), AdminError> {
    let valid = id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let found = if valid { app.repo.iat(id).await? } else { None };
    if !found.is_some_and(|i| i.value.tenant.as_str() == tenant && i.value.expires_at > app.now()) {
        return Err(AdminError::NotFound("initial access token".into()));
    }
    let writes = vec![
        app.repo.delete_iat_write(id),
        app.repo.audit_write(tenant, AuditKind::IatDeleted, actor, id)?,
    ];
    match app.repo.commit(writes).await {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict) => Err(AdminError::NotFound("initial access token".into())),
        Err(e) => Err(e.into()),
    }
}

// ---- resources --------------------------------------------------------------------------------

/// Allow an RFC 8707 resource (a token audience) for the tenant.
pub async fn add_resource(
    app: &App,
    tenant_id: &TenantId,
    resource: &str,
    name: Option<&str>,
    actor: &str,
) -> Result<Tenant, AdminError> {
    if let Some(n) = name {
        crate::domain::tenant::resource_name(n).map_err(|why| AdminError::Field("name".into(), why))?;
    }
    crate::service::tenants::add_resource(app, tenant_id, resource, name, actor)
        .await
        .map_err(|e| match e {
            AdminError::Invalid(why) => AdminError::Field("resource".into(), why),
            other => other,
        })
}

/// Stop allowing a resource: no token is issued for it from now on (the default audience stays).
pub async fn remove_resource(
    app: &App,
    tenant_id: &TenantId,
    resource: &str,
    actor: &str,
) -> Result<(), AdminError> {
    for _ in 0..5 {
        let current = tenant(app, tenant_id).await?;
        let mut t = current.value;
        if resource == t.default_audience {
            return Err(AdminError::Field(
                "resource".into(),
                "the default audience cannot be removed".into(),
            ));
        }
        let before = t.resources.len();
        t.resources.retain(|r| r != resource);
        t.resource_names.remove(resource);
        if t.resources.len() == before {
            return Err(AdminError::NotFound("resource".into()));
        }
        let writes = vec![
            app.repo.replace_tenant_write(&t, current.version)?,
            app.repo
                .audit_write(tenant_id, AuditKind::ResourceRemoved, actor, resource)?,
        ];
        match app.commit_tenant_change(tenant_id, writes).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::OAuth(OAuthError::unavailable()))
}
