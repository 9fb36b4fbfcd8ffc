//! `/admin/v1/clients`: Connected Apps, their secrets, disabling and deleting them.

use super::*;

/// A Connected App as the admin sees it: its RFC 7591 metadata and admin fields. Never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: String,
    /// Space-separated scopes the client may request.
    pub scope: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// The client's public keys (private_key_jwt).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub jwks: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The workload identity of a `federated` client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_credential: Option<FederatedCredential>,
    /// RFC 9449 §5.2: it gets no token without a DPoP proof.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// RFC 9126 §6: it sends authorization requests only by the pushed authorization request
    /// endpoint.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    pub client_id_issued_at: i64,
    pub updated_at: i64,
    /// `dcr` (registered itself), `admin` (the operator) or `api` (this API).
    pub origin: String,
    /// Pre-approved: its users are not asked for consent.
    pub first_party: bool,
    /// Disabled: nothing is issued to it; its grants and tokens have ended.
    pub disabled: bool,
    /// The app this client is an agent of (RFC 8693 token exchange).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_of: Option<String>,
    /// Until when the previous secret still works, after a rotation with a grace period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
    /// Which users may authorize it (absent: everyone in the tenant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_users: Option<AuthorizedUsers>,
    /// The tenant's resources this client is the resource server for: it may introspect other
    /// clients' access tokens for those audiences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_server_for: Vec<String>,
    /// Registered by anyone, without an initial access token (open DCR, or a metadata
    /// document): it may use only the grants users consent to, and expires unused.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub open_registration: bool,
}

/// Who a `federated` client is (`token_endpoint_auth_method: federated`): tokens of `issuer`
/// (trusted for workloads, `POST /admin/v1/issuers` with `workload`) whose `sub` is exactly one
/// of `subjects` and whose `aud` is `audience` authenticate it, instead of a secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    /// The workload issuer (e.g. `https://token.actions.githubusercontent.com`).
    pub issuer: String,
    /// Exact `sub` values (1 to 10; no wildcards), e.g. `repo:ORG/REPO:ref:refs/heads/main`
    /// or `system:serviceaccount:NS:NAME`.
    pub subjects: Vec<String>,
    /// The `aud` its tokens carry; absent: the tenant's issuer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// An app's user policy: these users, and the members of these groups, may authorize it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizedUsers {
    /// User ids (absent or `null`: none).
    #[serde(default, deserialize_with = "null_is_empty")]
    pub users: Vec<String>,
    /// Group ids (absent or `null`: none).
    #[serde(default, deserialize_with = "null_is_empty")]
    pub groups: Vec<String>,
}

impl ClientView {
    fn of(c: &Client, now: i64) -> Self {
        let m = &c.metadata;
        Self {
            client_id: c.client_id.to_string(),
            client_name: m.client_name.clone(),
            redirect_uris: m.redirect_uris.clone(),
            grant_types: m.grant_types.iter().map(|g| g.as_str().to_string()).collect(),
            response_types: m.response_types.clone(),
            token_endpoint_auth_method: m.token_endpoint_auth_method.as_str().to_string(),
            scope: m.scope.clone(),
            contacts: m.contacts.clone(),
            client_uri: m.client_uri.clone(),
            logo_uri: m.logo_uri.clone(),
            tos_uri: m.tos_uri.clone(),
            policy_uri: m.policy_uri.clone(),
            software_id: m.software_id.clone(),
            software_version: m.software_version.clone(),
            jwks: m.jwks.clone(),
            jwks_uri: m.jwks_uri.clone(),
            federated_credential: m.federated_credential.as_ref().map(|f| FederatedCredential {
                issuer: f.issuer.clone(),
                subjects: f.subjects.clone(),
                audience: f.audience.clone(),
            }),
            dpop_bound_access_tokens: m.dpop_bound_access_tokens,
            require_pushed_authorization_requests: m.require_pushed_authorization_requests,
            client_id_issued_at: c.issued_at,
            updated_at: c.updated_at,
            origin: match c.origin {
                Origin::Dcr => "dcr",
                Origin::Admin => "admin",
                Origin::Api => "api",
                Origin::Console => "console",
                Origin::Cimd => "cimd",
            }
            .into(),
            first_party: c.first_party,
            disabled: c.disabled,
            agent_of: c.agent_of.as_ref().map(ClientId::to_string),
            previous_secret_expires_at: (c.previous_secret_hash.is_some() && c.previous_secret_until > now)
                .then_some(c.previous_secret_until),
            authorized_users: c.user_policy.as_ref().map(|p| AuthorizedUsers {
                users: p.users.iter().cloned().collect(),
                groups: p.groups.iter().cloned().collect(),
            }),
            resource_server_for: c.resource_server_for.clone(),
            open_registration: c.open_registration,
        }
    }
}

/// A new client, with its secret: the only answer that ever shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientCreated {
    #[serde(flatten)]
    pub client: ClientView,
    /// Shown once (absent for public and private_key_jwt clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A new client: RFC 7591 metadata plus the admin-only `first_party`, `agent_of`,
/// `authorized_users` and `resource_server_for`. `null` is the same as leaving a field out.
///
/// Read here for its shape (no other field, each of its type); what the values mean is
/// judged by the service and `domain::client`, as for every other way of making a client.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    /// Default `["authorization_code"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    /// `client_secret_basic` (default), `client_secret_post`, `private_key_jwt`, `none` or
    /// `federated` (with `federated_credential`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// The client's public keys (private_key_jwt): a JWK Set; or `jwks_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// With `token_endpoint_auth_method: federated`: the workload identity it stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_credential: Option<FederatedCredential>,
    /// OpenID Connect Registration: `web` or `native`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// RFC 9449 §5.2: the client always sends DPoP proofs; a token request without one is
    /// refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens: Option<bool>,
    /// RFC 9126 §6: the client sends authorization requests only by the pushed authorization
    /// request endpoint; a plain one is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_pushed_authorization_requests: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_party: Option<bool>,
    /// Make the new client an agent of this app (it must be registered for token exchange).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_of: Option<String>,
    /// Only these users and groups may authorize it (absent or `null`: everyone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorized_users: Option<AuthorizedUsers>,
    /// Make it the resource server for these of the tenant's resources: it may introspect
    /// other clients' access tokens for them (a confidential client only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_server_for: Option<Vec<String>>,
}

/// A change to a client: a JSON merge patch (RFC 7396) over its metadata and admin fields. A
/// field left out stays as it is; `null` removes an optional metadata field (back to its
/// default), sets `authorized_users` to everyone and `resource_server_for` to none, and leaves
/// `first_party` and `disabled` as they are. The result is validated like a registration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub client_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub scope: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub software_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub software_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<Option<String>>,
    /// Replaces the workload identity of a `federated` client whole.
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub federated_credential: Option<Option<FederatedCredential>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub application_type: Option<Option<String>>,
    /// `null` or `false`: the client may also get bearer tokens.
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens: Option<Option<bool>>,
    /// `null` or `false`: plain authorization requests are taken again.
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub require_pushed_authorization_requests: Option<Option<bool>>,
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub first_party: Option<Option<bool>>,
    /// `true` ends the client's grants, consents and access tokens; `false` enables it again.
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub disabled: Option<Option<bool>>,
    /// Fixed when the agent is created: only its current value is accepted.
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub agent_of: Option<Option<String>>,
    /// Only these users and groups may authorize it; `null`: everyone. Users it leaves out
    /// lose the app at once.
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub authorized_users: Option<Option<AuthorizedUsers>>,
    /// The tenant's resources it is the resource server for (`null` or `[]`: none).
    #[serde(default, deserialize_with = "patch", skip_serializing_if = "Option::is_none")]
    pub resource_server_for: Option<Option<Vec<String>>>,
}

/// A client body as the JSON object the service reads: only the fields the caller gave (a
/// patch's `null`s kept), each already of its type. The console and the CLI hand the same
/// service their own objects, so the meaning of every field is judged there, once.
fn as_object<T: Serialize>(body: &T) -> Result<Value, Problem> {
    serde_json::to_value(body).map_err(|_| Problem::invalid("the body could not be read"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub items: Vec<ClientView>,
    /// Pass as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<String>,
}

/// A secret rotation request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// How long the previous secret keeps working: 0 (it stops now) to 604800 (7 days); default 86400.
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecretRotated {
    pub client_id: String,
    /// Shown once.
    pub client_secret: String,
    /// Until when the previous secret works (absent with a zero grace period).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/clients", tag = "clients", params(ListParams),
    responses((status = 200, body = ClientList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_clients(
    StateX(app): StateX<State>,
    admin: Admin,
    QueryOf(q): QueryOf<ListParams>,
) -> Answer {
    let (limit, cursor) = q.page()?;
    let (clients, next) = svc::list_clients(&app, &admin.tenant, cursor.as_deref(), limit).await?;
    let now = app.now();
    Ok(json_answer(
        StatusCode::OK,
        &ClientList {
            items: clients.iter().map(|c| ClientView::of(c, now)).collect(),
            next_cursor: encode_cursor(next),
        },
        None,
    ))
}

#[utoipa::path(post, path = "/admin/v1/clients", tag = "clients", request_body = ClientInput,
    responses((status = 201, body = ClientCreated), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn create_client(
    StateX(app): StateX<State>,
    admin: Admin,
    BodyOf(body): BodyOf<ClientInput>,
) -> Answer {
    let reg = svc::create_client(&app, &admin.tenant, &as_object(&body)?, &admin.actor).await?;
    let mut resp = json_answer(
        StatusCode::CREATED,
        &ClientCreated {
            client: ClientView::of(&reg.client, app.now()),
            client_secret: reg.secret.as_ref().map(|s| s.expose().to_string()),
        },
        Some(1),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/admin/v1/clients/{}",
        crate::http::links::segment(&reg.client.client_id)
    )) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses((status = 200, body = ClientView, headers(("ETag" = String))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn get_client(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(client_id): PathOf<ClientId>,
) -> Answer {
    let c = svc::client(&app, &admin.tenant, &client_id).await?;
    Ok(json_answer(
        StatusCode::OK,
        &ClientView::of(&c.value, app.now()),
        Some(c.version),
    ))
}

#[utoipa::path(patch, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path), ("If-Match" = Option<String>, Header, description = "the ETag of the client as read")),
    request_body = ClientPatch,
    responses((status = 200, body = ClientView, headers(("ETag" = String))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn patch_client(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(client_id): PathOf<ClientId>,
    headers: HeaderMap,
    BodyOf(body): BodyOf<ClientPatch>,
) -> Answer {
    let expected = if_match(&headers)?;
    let c = svc::patch_client(
        &app,
        &admin.tenant,
        &client_id,
        expected,
        &as_object(&body)?,
        &admin.actor,
    )
    .await?;
    Ok(json_answer(
        StatusCode::OK,
        &ClientView::of(&c.value, app.now()),
        Some(c.version),
    ))
}

#[utoipa::path(delete, path = "/admin/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path)),
    responses((status = 204, description = "deleted, with its grants, consents and tokens"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn delete_client(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(client_id): PathOf<ClientId>,
) -> Answer {
    svc::delete_client(&app, &admin.tenant, &client_id, &admin.actor).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/admin/v1/clients/{client_id}/secret", tag = "clients",
    params(("client_id" = String, Path)),
    request_body(content = Option<SecretRotation>, description = "optional; an empty body means the default grace"),
    responses((status = 200, body = SecretRotated),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn rotate_secret(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(client_id): PathOf<ClientId>,
    req: Request,
) -> Answer {
    let empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0")
        || (req.headers().get(header::CONTENT_TYPE).is_none()
            && req.headers().get(header::TRANSFER_ENCODING).is_none());
    let grace = if empty {
        86_400
    } else {
        let BodyOf(body) = BodyOf::<SecretRotation>::from_request(req, &()).await?;
        body.grace_seconds.unwrap_or(86_400)
    };
    let (secret, c) = svc::rotate_secret(&app, &admin.tenant, &client_id, grace, &admin.actor, false).await?;
    Ok(json_answer(
        StatusCode::OK,
        &SecretRotated {
            client_id: c.client_id.to_string(),
            client_secret: secret.expose().to_string(),
            previous_secret_expires_at: (c.previous_secret_until > 0).then_some(c.previous_secret_until),
        },
        None,
    ))
}
