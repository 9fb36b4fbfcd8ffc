//! Client registration and management: RFC 7591 (DCR), RFC 7592 (read, update, delete with the
//! registration access token) and the operator's `bulwark client ...` commands.

use crate::domain::audit::AuditKind;
use crate::domain::client_update::{Changed, Changer, change_metadata};
use crate::domain::id::ClientId;
use crate::domain::tenant::TenantId;
use serde_json::{Map, Value, json};

use crate::domain::client::{Client, Origin, validate_metadata};
use crate::domain::grant_type::{GrantType, Registrant};
use crate::domain::introspection::check_resource_server_for;
use crate::domain::tenant::{DcrPolicy, Tenant};
use crate::error::{ErrorCode, OAuthError};
use crate::secret::{Secret, SecretHash, random_id};
use crate::service::App;
use crate::store::repo::Versioned;
use crate::store::{StoreError, Write};

/// A client just created: the only moment its secrets exist in the clear.
pub struct Registered {
    pub client: Client,
    /// `None` for a public client.
    pub secret: Option<Secret>,
    /// The RFC 7592 registration access token: for clients registered through DCR only.
    pub registration_token: Option<Secret>,
}

/// The RFC 7591 §3.2.1 / RFC 7592 §3 response body. `registration_client_uri` appears only
/// for clients that manage themselves through RFC 7592.
pub fn registration_response(
    app: &App,
    c: &Client,
    secret: Option<&Secret>,
    reg_token: Option<&Secret>,
) -> Value {
    let mut body: Map<String, Value> = c.metadata.to_json();
    body.insert("client_id".into(), json!(c.client_id));
    body.insert("client_id_issued_at".into(), json!(c.issued_at));
    if let Some(s) = secret {
        body.insert("client_secret".into(), json!(s.expose()));
    }
    if c.secret_hash.is_some() {
        body.insert("client_secret_expires_at".into(), json!(c.secret_expires_at));
    }
    if let Some(t) = reg_token {
        body.insert("registration_access_token".into(), json!(t.expose()));
    }
    if let Some(of) = &c.agent_of {
        body.insert("agent_of".into(), json!(of));
    }
    if !c.resource_server_for.is_empty() {
        body.insert("resource_server_for".into(), json!(c.resource_server_for));
    }
    if c.self_managed() {
        body.insert(
            "registration_client_uri".into(),
            json!(app.config.endpoint(&format!("/oauth2/register/{}", c.client_id))),
        );
    }
    Value::Object(body)
}

fn new_client(
    app: &App,
    tenant: &Tenant,
    metadata: &Value,
    origin: Origin,
    registrant: Registrant,
) -> Result<Registered, OAuthError> {
    let metadata = validate_metadata(metadata, tenant, registrant, app.key_hosts())?;
    // Only clients that authenticate with a shared secret get one (not public clients, not
    // private_key_jwt clients, which prove themselves with their keys).
    let secret = metadata.auth_method().uses_secret().then(crate::secret::generate);
    // Operator-made clients get no registration access token: they may hold restricted scopes
    // and first-party status, which only the operator may change (RFC 7592 is for clients that
    // registered themselves).
    let registration_token = (origin == Origin::Dcr).then(crate::secret::generate);
    let now = app.now();
    let client = Client {
        secret_hash: secret.as_ref().map(|s| s.hash().to_hex()),
        registration_token_hash: registration_token.as_ref().map(|t| t.hash().to_hex()),
        ..Client::new(random_id(16).into(), tenant.id.clone(), metadata, origin, now)
    };
    Ok(Registered {
        client,
        secret,
        registration_token,
    })
}

/// Registrations without an initial access token, per tenant per minute.
pub const OPEN_REGISTRATIONS_PER_MINUTE: u64 = 30;

/// `POST /oauth2/register`: the tenant's DCR policy decides whether an initial access token is
/// needed. The IAT use and the new client land in one transaction.
pub async fn register_dynamic(
    app: &App,
    tenant_id: &TenantId,
    initial_access_token: Option<&Secret>,
    metadata: &Value,
) -> Result<Registered, OAuthError> {
    let tenant = app
        .repo
        .tenant(tenant_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("unknown tenant"))?
        .value;
    let mut writes: Vec<Write> = Vec::with_capacity(3);
    match tenant.dcr_policy {
        DcrPolicy::Closed => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "this tenant does not allow dynamic client registration",
            ));
        }
        DcrPolicy::Open if initial_access_token.is_none() => {}
        DcrPolicy::Open | DcrPolicy::Token => {
            let token = initial_access_token
                .ok_or_else(|| OAuthError::invalid_token("an initial access token is required"))?;
            let hash = token.hash().to_hex();
            let bad = || OAuthError::invalid_token("the initial access token is invalid, expired or used up");
            let Versioned { value: iat, version } = app.repo.iat(&hash).await?.ok_or_else(bad)?;
            // The store found it by its hash; compare in constant time all the same.
            let matches = SecretHash::from_hex(&hash).is_some_and(|h| h.verify(token));
            if !matches || iat.tenant != tenant.id || iat.expires_at <= app.now() {
                return Err(bad());
            }
            if iat.max_uses != 0 && iat.uses >= iat.max_uses {
                return Err(bad());
            }
            writes.push(app.repo.consume_iat_write(&hash, &iat, version)?);
        }
    }
    let registrant = match initial_access_token {
        Some(_) => Registrant::InitialAccessToken,
        None => Registrant::Anonymous,
    };
    let mut reg = new_client(app, &tenant, metadata, Origin::Dcr, registrant)?;
    if registrant == Registrant::Anonymous {
        // Anyone may register: only clients that hold no secret of ours (public, or
        // authenticating with their own keys), and at a bounded rate per tenant.
        if reg.client.metadata.auth_method().uses_secret() {
            return Err(OAuthError::invalid_client_metadata(
                "an open registration is a public client (token_endpoint_auth_method none) or a private_key_jwt client; a client with a secret needs an initial access token",
            ));
        }
        if !app
            .repo
            .take_from_window(
                &format!("dcr-open#{}", tenant.id.as_str()),
                OPEN_REGISTRATIONS_PER_MINUTE,
                60,
            )
            .await?
        {
            tracing::warn!(tenant = %tenant.id.as_str(), "open registration rate limit reached");
            app.metrics.record(crate::metrics::Event::RateLimited {
                tenant: tenant.id.as_str(),
            });
            return Err(OAuthError::too_many_requests(
                "too many registrations for this tenant; try again in a minute",
            ));
        }
        // Registered by anyone: it expires once unused for a while, so that anonymous
        // registrations cannot pile up. Listed, in the same transaction, by when to look again.
        reg.client.open_registration = true;
        if let Some(due) = crate::domain::client::open_registration_expires_at(&reg.client, None) {
            writes.push(
                app.repo
                    .open_registration_write(&reg.client.client_id, tenant.id.as_str(), due)?,
            );
        }
    }
    writes.push(app.repo.create_client_write(&reg.client)?);
    writes.push(app.repo.audit_write(
        tenant.id.as_str(),
        AuditKind::ClientCreated,
        "dcr",
        &reg.client.client_id,
    )?);
    match app.repo.commit(writes).await {
        Ok(()) => {
            app.metrics.record(crate::metrics::Event::Registered {
                tenant: tenant.id.as_str(),
            });
            Ok(reg)
        }
        // The IAT was used concurrently (its version moved): treat as used up.
        Err(StoreError::Conflict) => Err(OAuthError::invalid_token(
            "the initial access token is invalid, expired or used up",
        )),
        Err(e) => Err(e.into()),
    }
}

/// What only the operator (or tenant admin) may set on a client.
#[derive(Clone, Debug, Default)]
pub struct AdminFields<'a> {
    /// Pre-approved: its users are not asked for consent.
    pub first_party: bool,
    /// The app this client is an agent of (RFC 8693): a client of the same tenant that is not
    /// itself an agent; the new client must be registered for token exchange.
    pub agent_of: Option<&'a str>,
    /// Which users may authorize it (`None`: everyone in the tenant).
    pub user_policy: Option<crate::domain::access::UserPolicy>,
    /// The tenant's resources it is the resource server for (it may introspect others' tokens
    /// for them: `domain::introspection`).
    pub resource_server_for: Vec<String>,
}

/// `bulwark client create`: the operator registers a client with the same validation (but may
/// give it restricted scopes), and may mark it first-party (its users are not asked for
/// consent) or make it an agent of an app, which DCR never can. It gets no registration access
/// token.
pub async fn create_by_admin(
    app: &App,
    tenant_id: &TenantId,
    metadata: &Value,
    admin: AdminFields<'_>,
) -> Result<Registered, OAuthError> {
    create_admin_made(app, tenant_id, metadata, admin, Origin::Admin, "cli").await
}

/// [`create_by_admin`] for the operator (`Origin::Admin`) or the tenant admin API
/// (`Origin::Api`), recording `actor` in the audit trail.
pub async fn create_admin_made(
    app: &App,
    tenant_id: &TenantId,
    metadata: &Value,
    admin: AdminFields<'_>,
    origin: Origin,
    actor: &str,
) -> Result<Registered, OAuthError> {
    let tenant = app
        .repo
        .tenant(tenant_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_request("unknown tenant"))?
        .value;
    let registrant = match origin {
        Origin::Api => Registrant::TenantAdmin,
        Origin::Admin | Origin::Console => Registrant::Operator,
        Origin::Dcr | Origin::Cimd => return Err(OAuthError::server_error()),
    };
    let mut reg = new_client(app, &tenant, metadata, origin, registrant)?;
    reg.client.first_party = admin.first_party;
    reg.client.user_policy = admin.user_policy.clone();
    reg.client.resource_server_for =
        check_resource_server_for(&reg.client, &tenant, &admin.resource_server_for)
            .map_err(|why| OAuthError::invalid_client_metadata(format!("resource_server_for: {why}")))?;
    let mut writes = vec![
        app.repo.create_client_write(&reg.client)?,
        app.repo.audit_write(
            tenant.id.as_str(),
            AuditKind::ClientCreated,
            actor,
            &reg.client.client_id,
        )?,
    ];
    if let Some(of) = admin.agent_of {
        let bad = |why: String| OAuthError::invalid_client_metadata(format!("agent_of (--agent-of): {why}"));
        let target = app
            .repo
            .client(of)
            .await?
            .filter(|c| c.value.tenant == tenant.id)
            .ok_or_else(|| {
                bad(format!(
                    "no client {} in tenant {}",
                    printable(of),
                    tenant.id.as_str()
                ))
            })?;
        if target.value.agent_of.is_some() {
            return Err(bad(format!("{of} is itself an agent; name the app it acts for")));
        }
        if target
            .value
            .metadata
            .scopes()
            .contains(crate::domain::client::ADMIN_SCOPE)
        {
            return Err(bad(format!(
                "{of} is an administration client, not an app users authorize"
            )));
        }
        if !reg.client.metadata.allows_grant(GrantType::TokenExchange) {
            return Err(bad(format!(
                "an agent must be registered for the {} grant",
                GrantType::TokenExchange.as_str()
            )));
        }
        reg.client.agent_of = Some(of.into());
        writes[0] = app.repo.create_client_write(&reg.client)?;
        writes.push(app.repo.agent_pointer_write(of, &reg.client.client_id)?);
        // The users who let the app's agents act agreed to the agents they were shown: a new
        // agent moves the app's consent epoch, so they are asked again (and the new agent
        // cannot act for anyone until then — an exchange needs a consent of this epoch).
        let mut app_client = target.value.clone();
        app_client.consent_epoch += 1;
        app_client.updated_at = app.now();
        writes.push(app.repo.replace_client_write(&app_client, target.version)?);
        writes.push(
            app.repo
                .audit_write(tenant.id.as_str(), AuditKind::ConsentReset, actor, of)?,
        );
    }
    match app.repo.commit(writes).await {
        Ok(()) => Ok(reg),
        Err(StoreError::Conflict) if admin.agent_of.is_some() => Err(OAuthError::invalid_client_metadata(
            "agent_of (--agent-of): the app changed or was deleted meanwhile; try again",
        )),
        Err(e) => Err(e.into()),
    }
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

/// RFC 7592 §2: the client, if `token` is its registration access token. Unknown client, a
/// client that does not manage itself (operator-made) and a wrong token are the same answer
/// (401 `invalid_token`), taking the same time.
pub async fn authorize_management(
    app: &App,
    client_id: &ClientId,
    token: Option<&Secret>,
) -> Result<Versioned<Client>, OAuthError> {
    let denied = || OAuthError::invalid_token("the registration access token is invalid");
    let token = token.ok_or_else(denied)?;
    let current = app.repo.client(client_id).await?;
    let hash = current
        .as_ref()
        .filter(|c| c.value.self_managed() && app.config.serves_tenant(c.value.tenant.as_str()))
        .and_then(|c| c.value.registration_token_hash.as_deref())
        .and_then(SecretHash::from_hex);
    let Some(hash) = hash else {
        crate::secret::verify_against_nothing(token);
        return Err(denied());
    };
    match current {
        Some(c) if hash.verify(token) => Ok(c),
        _ => Err(denied()),
    }
}

/// RFC 7592 §2.2: replace the client's metadata. The body must name the client; a
/// `client_secret` in it, if any, must be the current one. The update is judged as a DCR
/// registration would be (no restricted scopes), and may keep or narrow the client's scopes and
/// grant types but never add to them. Adding a redirect URI moves the client's consent epoch, so
/// the consents given so far no longer count (its users are asked again before a code goes to
/// the new place); a first-party client's redirect URIs are the tenant admin's to change.
pub async fn update(app: &App, current: Versioned<Client>, body: &Value) -> Result<Client, OAuthError> {
    let obj = body
        .as_object()
        .ok_or_else(|| OAuthError::invalid_client_metadata("the body must be a JSON object"))?;
    if obj.get("client_id").and_then(Value::as_str) != Some(current.value.client_id.as_str()) {
        return Err(OAuthError::invalid_request(
            "the body's client_id must match the client",
        ));
    }
    if let Some(s) = obj.get("client_secret") {
        let ok = s.as_str().is_some_and(|s| {
            current
                .value
                .secret_hash
                .as_deref()
                .and_then(SecretHash::from_hex)
                .is_some_and(|h| h.verify(&Secret::new(s)))
        });
        if !ok {
            return Err(OAuthError::invalid_request("client_secret does not match"));
        }
    }
    let mut metadata = obj.clone();
    for server_field in [
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
    ] {
        metadata.remove(server_field);
    }
    let tenant = app
        .repo
        .tenant(current.value.tenant.as_str())
        .await?
        .ok_or_else(OAuthError::server_error)?
        .value;
    let old = &current.value;
    // Judged as a registration by whoever registered it: an anonymous registration stays
    // within what anyone may register.
    let new = crate::domain::client::validate_metadata_change(
        &Value::Object(metadata),
        &tenant,
        old.registrant(),
        app.key_hosts(),
        &old.metadata,
    )?;
    let Changed {
        client,
        redirect_added,
    } = change_metadata(old, new, Changer::TheClient, app.now())?;
    let mut writes = vec![
        app.repo.replace_client_write(&client, current.version)?,
        app.repo.audit_write(
            tenant.id.as_str(),
            AuditKind::ClientUpdated,
            &client.client_id,
            &client.client_id,
        )?,
    ];
    if redirect_added {
        writes.push(app.repo.audit_write(
            tenant.id.as_str(),
            AuditKind::ConsentReset,
            &client.client_id,
            &client.client_id,
        )?);
    }
    match app.repo.commit(writes).await {
        Ok(()) => Ok(client),
        Err(StoreError::Conflict) => Err(OAuthError::invalid_request(
            "the client changed concurrently; retry",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Issue a new secret for a client that authenticates with one; the previous secret keeps
/// working for `grace_seconds` (0: it stops at once). The new secret exists in the clear only in
/// the answer. `Conflict` if the client changed meanwhile.
pub async fn rotate_secret(
    app: &App,
    current: Versioned<Client>,
    grace_seconds: i64,
    actor: &str,
) -> Result<(Secret, Client), OAuthError> {
    if !(0..=MAX_SECRET_GRACE).contains(&grace_seconds) {
        return Err(OAuthError::invalid_request(format!(
            "grace_seconds is 0 to {MAX_SECRET_GRACE} (7 days)"
        )));
    }
    let mut c = current.value;
    if !c.metadata.auth_method().uses_secret() || c.secret_hash.is_none() {
        return Err(OAuthError::invalid_request(
            "this client has no secret (a public or private_key_jwt client)",
        ));
    }
    let now = app.now();
    let secret = crate::secret::generate();
    if grace_seconds > 0 {
        c.previous_secret_hash = c.secret_hash.take();
        c.previous_secret_until = now + grace_seconds;
    } else {
        c.previous_secret_hash = None;
        c.previous_secret_until = 0;
    }
    c.secret_hash = Some(secret.hash().to_hex());
    c.updated_at = now;
    let writes = vec![
        app.repo.replace_client_write(&c, current.version)?,
        app.repo.audit_write_detail(
            c.tenant.as_str(),
            AuditKind::ClientSecretRotated,
            actor,
            &c.client_id,
            Some(format!("grace_seconds={grace_seconds}")),
        )?,
    ];
    app.repo.commit(writes).await?;
    Ok((secret, c))
}

/// The longest grace period of a rotated secret: 7 days.
pub const MAX_SECRET_GRACE: i64 = 7 * 86_400;

/// Delete a client (RFC 7592 §2.3 or `bulwark client delete`) and everything that hangs off it:
/// its secret goes with it; then its grants (so its refresh tokens, and its access tokens at
/// introspection and userinfo) and its users' consents end. The client goes first, so nothing
/// new can be issued to it meanwhile (code redemption and refresh check it in their
/// transactions); if the sweep after it fails, what is left can no longer be used (every use
/// checks the client) and expires with its TTL.
pub async fn delete(app: &App, current: Versioned<Client>, actor: &str) -> Result<(), OAuthError> {
    let mut current = current;
    let client_id = current.value.client_id.clone();
    let tenant = current.value.tenant.clone();
    let mut deleted = false;
    for _ in 0..5 {
        let writes = delete_writes(app, &current, AuditKind::ClientDeleted, actor, None)?;
        let c = &current.value;
        match app.repo.commit(writes).await {
            Ok(()) => {
                deleted = true;
                break;
            }
            // Changed meanwhile: delete what is there now, if anything.
            Err(StoreError::Conflict) => match app.repo.client_any_in(c.tenant.as_str(), &c.client_id).await?
            {
                Some(newer) => current = newer,
                None => {
                    deleted = true;
                    break;
                }
            },
            Err(e) => return Err(e.into()),
        }
    }
    if !deleted {
        return Err(OAuthError::unavailable());
    }
    end_what_hangs_off(app, &tenant, &client_id).await
}

/// The writes that delete the client read as `current` (at its version), with the audit event
/// `kind` and what lists it (an app's agent list).
pub(crate) fn delete_writes(
    app: &App,
    current: &Versioned<Client>,
    kind: AuditKind,
    actor: &str,
    detail: Option<String>,
) -> Result<Vec<Write>, OAuthError> {
    let c = &current.value;
    let mut writes = vec![
        app.repo.delete_client_write(c, current.version),
        app.repo
            .audit_write_detail(c.tenant.as_str(), kind, actor, &c.client_id, detail)?,
    ];
    if let Some(of) = &c.agent_of {
        writes.push(app.repo.delete_agent_pointer_write(of, &c.client_id));
    }
    Ok(writes)
}

/// The cascade after a client is gone: its grants (so its refresh tokens, and its access
/// tokens at introspection and userinfo) and its users' consents end.
pub(crate) async fn end_what_hangs_off(
    app: &App,
    tenant: &TenantId,
    client_id: &ClientId,
) -> Result<(), OAuthError> {
    let grants = app.repo.grants_of_client(tenant, client_id).await?;
    crate::service::grants::revoke_grants(app, &grants, None).await?;
    end_consents(app, tenant, client_id).await
}

/// End every consent given to a client (and its pointer), a bounded transaction at a time.
pub(crate) async fn end_consents(
    app: &App,
    tenant: &TenantId,
    client_id: &ClientId,
) -> Result<(), OAuthError> {
    let consents = app.repo.consents_of_client(tenant, client_id).await?;
    for chunk in consents.chunks(12) {
        let mut writes = Vec::with_capacity(chunk.len() * 2);
        for c in chunk {
            writes.extend(app.repo.delete_consent_writes(&c.tenant, &c.sub, client_id));
        }
        app.repo.commit(writes).await?;
    }
    Ok(())
}

/// A client as the operator sees it (no secrets, no hashes).
pub fn describe(c: &Client) -> Value {
    let mut body = c.metadata.to_json();
    body.insert("client_id".into(), json!(c.client_id));
    body.insert("tenant".into(), json!(c.tenant.as_str()));
    body.insert("client_id_issued_at".into(), json!(c.issued_at));
    body.insert("origin".into(), json!(c.origin));
    if c.open_registration {
        body.insert("open_registration".into(), json!(true));
    }
    body.insert("first_party".into(), json!(c.first_party));
    body.insert("disabled".into(), json!(c.disabled));
    if let Some(of) = &c.agent_of {
        body.insert("agent_of".into(), json!(of));
    }
    if !c.resource_server_for.is_empty() {
        body.insert("resource_server_for".into(), json!(c.resource_server_for));
    }
    Value::Object(body)
}
