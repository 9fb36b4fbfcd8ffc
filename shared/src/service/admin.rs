//! The tenant admin API's operations (`/admin/v1`): every one confined to the caller's tenant
//! (another tenant's objects are "not found"), recorded in the audit trail under the caller's
//! name, and conditional on the version the caller read when it names one (`If-Match`).
//!
//! The HTTP layer (`http::admin`) only translates; the operator CLI calls the same functions
//! where it offers the same operation.

use crate::domain::audit::AuditKind;
use crate::domain::client_update::{Changed, Changer, change_metadata};
use serde_json::{Map, Value};

use crate::domain::access::{MAX_LISTED, UserPolicy};
use crate::domain::client::{ADMIN_SCOPE, Client, Origin, RESERVED_SCOPE_PREFIX, validate_metadata};
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::{DcrPolicy, SEED_SCOPES, Tenant};
use crate::domain::user::{User, check_email};
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::service::App;
use crate::service::clients::{AdminFields, Registered};
use crate::service::tenants::AdminError;
use crate::service::users::SignOut;
use crate::store::StoreError;
use crate::store::repo::{AuditEvent, InitialAccessToken, Versioned};

/// The answer when a conditional write finds that the object moved on since the caller read it.
fn stale() -> AdminError {
    AdminError::Stale
}

fn check_version(expected: Option<u64>, current: u64) -> Result<(), AdminError> {
    match expected {
        Some(v) if v != current => Err(stale()),
        _ => Ok(()),
    }
}

// ---- clients ----------------------------------------------------------------------------------

/// One page of the tenant's clients (live and disabled), in client-id order. The console's own
/// client is the server's, not the tenant's: never listed, found or changed here.
pub async fn list_clients(
    app: &App,
    tenant: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Client>, Option<String>), AdminError> {
    let (mut items, next) = app.repo.clients_of(tenant, cursor, limit).await?;
    items.retain(|c| c.origin != Origin::Console);
    Ok((items, next))
}

/// A client of the tenant, live or disabled; another tenant's is not found, nor the console's.
pub async fn client(app: &App, tenant: &str, client_id: &str) -> Result<Versioned<Client>, AdminError> {
    app.repo
        .client_any_in(tenant, client_id)
        .await?
        .filter(|c| c.value.origin != Origin::Console)
        .ok_or_else(|| AdminError::NotFound("client".into()))
}

/// A client holding `bulwark:admin` belongs to the operator: the admin API may read it but
/// not change, disable, rotate or delete it (a leaked admin token cannot lock the other
/// administrators out, nor keep itself alive by rotating).
fn operator_managed(c: &Versioned<Client>) -> Result<(), AdminError> {
    if c.value.metadata.scopes().contains(ADMIN_SCOPE) {
        return Err(AdminError::Operator);
    }
    Ok(())
}

/// Fields of a client body that only the admin sets.
const ADMIN_ONLY: [&str; 5] = [
    "first_party",
    "agent_of",
    "disabled",
    "authorized_users",
    "resource_server_for",
];
/// Fields the server sets; a body may not.
const SERVER_MANAGED: [&str; 9] = [
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
async fn user_policy_field(
    app: &App,
    tenant: &str,
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
        if user(app, tenant, u).await.is_err() {
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
fn resource_server_field(obj: &Map<String, Value>) -> Result<Option<Vec<String>>, AdminError> {
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

fn bool_field(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, AdminError> {
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
    tenant: &str,
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

/// Why a bearer token may not call the admin API (or open the console).
pub enum Refused {
    /// Not a live access token of ours (401 `invalid_token`).
    Invalid,
    /// Live, but not an admin's (403 `insufficient_scope`).
    Forbidden,
    /// The store or the key service failed (503).
    Backend(OAuthError),
}

/// The administrator a bearer token speaks for ([`crate::domain::admin::admin_of`] on the
/// token as `tokens::live_claims` reads it, role and grant fresh on every use). Its `tenant` is
/// the only tenant it touches.
pub async fn caller(app: &App, token: &str) -> Result<crate::domain::admin::Admin, Refused> {
    use crate::domain::admin::{NotAdmin, admin_of};
    let live = match crate::service::tokens::live_claims(app, token, None).await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(Refused::Invalid),
        Err(e) => return Err(Refused::Backend(e)),
    };
    admin_of(
        &live.claims,
        &live.client,
        live.user.as_ref(),
        live.grant.as_ref(),
        &crate::service::tokens::admin_audience(app),
    )
    .map_err(|e| match e {
        NotAdmin::Stale => Refused::Invalid,
        NotAdmin::Forbidden => Refused::Forbidden,
    })
}

/// Change a client (RFC 7396 merge patch over its metadata, plus `first_party` and `disabled`).
/// The result is validated as a registration of the client's kind; it may not add
/// `bulwark:admin`, change how the client authenticates, or move it to another app. Adding a
/// redirect URI moves the consent epoch (users consent again); disabling it ends its grants,
/// consents and access tokens, as deleting does.
pub async fn patch_client(
    app: &App,
    tenant: &str,
    client_id: &str,
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
    let new = validate_metadata(&Value::Object(view), &t, old.registrant(), app.key_hosts())?;
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
pub async fn delete_client(app: &App, tenant: &str, client_id: &str, actor: &str) -> Result<(), AdminError> {
    let current = client(app, tenant, client_id).await?;
    operator_managed(&current)?;
    crate::service::clients::delete(app, current, actor).await?;
    Ok(())
}

/// Rotate a client's secret with a grace period for the previous one. `by_operator`: the CLI,
/// which may also rotate the secrets of clients holding `bulwark:admin`.
pub async fn rotate_secret(
    app: &App,
    tenant: &str,
    client_id: &str,
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

// ---- users ------------------------------------------------------------------------------------

/// One page of the tenant's users, in username order.
pub async fn list_users(
    app: &App,
    tenant: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<User>, Option<String>), AdminError> {
    let (users, next) = app.repo.users_of(tenant, cursor, limit).await?;
    Ok((users.into_iter().map(|u| u.value).collect(), next))
}

/// A user of the tenant by `sub`; another tenant's is not found.
pub async fn user(app: &App, tenant: &str, sub: &str) -> Result<Versioned<User>, AdminError> {
    app.repo
        .user(sub)
        .await?
        .filter(|u| u.value.tenant.as_str() == tenant)
        .ok_or_else(|| AdminError::NotFound("user".into()))
}

/// What a user PATCH may change (`None`: unchanged; `Some(None)`: removed).
#[derive(Default)]
pub struct UserChanges {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub admin: Option<bool>,
    pub password: Option<Secret>,
    /// Sign the user out everywhere ([`SignOut::Everywhere`]): with a new password after a
    /// suspected compromise, or on its own.
    pub sign_out_everywhere: bool,
}

fn check_name(name: &str) -> Result<(), AdminError> {
    crate::domain::user::check_display_name(name).map_err(|why| AdminError::Field("name".into(), why))
}

/// Change a user's profile, admin role or password. A password change or a change of role
/// ends the user's sessions; `sign_out_everywhere` ends them and every grant of the user
/// (with or without a new password), the user staying active.
pub async fn patch_user(
    app: &App,
    tenant: &str,
    sub: &str,
    expected_version: Option<u64>,
    changes: UserChanges,
    actor: &str,
) -> Result<Versioned<User>, AdminError> {
    if let Some(Some(n)) = &changes.name {
        check_name(n)?;
    }
    if let Some(Some(e)) = &changes.email {
        check_email(e).map_err(|why| AdminError::Field("email".into(), why))?;
    }
    let hash = match &changes.password {
        Some(p) => {
            crate::domain::user::check_new_password(p)
                .map_err(|why| AdminError::Field("password".into(), why))?;
            let p = p.clone();
            Some(crate::service::users::on_hashing_pool(move || crate::secret::hash_password(&p)).await?)
        }
        None => None,
    };
    let current = user(app, tenant, sub).await?;
    check_version(expected_version, current.version)?;
    let mut u = current.value.clone();
    if let Some(n) = changes.name {
        u.name = n.map(|s| s.trim().to_string());
    }
    if let Some(e) = changes.email {
        u.email = e;
    }
    let role_changed = changes.admin.is_some_and(|a| a != u.admin);
    if let Some(a) = changes.admin {
        u.admin = a;
    }
    let sign_out = (hash.is_some() || role_changed || changes.sign_out_everywhere)
        .then(|| SignOut::everywhere_if(changes.sign_out_everywhere));
    if let Some(h) = hash {
        u.password_hash = h;
    }
    if let Some(s) = sign_out {
        s.apply(&mut u);
    }
    let mut writes = vec![
        app.repo.replace_user_write(&u, current.version)?,
        app.repo.audit_write(tenant, AuditKind::UserUpdated, actor, sub)?,
    ];
    if changes.password.is_some() {
        writes.push(
            app.repo
                .audit_write(tenant, AuditKind::UserPasswordSet, actor, sub)?,
        );
    }
    if let Some(s) = sign_out {
        writes.extend(s.audit_write(app, tenant, actor, sub)?);
    }
    if role_changed {
        let kind = if u.admin {
            AuditKind::UserAdminGranted
        } else {
            AuditKind::UserAdminRemoved
        };
        writes.push(app.repo.audit_write(tenant, kind, actor, sub)?);
    }
    match app.repo.commit(writes).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(stale()),
        Err(e) => return Err(e.into()),
    }
    if let Some(s) = sign_out {
        s.after_commit(app, tenant, sub, actor).await?;
    }
    Ok(Versioned {
        value: u,
        version: current.version + 1,
    })
}

/// Deactivate (`active = false`) or reactivate a user. Deactivation ends their sessions and
/// grants (so their refresh tokens and access tokens) at once; reactivation brings none back.
pub async fn set_active(
    app: &App,
    tenant: &str,
    sub: &str,
    active: bool,
    actor: &str,
) -> Result<User, AdminError> {
    let current = user(app, tenant, sub).await?;
    let name = current.value.username.clone();
    if active {
        crate::service::users::reactivate(app, tenant, &name, actor).await
    } else {
        crate::service::users::deactivate_by(app, tenant, &name, actor).await
    }
}

/// Delete a user: deactivated first (their sessions and grants end), then their consents and
/// agent delegations, then the user and their username (free for a new user, who gets a new
/// `sub`).
pub async fn delete_user(app: &App, tenant: &str, sub: &str, actor: &str) -> Result<(), AdminError> {
    let u = user(app, tenant, sub).await?;
    if u.value.active {
        set_active(app, tenant, sub, false, actor).await?;
    }
    crate::service::users::end_consents(app, tenant, sub).await?;
    // Their links to identity providers go too (the subject may be linked to someone else).
    for l in app.repo.links_of(sub).await? {
        app.repo.commit(vec![app.repo.delete_link_write(&l)]).await?;
    }
    for gid in app.repo.groups_of_user(sub).await? {
        let mut writes = app.repo.remove_member_writes(&gid, sub).to_vec();
        writes.push(app.repo.audit_write_detail(
            tenant,
            AuditKind::GroupMemberRemoved,
            actor,
            &gid,
            Some(format!("user={sub}")),
        )?);
        app.repo.commit(writes).await?;
    }
    for _ in 0..5 {
        let current = user(app, tenant, sub).await?;
        let mut writes = app
            .repo
            .delete_user_writes(&current.value, current.version)
            .to_vec();
        writes.push(app.repo.audit_write(tenant, AuditKind::UserDeleted, actor, sub)?);
        match app.repo.commit(writes).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::OAuth(OAuthError::unavailable()))
}

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
}

pub async fn tenant(app: &App, tenant: &str) -> Result<Versioned<Tenant>, AdminError> {
    app.repo
        .tenant(tenant)
        .await?
        .ok_or_else(|| AdminError::NotFound("tenant".into()))
}

/// Change the tenant's policy in one conditional write, with one audit event naming what changed.
pub async fn patch_policy(
    app: &App,
    tenant_id: &str,
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
                    if !document && client(app, tenant_id, id).await.is_err() {
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
    tenant_id: &str,
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
pub async fn delete_scope(app: &App, tenant_id: &str, name: &str, actor: &str) -> Result<(), AdminError> {
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
    tenant: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<(String, InitialAccessToken)>, Option<String>), AdminError> {
    Ok(app.repo.iats_of(tenant, cursor, limit).await?)
}

/// Delete (revoke) an initial access token of the tenant.
pub async fn delete_iat(app: &App, tenant: &str, id: &str, actor: &str) -> Result<(), AdminError> {
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
    tenant_id: &str,
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
    tenant_id: &str,
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

// ---- groups -----------------------------------------------------------------------------------

pub use crate::store::repo_users::{Group, Membership};

fn check_group_name(name: &str) -> Result<String, AdminError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || !crate::domain::client::is_displayable(n) {
        return Err(AdminError::Field(
            "name".into(),
            "a group name is 1 to 100 printable characters".into(),
        ));
    }
    Ok(n.to_string())
}

pub async fn list_groups(
    app: &App,
    tenant: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Group>, Option<String>), AdminError> {
    Ok(app.repo.groups_of(tenant, cursor, limit).await?)
}

/// A group of the tenant; another tenant's is not found.
pub async fn group(app: &App, tenant: &str, gid: &str) -> Result<Versioned<Group>, AdminError> {
    app.repo
        .group(gid)
        .await?
        .filter(|g| g.value.tenant == tenant)
        .ok_or_else(|| AdminError::NotFound("group".into()))
}

pub async fn create_group(app: &App, tenant: &str, name: &str, actor: &str) -> Result<Group, AdminError> {
    let g = Group {
        id: crate::secret::random_id(12),
        tenant: tenant.to_string(),
        name: check_group_name(name)?,
        created_at: app.now(),
    };
    app.repo
        .commit(vec![
            app.repo.create_group_write(&g)?,
            app.repo
                .audit_write(tenant, AuditKind::GroupCreated, actor, &g.id)?,
        ])
        .await?;
    Ok(g)
}

/// Delete a group and its memberships. Apps whose policy named it no longer admit its former
/// members through it (at once: every use checks memberships).
pub async fn delete_group(app: &App, tenant: &str, gid: &str, actor: &str) -> Result<(), AdminError> {
    let g = group(app, tenant, gid).await?;
    app.repo
        .commit(vec![
            app.repo.delete_group_write(gid, g.version),
            app.repo
                .audit_write(tenant, AuditKind::GroupDeleted, actor, gid)?,
        ])
        .await
        .map_err(|e| match e {
            StoreError::Conflict => AdminError::Stale,
            e => e.into(),
        })?;
    loop {
        let (members, _) = app.repo.members_of(gid, None, 12).await?;
        if members.is_empty() {
            return Ok(());
        }
        let writes = members
            .iter()
            .flat_map(|m| app.repo.remove_member_writes(gid, &m.sub))
            .collect();
        app.repo.commit(writes).await?;
    }
}

pub async fn add_member(
    app: &App,
    tenant: &str,
    gid: &str,
    sub: &str,
    actor: &str,
) -> Result<Membership, AdminError> {
    group(app, tenant, gid).await?;
    user(app, tenant, sub).await?;
    let m = Membership {
        group: gid.to_string(),
        sub: sub.to_string(),
        tenant: tenant.to_string(),
        added_at: app.now(),
    };
    let mut writes: Vec<_> = app.repo.add_member_writes(&m)?.into();
    writes.push(app.repo.audit_write_detail(
        tenant,
        AuditKind::GroupMemberAdded,
        actor,
        gid,
        Some(format!("user={sub}")),
    )?);
    match app.repo.commit(writes).await {
        Ok(()) => Ok(m),
        Err(StoreError::Conflict) => Err(AdminError::NotFound("group".into())),
        Err(e) => Err(e.into()),
    }
}

/// Take a user out of a group: apps that admitted them only through it stop working for them now.
pub async fn remove_member(
    app: &App,
    tenant: &str,
    gid: &str,
    sub: &str,
    actor: &str,
) -> Result<(), AdminError> {
    group(app, tenant, gid).await?;
    if !app.repo.groups_of_user(sub).await?.iter().any(|g| g == gid) {
        return Err(AdminError::NotFound("member".into()));
    }
    let mut writes: Vec<_> = app.repo.remove_member_writes(gid, sub).into();
    writes.push(app.repo.audit_write_detail(
        tenant,
        AuditKind::GroupMemberRemoved,
        actor,
        gid,
        Some(format!("user={sub}")),
    )?);
    app.repo.commit(writes).await?;
    Ok(())
}

pub async fn members(
    app: &App,
    tenant: &str,
    gid: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Membership>, Option<String>), AdminError> {
    group(app, tenant, gid).await?;
    Ok(app.repo.members_of(gid, cursor, limit).await?)
}

// ---- audit ------------------------------------------------------------------------------------

/// Which audit events to list.
#[derive(Default, Debug)]
pub struct AuditFilter {
    /// An exact kind (`client.created`) or a family (`client`, matching `client.*`).
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEvent) -> bool {
        let kind_ok = self.kind.as_deref().is_none_or(|k| {
            e.kind == k
                || (e.kind.len() > k.len() && e.kind.starts_with(k) && e.kind.as_bytes()[k.len()] == b'.')
        });
        kind_ok
            && self.subject.as_deref().is_none_or(|s| e.subject == s)
            && self.until.is_none_or(|u| e.at <= u)
    }
}

/// Events read at most per request while filtering (the page may come back short, with a cursor).
const AUDIT_SCAN: usize = 2000;
/// Events read per store query while filtering.
const AUDIT_PAGE: usize = 200;

/// Newest first: up to `limit` events that match, and a cursor if there may be more. Reads the
/// store in pages of `AUDIT_PAGE` (a rare kind costs at most `AUDIT_SCAN / AUDIT_PAGE`
/// queries per request) and, when it stops in the middle of a page, returns the cursor right
/// after the last event it returned.
pub async fn audit(
    app: &App,
    tenant: &str,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<AuditEvent>, Option<String>), AdminError> {
    let mut out = Vec::with_capacity(limit);
    let mut cursor = cursor.map(str::to_string);
    let mut scanned = 0;
    loop {
        let (page, next) = app
            .repo
            .audit_events_with_cursors(tenant, cursor.as_deref(), AUDIT_PAGE, true)
            .await?;
        scanned += page.len();
        let count = page.len();
        for (i, (e, after)) in page.into_iter().enumerate() {
            if filter.since.is_some_and(|s| e.at < s) {
                return Ok((out, None));
            }
            if filter.matches(&e) {
                out.push(e);
                if out.len() >= limit {
                    let more = if i + 1 < count { Some(after) } else { next };
                    return Ok((out, more));
                }
            }
        }
        match next {
            None => return Ok((out, None)),
            Some(n) if scanned >= AUDIT_SCAN => return Ok((out, Some(n))),
            Some(n) => cursor = Some(n),
        }
    }
}
