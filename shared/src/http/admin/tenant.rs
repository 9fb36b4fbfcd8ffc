//! The tenant's own settings: policy (lifetimes, DCR, the app allowlist), the scope catalog,
//! initial access tokens, resources.

use super::*;
use crate::domain::cimd::CimdPolicy;

/// The tenant's policy. Lifetimes in seconds; `null`: the deployment's default.
#[derive(Debug, Serialize, ToSchema)]
pub struct Policy {
    /// Dynamic client registration: `open`, `token` (needs an initial access token) or `closed`.
    pub dcr: DcrSetting,
    pub access_token_ttl: Option<i64>,
    pub refresh_idle_ttl: Option<i64>,
    pub refresh_absolute_ttl: Option<i64>,
    pub session_ttl: Option<i64>,
    /// Whether the deprecated password grant is allowed.
    pub password_grant: bool,
    /// When a list: users may authorize only these apps (client ids), and their grants to any
    /// other app stop working. `null`: every app of the tenant.
    pub app_allowlist: Option<Vec<String>>,
    /// Client ID Metadata Documents (a client id that is an https URL): `"deny"` (the default),
    /// `"allow"` (any host), or the list of hosts whose documents are accepted. Only at the
    /// tenant's own issuer (`/t/{tenant}`).
    pub cimd: CimdSetting,
    /// How far ahead (seconds) a `private_key_jwt` client assertion's `exp` may be; `null`:
    /// 3600 (an hour, as common client libraries sign them).
    pub client_assertion_max_lifetime: Option<i64>,
    /// Every DPoP proof at the token endpoint must carry a nonce this server issued (RFC 9449
    /// §8; `use_dpop_nonce` with a `DPoP-Nonce` header otherwise).
    pub dpop_nonce_required: bool,
    /// Whether every client must send its authorization requests by the pushed authorization
    /// request endpoint (RFC 9126; then a plain authorization request is refused).
    pub require_pushed_authorization_requests: bool,
}

/// The Client ID Metadata Document policy: a mode, or the accepted hosts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged, expecting = "\"deny\", \"allow\" or a list of host names")]
pub enum CimdSetting {
    Mode(CimdMode),
    Hosts(Vec<String>),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CimdMode {
    Deny,
    Allow,
}

impl From<&CimdPolicy> for CimdSetting {
    fn from(p: &CimdPolicy) -> Self {
        match p {
            CimdPolicy::Deny => CimdSetting::Mode(CimdMode::Deny),
            CimdPolicy::Allow => CimdSetting::Mode(CimdMode::Allow),
            CimdPolicy::Hosts(h) => CimdSetting::Hosts(h.iter().cloned().collect()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum DcrSetting {
    Open,
    Token,
    Closed,
}

impl From<&Tenant> for Policy {
    fn from(t: &Tenant) -> Self {
        Self {
            dcr: match t.dcr_policy {
                DcrPolicy::Open => DcrSetting::Open,
                DcrPolicy::Token => DcrSetting::Token,
                DcrPolicy::Closed => DcrSetting::Closed,
            },
            access_token_ttl: t.access_token_ttl,
            refresh_idle_ttl: t.refresh_idle_ttl,
            refresh_absolute_ttl: t.refresh_absolute_ttl,
            session_ttl: t.session_ttl,
            password_grant: t.password_grant,
            app_allowlist: t.app_allowlist.as_ref().map(|l| l.iter().cloned().collect()),
            cimd: CimdSetting::from(&t.cimd),
            client_assertion_max_lifetime: t.client_assertion_max_lifetime,
            dpop_nonce_required: t.dpop_nonce_required,
            require_pushed_authorization_requests: t.require_pushed_authorization_requests,
        }
    }
}

/// A change to the policy (JSON merge patch: absent leaves a setting as it is; a lifetime
/// `null`: back to the default; `dcr` or `password_grant` `null`: unchanged).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    pub dcr: Option<DcrSetting>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(minimum = 60)]
    pub access_token_ttl: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(minimum = 300, maximum = 31622400)]
    pub refresh_idle_ttl: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(minimum = 300, maximum = 63244800)]
    pub refresh_absolute_ttl: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch")]
    #[schema(minimum = 300, maximum = 2592000)]
    pub session_ttl: Option<Option<i64>>,
    pub password_grant: Option<bool>,
    /// `null` turns the allowlist off; a list of client ids turns it on.
    #[serde(default, deserialize_with = "patch")]
    pub app_allowlist: Option<Option<Vec<String>>>,
    /// `"deny"`, `"allow"`, or a list of host names (never `null`).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = CimdSetting, required = false)]
    pub cimd: Option<CimdSetting>,
    /// 60 to 3600 seconds; `null`: back to 3600.
    #[serde(default, deserialize_with = "patch")]
    #[schema(minimum = 60, maximum = 3600)]
    pub client_assertion_max_lifetime: Option<Option<i64>>,
    /// `null`: unchanged.
    pub dpop_nonce_required: Option<bool>,
    /// `true`: every client must push its authorization requests (RFC 9126); `null`: unchanged.
    pub require_pushed_authorization_requests: Option<bool>,
}

impl From<DcrSetting> for DcrPolicy {
    fn from(s: DcrSetting) -> Self {
        match s {
            DcrSetting::Open => DcrPolicy::Open,
            DcrSetting::Token => DcrPolicy::Token,
            DcrSetting::Closed => DcrPolicy::Closed,
        }
    }
}

impl TryFrom<CimdSetting> for CimdPolicy {
    type Error = String;
    fn try_from(s: CimdSetting) -> Result<Self, String> {
        match s {
            CimdSetting::Mode(CimdMode::Deny) => Ok(CimdPolicy::Deny),
            CimdSetting::Mode(CimdMode::Allow) => Ok(CimdPolicy::Allow),
            CimdSetting::Hosts(hosts) => CimdPolicy::hosts(hosts),
        }
    }
}

#[utoipa::path(get, path = "/admin/v1/policy", tag = "policy",
    responses((status = 200, body = Policy, headers(("ETag" = String))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn get_policy(StateX(app): StateX<State>, admin: Admin) -> Answer {
    let t = svc::tenant(&app, &admin.tenant).await?;
    Ok(json_answer(
        StatusCode::OK,
        &Policy::from(&t.value),
        Some(t.version),
    ))
}

#[utoipa::path(patch, path = "/admin/v1/policy", tag = "policy",
    params(("If-Match" = Option<String>, Header, description = "the ETag of the policy as read")),
    request_body = PolicyPatch,
    responses((status = 200, body = Policy, headers(("ETag" = String))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn patch_policy(
    StateX(app): StateX<State>,
    admin: Admin,
    headers: HeaderMap,
    BodyOf(body): BodyOf<PolicyPatch>,
) -> Answer {
    let expected = if_match(&headers)?;
    let changes = PolicyChanges {
        dcr: body.dcr.map(DcrPolicy::from),
        access_token_ttl: body.access_token_ttl,
        refresh_idle_ttl: body.refresh_idle_ttl,
        refresh_absolute_ttl: body.refresh_absolute_ttl,
        session_ttl: body.session_ttl,
        password_grant: body.password_grant,
        client_assertion_max_lifetime: body.client_assertion_max_lifetime,
        dpop_nonce_required: body.dpop_nonce_required,
        require_pushed_authorization_requests: body.require_pushed_authorization_requests,
        cimd: match body.cimd {
            None => None,
            Some(c) => Some(CimdPolicy::try_from(c).map_err(|why| Problem::invalid_field("cimd", why))?),
        },
        app_allowlist: body.app_allowlist,
    };
    let t = svc::patch_policy(&app, &admin.tenant, expected, changes, &admin.actor).await?;
    Ok(json_answer(
        StatusCode::OK,
        &Policy::from(&t.value),
        Some(t.version),
    ))
}

// ---- scopes -----------------------------------------------------------------------------------

/// A scope of the tenant's catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeView {
    pub name: String,
    /// Shown to users on the consent page.
    pub description: String,
    /// Only admin-made clients may hold it (DCR clients never).
    pub restricted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeList {
    pub items: Vec<ScopeView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeInput {
    /// 1 to 300 printable characters.
    pub description: String,
    pub restricted: Option<bool>,
}

fn scope_view(t: &Tenant, name: &str) -> ScopeView {
    ScopeView {
        name: name.to_string(),
        description: t.scopes.get(name).cloned().unwrap_or_default(),
        restricted: t.restricted_scopes.contains(name),
    }
}

#[utoipa::path(get, path = "/admin/v1/scopes", tag = "scopes",
    responses((status = 200, body = ScopeList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_scopes(StateX(app): StateX<State>, admin: Admin) -> Answer {
    let t = svc::tenant(&app, &admin.tenant).await?.value;
    Ok(json_answer(
        StatusCode::OK,
        &ScopeList {
            items: t.scopes.keys().map(|n| scope_view(&t, n)).collect(),
            next_cursor: None,
        },
        None,
    ))
}

#[utoipa::path(put, path = "/admin/v1/scopes/{name}", tag = "scopes", params(("name" = String, Path)),
    request_body = ScopeInput,
    responses((status = 200, body = ScopeView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn put_scope(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(name): PathOf<String>,
    BodyOf(body): BodyOf<ScopeInput>,
) -> Answer {
    let t = svc::put_scope(
        &app,
        &admin.tenant,
        &name,
        &body.description,
        body.restricted,
        &admin.actor,
    )
    .await?;
    Ok(json_answer(StatusCode::OK, &scope_view(&t, &name), None))
}

#[utoipa::path(delete, path = "/admin/v1/scopes/{name}", tag = "scopes", params(("name" = String, Path)),
    responses((status = 204, description = "removed from the catalog; no client is issued it any more"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn delete_scope(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(name): PathOf<String>,
) -> Answer {
    svc::delete_scope(&app, &admin.tenant, &name, &admin.actor).await?;
    Ok(no_content())
}

// ---- initial access tokens ----------------------------------------------------------------------

/// An initial access token for Dynamic Client Registration (RFC 7591 §3), as listed: never the
/// token itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct IatView {
    /// The token's SHA-256 (hex): its name here.
    pub id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// 0 = unlimited.
    pub max_uses: u32,
    pub uses: u32,
    /// Registrations left (absent when unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses_left: Option<u32>,
}

impl IatView {
    fn of(id: String, i: &crate::domain::tenant::InitialAccessToken) -> Self {
        Self {
            id,
            created_at: i.created_at,
            expires_at: i.expires_at,
            max_uses: i.max_uses,
            uses: i.uses,
            uses_left: (i.max_uses > 0).then(|| i.max_uses.saturating_sub(i.uses)),
        }
    }
}

/// A new initial access token: the only answer that shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IatCreated {
    #[serde(flatten)]
    pub iat: IatView,
    pub initial_access_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IatInput {
    /// Seconds until it expires: 60 to a year (default 86400).
    #[schema(minimum = 60, maximum = 31622400)]
    pub expires_in: Option<i64>,
    /// How many registrations it allows (0 = unlimited; default 1).
    #[schema(minimum = 0)]
    pub max_uses: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IatList {
    pub items: Vec<IatView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/initial-access-tokens", tag = "registration", params(ListParams),
    responses((status = 200, body = IatList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_iats(
    StateX(app): StateX<State>,
    admin: Admin,
    QueryOf(q): QueryOf<ListParams>,
) -> Answer {
    let (limit, cursor) = q.page()?;
    let (iats, next) = svc::list_iats(&app, &admin.tenant, cursor.as_deref(), limit).await?;
    Ok(json_answer(
        StatusCode::OK,
        &IatList {
            items: iats.into_iter().map(|(id, i)| IatView::of(id, &i)).collect(),
            next_cursor: encode_cursor(next),
        },
        None,
    ))
}

#[utoipa::path(post, path = "/admin/v1/initial-access-tokens", tag = "registration", request_body = IatInput,
    responses((status = 201, body = IatCreated), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn create_iat(
    StateX(app): StateX<State>,
    admin: Admin,
    BodyOf(body): BodyOf<IatInput>,
) -> Answer {
    let expires_in = body.expires_in.unwrap_or(86_400);
    let max_uses = body.max_uses.unwrap_or(1);
    let (secret, iat) =
        crate::service::tenants::create_iat_by(&app, &admin.tenant, expires_in, max_uses, &admin.actor)
            .await
            .map_err(|e| match e {
                AdminError::Invalid(why) => {
                    Problem::invalid_field("expires_in", why.replace("--expires-in", "expires_in"))
                }
                other => other.into(),
            })?;
    Ok(json_answer(
        StatusCode::CREATED,
        &IatCreated {
            iat: IatView::of(secret.hash().to_hex(), &iat),
            initial_access_token: secret.expose().to_string(),
        },
        None,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/initial-access-tokens/{id}", tag = "registration",
    params(("id" = String, Path)),
    responses((status = 204, description = "revoked: it registers nothing more"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn delete_iat(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(id): PathOf<String>,
) -> Answer {
    svc::delete_iat(&app, &admin.tenant, &id, &admin.actor).await?;
    Ok(no_content())
}

// ---- resources --------------------------------------------------------------------------------

/// The RFC 8707 resources (token audiences) the tenant's clients may ask for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceList {
    pub items: Vec<ResourceView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResourceView {
    /// An absolute URI without a fragment.
    pub resource: String,
    /// The `aud` of a token requested without `resource` (cannot be removed).
    #[serde(default)]
    pub default: bool,
    /// The name the consent page shows for it (next to the URI), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ResourceParam {
    /// The resource to remove.
    resource: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceInput {
    /// An absolute URI without a fragment; adding one already allowed is not an error.
    pub resource: String,
    /// The name the consent page shows for it: 1 to 80 printable characters. Given again for
    /// a resource already allowed, it replaces the name; left out, the name stays as it was.
    #[schema(max_length = 80)]
    pub name: Option<String>,
}

fn resource_list(t: &Tenant) -> ResourceList {
    ResourceList {
        items: t
            .resources
            .iter()
            .map(|r| ResourceView {
                resource: r.clone(),
                default: *r == t.default_audience,
                name: t.resource_name(r).map(str::to_string),
            })
            .collect(),
        next_cursor: None,
    }
}

#[utoipa::path(get, path = "/admin/v1/resources", tag = "resources",
    responses((status = 200, body = ResourceList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_resources(StateX(app): StateX<State>, admin: Admin) -> Answer {
    let t = svc::tenant(&app, &admin.tenant).await?.value;
    Ok(json_answer(StatusCode::OK, &resource_list(&t), None))
}

#[utoipa::path(post, path = "/admin/v1/resources", tag = "resources", request_body = ResourceInput,
    responses((status = 200, body = ResourceList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn add_resource(
    StateX(app): StateX<State>,
    admin: Admin,
    BodyOf(body): BodyOf<ResourceInput>,
) -> Answer {
    let t = svc::add_resource(
        &app,
        &admin.tenant,
        &body.resource,
        body.name.as_deref(),
        &admin.actor,
    )
    .await?;
    Ok(json_answer(StatusCode::OK, &resource_list(&t), None))
}

#[utoipa::path(delete, path = "/admin/v1/resources", tag = "resources", params(ResourceParam),
    responses((status = 204, description = "no token is issued for it any more"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn remove_resource(
    StateX(app): StateX<State>,
    admin: Admin,
    QueryOf(q): QueryOf<ResourceParam>,
) -> Answer {
    svc::remove_resource(&app, &admin.tenant, &q.resource, &admin.actor).await?;
    Ok(no_content())
}

// ---- trusted issuers --------------------------------------------------------------------------

/// An identity provider the tenant trusts for the JWT bearer grant (its users are linked to
/// its subjects with the CLI's `user link`), or a workload platform whose tokens authenticate
/// `federated` clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerView {
    /// Its issuer identifier (the `iss` of its assertions).
    pub issuer: String,
    /// Where its keys are fetched (through the SSRF-guarded fetcher), if not inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Its public keys, if given inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// Its assertions are ID-JAGs, and only those are taken from it.
    pub id_jag: bool,
    /// For an ID-JAG provider serving many tenants under one issuer: the one whose ID-JAGs are
    /// taken (their `tenant` claim must be this).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp_tenant: Option<String>,
    /// Trusted for workloads: its tokens authenticate `federated` clients (and it is no user
    /// federation's issuer).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub workload: bool,
    /// A workload issuer whose tokens are each good once (by `jti`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub single_use: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuerList {
    pub items: Vec<IssuerView>,
    pub next_cursor: Option<String>,
}

/// Trust an identity provider (or replace how it is trusted).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerInput {
    /// Its issuer identifier: an https URL (http only on loopback).
    pub issuer: String,
    /// Its public signing keys (a JWK Set); or `jwks_uri`, one of the two.
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Map<String, Value>>,
    /// Where it publishes them (https, a public host).
    pub jwks_uri: Option<String>,
    /// It issues ID-JAGs (Identity Assertion JWT Authorization Grants).
    pub id_jag: Option<bool>,
    /// With `id_jag`: the provider's own tenant whose ID-JAGs are taken.
    pub idp_tenant: Option<String>,
    /// A workload platform (GitHub Actions, Kubernetes): its tokens authenticate `federated`
    /// clients, and it is trusted for nothing else.
    pub workload: Option<bool>,
    /// With `workload`: each of its tokens is good once (by `jti`); without, a token may
    /// authenticate again until it expires.
    pub single_use: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct IssuerParam {
    /// The issuer identifier to stop trusting.
    issuer: String,
}

fn issuer_list(t: &Tenant) -> IssuerList {
    IssuerList {
        items: t
            .trusted_issuers
            .iter()
            .map(|i| IssuerView {
                issuer: i.issuer.clone(),
                jwks_uri: i.jwks_uri.clone(),
                jwks: i.jwks.clone(),
                id_jag: i.id_jag,
                idp_tenant: i.idp_tenant.clone(),
                workload: i.workload,
                single_use: i.single_use,
            })
            .collect(),
        next_cursor: None,
    }
}

/// Which field an issuer validation message is about.
fn issuer_problem(e: AdminError) -> Problem {
    match e {
        AdminError::Invalid(why) => {
            let field = if why.starts_with("--jwks-uri") {
                "jwks_uri"
            } else if why.starts_with("jwks") || why.starts_with("give the issuer's keys") {
                "jwks"
            } else if why.starts_with("--single-use") {
                "single_use"
            } else if why.starts_with("a workload issuer") {
                "workload"
            } else if why.contains("--idp-tenant") || why.starts_with("an identity provider's tenant") {
                "idp_tenant"
            } else {
                "issuer"
            };
            let why = why
                .replace("--jwks-uri", "jwks_uri")
                .replace("--jwks-file or ", "jwks or ")
                .replace("--idp-tenant", "idp_tenant")
                .replace("--id-jag", "id_jag")
                .replace("--single-use", "single_use")
                .replace("--workload", "workload")
                .replace("--issuer", "issuer");
            Problem::invalid_field(field, why)
        }
        other => other.into(),
    }
}

#[utoipa::path(get, path = "/admin/v1/issuers", tag = "federation",
    responses((status = 200, body = IssuerList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_issuers(StateX(app): StateX<State>, admin: Admin) -> Answer {
    let t = svc::tenant(&app, &admin.tenant).await?.value;
    Ok(json_answer(StatusCode::OK, &issuer_list(&t), None))
}

#[utoipa::path(post, path = "/admin/v1/issuers", tag = "federation", request_body = IssuerInput,
    responses((status = 200, body = IssuerList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn add_issuer(
    StateX(app): StateX<State>,
    admin: Admin,
    BodyOf(body): BodyOf<IssuerInput>,
) -> Answer {
    let entry = crate::domain::tenant::TrustedIssuer {
        issuer: body.issuer,
        jwks: body.jwks.map(Value::Object),
        jwks_uri: body.jwks_uri,
        id_jag: body.id_jag.unwrap_or(false),
        idp_tenant: body.idp_tenant,
        workload: body.workload.unwrap_or(false),
        single_use: body.single_use.unwrap_or(false),
    };
    let t = crate::service::tenants::add_issuer(&app, &admin.tenant, entry, &admin.actor)
        .await
        .map_err(issuer_problem)?;
    Ok(json_answer(StatusCode::OK, &issuer_list(&t), None))
}

#[utoipa::path(delete, path = "/admin/v1/issuers", tag = "federation", params(IssuerParam),
    responses((status = 204, description = "its assertions are refused from now on"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn remove_issuer(
    StateX(app): StateX<State>,
    admin: Admin,
    QueryOf(q): QueryOf<IssuerParam>,
) -> Answer {
    crate::service::tenants::remove_issuer(&app, &admin.tenant, &q.issuer, &admin.actor)
        .await
        .map_err(issuer_problem)?;
    Ok(no_content())
}
