//! Tenant provisioning: create tenants, grow the scope catalog, issue initial access tokens.

use crate::domain::audit::AuditKind;
use serde_json::{Value, json};

use crate::domain::client::is_displayable;
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::{DcrPolicy, Tenant, TenantId};
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::service::App;
use crate::store::StoreError;
use crate::store::repo::InitialAccessToken;

/// Why a provisioning command failed (the CLI prints these).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} not found")]
    NotFound(String),
    /// A list's cursor that this store did not issue.
    #[error("the cursor is not valid here")]
    BadCursor,
    /// The store failed or another writer kept winning (the text is for logs only).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    OAuth(OAuthError),
    /// A field of the request is invalid: (field, why).
    #[error("{0}: {1}")]
    Field(String, String),
    /// The object changed since the caller read it (a lost race, or a stale `If-Match`).
    #[error("it changed since it was read")]
    Stale,
    /// Only the operator (the `bulwark` CLI) may change this (a client holding `bulwark:admin`).
    #[error("only the operator can change this (bulwark CLI)")]
    Operator,
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            // The store's only NotFound: a query cursor it did not issue.
            StoreError::NotFound => AdminError::BadCursor,
            StoreError::Conflict => AdminError::Unavailable("another writer kept winning".into()),
            StoreError::Unavailable(why) => AdminError::Unavailable(why),
        }
    }
}
impl From<OAuthError> for AdminError {
    fn from(e: OAuthError) -> Self {
        AdminError::OAuth(e)
    }
}

impl From<crate::domain::client::MetadataError> for AdminError {
    fn from(e: crate::domain::client::MetadataError) -> Self {
        AdminError::OAuth(e.into())
    }
}

/// Create a tenant with the seed scope catalog.
pub async fn create(
    app: &App,
    name: &str,
    dcr: DcrPolicy,
    audience: Option<String>,
) -> Result<Tenant, AdminError> {
    let id = TenantId::parse(name).map_err(AdminError::Invalid)?;
    if let Some(a) = &audience {
        validate_resource(a).map_err(AdminError::Invalid)?;
    }
    let tenant = Tenant::new(id, dcr, audience, app.now());
    match app.repo.create_tenant(&tenant).await {
        Ok(()) => Ok(tenant),
        Err(StoreError::Conflict) => Err(AdminError::Exists(format!("tenant {name}"))),
        Err(e) => Err(e.into()),
    }
}

/// Whether tenant `id` exists now (read through, not from the tenant cache).
pub async fn exists(app: &App, id: &TenantId) -> Result<bool, OAuthError> {
    Ok(app.repo.tenant(id.as_str()).await?.is_some())
}

pub async fn get(app: &App, name: &str) -> Result<Tenant, AdminError> {
    app.repo
        .tenant(name)
        .await?
        .map(|v| v.value)
        .ok_or_else(|| AdminError::NotFound(format!("tenant {name}")))
}

/// The audit event of a tenant change: what, by whom, to what.
pub(crate) struct Event<'a> {
    pub kind: AuditKind,
    pub actor: &'a str,
    pub subject: &'a str,
}

/// Read-modify-write a tenant, with its audit event in the same transaction, retrying when a
/// concurrent writer got there first.
async fn update(
    app: &App,
    name: &str,
    event: Event<'_>,
    f: impl Fn(&mut Tenant) -> Result<(), AdminError>,
) -> Result<Tenant, AdminError> {
    for _ in 0..5 {
        let current = app
            .repo
            .tenant(name)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("tenant {name}")))?;
        let mut t = current.value;
        f(&mut t)?;
        let writes = vec![
            app.repo.replace_tenant_write(&t, current.version)?,
            app.repo
                .audit_write(name, event.kind, event.actor, event.subject)?,
        ];
        let replaced = app.commit_tenant_change(name, writes).await;
        match replaced {
            Ok(()) => return Ok(t),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Add (or re-describe) a scope in the tenant's catalog; `restricted`: only operator/admin-made
/// clients may hold it (`None` leaves an existing scope's setting as it is; a new scope is
/// unrestricted).
pub async fn add_scope(
    app: &App,
    tenant: &TenantId,
    name: &str,
    description: &str,
    restricted: Option<bool>,
) -> Result<Tenant, AdminError> {
    let parsed = ScopeSet::parse(name).map_err(AdminError::Invalid)?;
    if parsed.iter().count() != 1 {
        return Err(AdminError::Invalid("give exactly one scope name".into()));
    }
    if name.starts_with(crate::domain::client::RESERVED_SCOPE_PREFIX) {
        return Err(AdminError::Invalid(format!(
            "scopes named {}... belong to Bulwark",
            crate::domain::client::RESERVED_SCOPE_PREFIX
        )));
    }
    let description = description.trim();
    if description.is_empty() || description.chars().count() > 300 || !is_displayable(description) {
        return Err(AdminError::Invalid(
            "a description is 1 to 300 printable characters".into(),
        ));
    }
    let event = Event {
        kind: AuditKind::ScopeAdded,
        actor: "cli",
        subject: name,
    };
    update(app, tenant, event, |t| {
        t.scopes.insert(name.to_string(), description.to_string());
        match restricted {
            Some(true) => set_restricted_in(t, name, true)?,
            Some(false) => set_restricted_in(t, name, false)?,
            None => {}
        }
        Ok(())
    })
    .await
}

/// Mark a catalog scope restricted (only operator/admin-made clients may hold it; DCR and
/// RFC 7592 asking for it are refused, and DCR clients that already hold it are no longer
/// issued it) or not.
pub async fn set_restricted(
    app: &App,
    tenant: &TenantId,
    name: &str,
    restricted: bool,
) -> Result<Tenant, AdminError> {
    let kind = if restricted {
        AuditKind::ScopeRestricted
    } else {
        AuditKind::ScopeUnrestricted
    };
    let event = Event {
        kind,
        actor: "cli",
        subject: name,
    };
    update(app, tenant, event, |t| {
        if !t.scopes.contains_key(name) {
            return Err(AdminError::NotFound(format!("scope {name} in tenant {tenant}")));
        }
        set_restricted_in(t, name, restricted)
    })
    .await
}

fn set_restricted_in(t: &mut Tenant, name: &str, restricted: bool) -> Result<(), AdminError> {
    if restricted && crate::domain::tenant::SEED_SCOPES.iter().any(|(s, _)| *s == name) {
        return Err(AdminError::Invalid(format!(
            "{name} is a standard scope every app may ask users for; it cannot be restricted"
        )));
    }
    if restricted {
        t.restricted_scopes.insert(name.to_string());
    } else {
        t.restricted_scopes.remove(name);
    }
    Ok(())
}

/// Allow an RFC 8707 resource (token audience) for the tenant, with the name the consent page
/// shows for it. Adding one again with a name sets its name; without one leaves it as it was.
/// The CLI and the admin API both come here (audited as `actor`).
pub async fn add_resource(
    app: &App,
    tenant: &TenantId,
    resource: &str,
    name: Option<&str>,
    actor: &str,
) -> Result<Tenant, AdminError> {
    validate_resource(resource).map_err(AdminError::Invalid)?;
    let name = name
        .map(crate::domain::tenant::resource_name)
        .transpose()
        .map_err(AdminError::Invalid)?;
    let event = Event {
        kind: AuditKind::ResourceAdded,
        actor,
        subject: resource,
    };
    update(app, tenant, event, |t| {
        if !t.resources.iter().any(|r| r == resource) {
            t.resources.push(resource.to_string());
        }
        if let Some(n) = &name {
            t.resource_names.insert(resource.to_string(), n.clone());
        }
        Ok(())
    })
    .await
}

/// Lifetimes a tenant may set (seconds; `None` leaves one unchanged).
#[derive(Debug, Default)]
pub struct LifetimeChanges {
    pub access_token: Option<i64>,
    pub refresh_idle: Option<i64>,
    pub refresh_absolute: Option<i64>,
    pub session: Option<i64>,
}

/// Set a tenant's token and session lifetimes, within bounds.
pub async fn set_lifetimes(app: &App, tenant: &TenantId, c: &LifetimeChanges) -> Result<Tenant, AdminError> {
    let check = |name: &str, v: Option<i64>, min: i64, max: i64| match v {
        Some(n) if !(min..=max).contains(&n) => {
            Err(AdminError::Invalid(format!("{name} is {min} to {max} seconds")))
        }
        _ => Ok(()),
    };
    check(
        "--access-token-ttl",
        c.access_token,
        60,
        app.config.max_access_token_ttl,
    )?;
    check("--refresh-idle", c.refresh_idle, 300, 366 * 86_400)?;
    check("--refresh-absolute", c.refresh_absolute, 300, 2 * 366 * 86_400)?;
    check("--session", c.session, 300, 30 * 86_400)?;
    let event = Event {
        kind: AuditKind::TenantLifetimesSet,
        actor: "cli",
        subject: tenant,
    };
    update(app, tenant, event, |t| {
        if let Some(v) = c.access_token {
            t.access_token_ttl = Some(v);
        }
        if let Some(v) = c.refresh_idle {
            t.refresh_idle_ttl = Some(v);
        }
        if let Some(v) = c.refresh_absolute {
            t.refresh_absolute_ttl = Some(v);
        }
        if let Some(v) = c.session {
            t.session_ttl = Some(v);
        }
        let d = app.config.lifetimes;
        if t.refresh_idle_ttl.unwrap_or(d.refresh_idle) > t.refresh_absolute_ttl.unwrap_or(d.refresh_absolute)
        {
            return Err(AdminError::Invalid(
                "the idle refresh lifetime cannot exceed the absolute one".into(),
            ));
        }
        Ok(())
    })
    .await
}

/// Allow or deny the deprecated password grant for a tenant. Denying it stops it at once for
/// every client (the token endpoint checks the policy on each request); clients registered for
/// it keep the registration but cannot use it.
pub async fn set_password_grant(app: &App, tenant: &TenantId, allow: bool) -> Result<Tenant, AdminError> {
    let event = Event {
        kind: if allow {
            AuditKind::PolicyPasswordGrantAllowed
        } else {
            AuditKind::PolicyPasswordGrantDenied
        },
        actor: "cli",
        subject: tenant,
    };
    update(app, tenant, event, |t| {
        t.password_grant = allow;
        Ok(())
    })
    .await
}

/// The longest trusted issuer identifier.
pub const MAX_ISSUER: usize = 512;
/// The largest inline key set of a trusted issuer, serialised.
pub const MAX_ISSUER_JWKS: usize = 8 * 1024;
/// The most a tenant's trusted issuers may take in its config item, serialised.
pub const MAX_ISSUERS_BYTES: usize = 64 * 1024;

/// Trust an external identity provider for the JWT bearer grant: its issuer identifier (an
/// https URL in normal form; http only on loopback, for development) and its keys, inline
/// (`jwks`, public signing keys only) or at `jwks_uri` (fetched through the SSRF-guarded
/// fetcher) — exactly one. `id_jag`: its assertions are Identity Assertion JWT Authorization
/// Grants, and only those are taken from it (see `TrustedIssuer::id_jag`); `workload`: its
/// tokens authenticate `federated` clients instead (`single_use`: each `jti` once). Adding an issuer
/// already trusted replaces its entry (keys and profile).
pub async fn add_issuer(
    app: &App,
    tenant: &TenantId,
    entry: crate::domain::tenant::TrustedIssuer,
    actor: &str,
) -> Result<Tenant, AdminError> {
    let crate::domain::tenant::TrustedIssuer {
        issuer,
        jwks,
        jwks_uri,
        id_jag,
        idp_tenant,
        workload: _,
        single_use: _,
    } = &entry;
    entry.check_profile().map_err(AdminError::Invalid)?;
    let issuer = issuer.as_str();
    // The issuer identifier is compared, never fetched: https (http only on loopback, for
    // development), canonical, bounded.
    let url = crate::domain::client::canonical_url(issuer)
        .map_err(|why| AdminError::Invalid(format!("--issuer {why}")))?;
    let loopback = crate::domain::net::is_loopback_host(&url);
    if (url.scheme() != "https" && !(url.scheme() == "http" && loopback))
        || !url.username().is_empty()
        || url.fragment().is_some()
        || issuer.len() > MAX_ISSUER
    {
        return Err(AdminError::Invalid(format!(
            "--issuer must be an https URL (http only on loopback) of at most {MAX_ISSUER} characters"
        )));
    }
    match (jwks, jwks_uri) {
        (Some(v), None) => {
            crate::keys::external::check_jwks(v)
                .map_err(|why| AdminError::Invalid(format!("jwks: {why}")))?;
            if serde_json::to_vec(v).map_or(true, |b| b.len() > MAX_ISSUER_JWKS) {
                return Err(AdminError::Invalid(format!(
                    "jwks: at most {MAX_ISSUER_JWKS} bytes inline; publish larger key sets at a jwks_uri"
                )));
            }
        }
        (None, Some(u)) => {
            // The fetcher's rule, applied now (`domain::net`), as for a client's jwks_uri.
            crate::domain::net::check_key_url(u, app.key_hosts())
                .map_err(|why| AdminError::Invalid(format!("--jwks-uri {why}")))?;
        }
        _ => {
            return Err(AdminError::Invalid(
                "give the issuer's keys: --jwks-file or --jwks-uri (one of them)".into(),
            ));
        }
    }
    if let Some(t) = idp_tenant {
        if !id_jag {
            return Err(AdminError::Invalid(
                "--idp-tenant is for an ID-JAG issuer (--id-jag): it checks the ID-JAG's tenant claim".into(),
            ));
        }
        crate::domain::tenant::check_idp_tenant(t).map_err(AdminError::Invalid)?;
    }
    let event = Event {
        kind: AuditKind::IssuerTrusted,
        actor,
        subject: issuer,
    };
    update(app, tenant, event, |t| {
        t.trusted_issuers.retain(|i| i.issuer != entry.issuer);
        if t.trusted_issuers.len() >= 20 {
            return Err(AdminError::Invalid("a tenant trusts at most 20 issuers".into()));
        }
        t.trusted_issuers.push(entry.clone());
        // The tenant's item is read by every token request (through the tenant cache): its
        // issuers stay small.
        if serde_json::to_vec(&t.trusted_issuers).map_or(true, |b| b.len() > MAX_ISSUERS_BYTES) {
            return Err(AdminError::Invalid(format!(
                "jwks: the tenant's trusted issuers would exceed {MAX_ISSUERS_BYTES} bytes; publish key sets at a jwks_uri"
            )));
        }
        Ok(())
    })
    .await
}

/// Stop trusting an identity provider: its assertions are refused from now on (tokens already
/// issued live until they expire or their grants are revoked).
pub async fn remove_issuer(
    app: &App,
    tenant: &TenantId,
    issuer: &str,
    actor: &str,
) -> Result<Tenant, AdminError> {
    let event = Event {
        kind: AuditKind::IssuerRemoved,
        actor,
        subject: issuer,
    };
    update(app, tenant, event, |t| {
        let before = t.trusted_issuers.len();
        t.trusted_issuers.retain(|i| i.issuer != issuer);
        if t.trusted_issuers.len() == before {
            return Err(AdminError::NotFound(format!("trusted issuer {issuer}")));
        }
        Ok(())
    })
    .await
}

/// The trusted issuers, as the operator sees them.
pub fn describe_issuers(t: &Tenant) -> Value {
    json!({
        "tenant": t.id.as_str(),
        "issuers": t.trusted_issuers.iter().map(|i| json!({
            "issuer": i.issuer,
            "jwks_uri": i.jwks_uri,
            "inline_keys": i.jwks.as_ref().and_then(|j| j["keys"].as_array()).map(Vec::len),
            "id_jag": i.id_jag,
            "idp_tenant": i.idp_tenant,
            "workload": i.workload,
            "single_use": i.single_use,
        })).collect::<Vec<_>>(),
    })
}

/// An RFC 8707 resource is an absolute URI without a fragment.
fn validate_resource(r: &str) -> Result<(), String> {
    match url::Url::parse(r) {
        Ok(u) if u.fragment().is_none() && r.len() <= 2000 && !r.contains(char::is_whitespace) => Ok(()),
        _ => Err("a resource is an absolute URI without a fragment".into()),
    }
}

/// Issue an initial access token for DCR. Returned once; stored as a hash.
pub async fn create_iat(
    app: &App,
    tenant: &TenantId,
    expires_in: i64,
    max_uses: u32,
) -> Result<(Secret, InitialAccessToken), AdminError> {
    create_iat_by(app, tenant, expires_in, max_uses, "cli").await
}

/// [`create_iat`], recording `actor` in the audit trail.
pub async fn create_iat_by(
    app: &App,
    tenant: &TenantId,
    expires_in: i64,
    max_uses: u32,
    actor: &str,
) -> Result<(Secret, InitialAccessToken), AdminError> {
    let t = get(app, tenant).await?;
    if !(60..=366 * 24 * 3600).contains(&expires_in) {
        return Err(AdminError::Invalid("--expires-in is 60 seconds to a year".into()));
    }
    let now = app.now();
    let secret = crate::secret::generate();
    let iat = InitialAccessToken {
        tenant: t.id,
        max_uses,
        uses: 0,
        created_at: now,
        expires_at: now + expires_in,
    };
    app.repo.create_iat(&secret.hash().to_hex(), &iat, actor).await?;
    Ok((secret, iat))
}

/// The tenant as JSON for the CLI.
pub fn describe(t: &Tenant) -> Value {
    json!({
        "tenant": t.id.as_str(),
        "dcr_policy": t.dcr_policy.as_str(),
        "scopes": t.scopes,
        "restricted_scopes": t.restricted_scopes,
        "resources": t.resources,
        "resource_names": t.resource_names,
        "default_audience": t.default_audience,
        "access_token_ttl": t.access_token_ttl,
        "refresh_idle_ttl": t.refresh_idle_ttl,
        "refresh_absolute_ttl": t.refresh_absolute_ttl,
        "session_ttl": t.session_ttl,
        "password_grant": if t.password_grant { "allow" } else { "deny" },
        "cimd": t.cimd.to_json(),
        "client_assertion_max_lifetime": t.client_assertion_lifetime(),
        "dpop_nonce": if t.dpop_nonce_required { "required" } else { "off" },
        "par": if t.require_pushed_authorization_requests { "required" } else { "optional" },
        "created_at": t.created_at,
    })
}
