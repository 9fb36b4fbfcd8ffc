//! Clients (Connected Apps) and the validation of their metadata (RFC 7591 §2), sans IO.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::grant_type::{ClientAuthMethod, GrantType, Registrant};
pub use super::id::ClientId;
use super::jwk::check_public_jwks;
pub use super::net::KeyHosts;
use super::scope::ScopeSet;
use super::tenant::{Tenant, TenantId};

/// Validated client metadata: what a client registers and may later read back or replace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Sorted by name, no duplicates.
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: ClientAuthMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Space-separated scopes the client may request.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// The client's public signing keys (a JWK Set), for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Where the client publishes them instead (fetched through the SSRF-guarded fetcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// OpenID Connect Registration `application_type`: `web` or `native` (MCP clients send it).
    /// Either way redirect URIs are https or loopback http.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// RFC 9449 §5.2: the client always sends a DPoP proof; a token request without one is
    /// refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// RFC 9126 §6: the client sends its authorization requests only by the pushed
    /// authorization request endpoint; a plain one is refused on our own page.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// For a `federated` client (and only for one): the workload identity it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_credential: Option<crate::workload::FederatedCredential>,
}

impl ClientMetadata {
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
    /// A public client: no secret, `token_endpoint_auth_method: none`.
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == ClientAuthMethod::None
    }
    /// How the client authenticates.
    pub fn auth_method(&self) -> ClientAuthMethod {
        self.token_endpoint_auth_method
    }
    /// The metadata as a JSON object (for RFC 7591/7592 responses).
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

/// How a client came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `POST /oauth2/register`.
    Dcr,
    /// The operator's `bulwark` CLI.
    Admin,
    /// The tenant admin API (`/admin/v1/clients`): like the operator's, except that it cannot
    /// hand out [`ADMIN_SCOPE`] (a leaked admin token must not be able to mint more of itself).
    Api,
    /// The tenant's own Connected Apps console (`domain::console`): made by the server, invisible
    /// to the admin API, DCR and RFC 7592; it obtains [`ADMIN_SCOPE`] for users with the admin
    /// role only.
    Console,
    /// Known by its Client ID Metadata Document (`domain::cimd`): its id is the document's URL,
    /// its metadata is the document's, cached per tenant.
    Cimd,
}

impl Origin {
    /// Whether the client described itself (DCR or a metadata document): then it is held to
    /// what strangers may have (no restricted scopes, no admin-only grants).
    pub fn is_stranger(self) -> bool {
        matches!(self, Origin::Dcr | Origin::Cimd)
    }
}

/// The scope of the tenant admin API. Reserved: in no tenant's catalog, never registered through
/// DCR or the admin API, only on confidential `client_credentials` clients the operator creates.
pub const ADMIN_SCOPE: &str = "bulwark:admin";

/// Scope names under this prefix belong to Bulwark, not to a tenant's catalog.
pub const RESERVED_SCOPE_PREFIX: &str = "bulwark:";

/// A client as stored. Secrets only as SHA-256 hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: ClientId,
    pub tenant: TenantId,
    pub metadata: ClientMetadata,
    /// SHA-256 of the client secret (hex); `None` for public clients.
    pub secret_hash: Option<String>,
    /// 0 = never.
    pub secret_expires_at: i64,
    /// SHA-256 of the RFC 7592 registration access token (hex). Only clients registered
    /// through DCR have one; operator-made clients are managed by the operator alone.
    #[serde(default)]
    pub registration_token_hash: Option<String>,
    pub issued_at: i64,
    pub updated_at: i64,
    pub origin: Origin,
    /// Pre-approved by the tenant admin (never settable through DCR).
    #[serde(default)]
    pub first_party: bool,
    /// Moves on whenever the client adds a redirect URI through RFC 7592: a consent given
    /// under an earlier epoch no longer counts (its users are asked again before a code goes
    /// to the new place).
    #[serde(default)]
    pub consent_epoch: u64,
    /// The app this client is an agent of (RFC 8693 token exchange: it may act for that app's
    /// users who let the app's agents act for them). Set by the operator or tenant admin only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_of: Option<ClientId>,
    /// After a rotation with a grace period: the previous secret's hash, accepted until
    /// `previous_secret_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_hash: Option<String>,
    #[serde(default)]
    pub previous_secret_until: i64,
    /// Disabled by the tenant admin: stored apart from live clients (see `Repo::client_any`), so
    /// that every path that looks a client up, or checks it in a transaction, finds nothing.
    #[serde(default)]
    pub disabled: bool,
    /// Access tokens of this client issued at or before this second are inactive (set when the
    /// client is disabled, so that enabling it again does not bring them back).
    #[serde(default)]
    pub tokens_revoked_before: i64,
    /// Which users may authorize it (`None`: everyone in the tenant). Set by the tenant admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_policy: Option<crate::access::UserPolicy>,
    /// For a metadata-document client ([`Origin::Cimd`]): when its document was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<crate::cimd::DocumentState>,
    /// Registered through open DCR, by anyone, without an initial access token (or a
    /// metadata-document client, met by anyone naming its URL): such a client
    /// is deleted once unused for [`OPEN_REGISTRATION_IDLE`] ([`open_registration_expires_at`]).
    /// Absent (false) in clients stored before it, which therefore never expire: nothing
    /// recorded whether they came with a token.
    #[serde(default)]
    pub open_registration: bool,
    /// The resources (of the tenant's) this client is the resource server for: it may
    /// introspect other clients' access tokens for those audiences
    /// ([`crate::introspection`]). Set by the tenant admin or the operator only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_server_for: Vec<String>,
}

/// How long a client registered openly (no initial access token) may go without a token
/// before it is deleted: 30 days.
pub const OPEN_REGISTRATION_IDLE: i64 = 30 * 86_400;

/// When `c` expires for want of use, given when it last got a token (`None`: never): unused
/// for [`OPEN_REGISTRATION_IDLE`] since that use, or since its registration. `None` for a
/// client that never expires: one made by the operator, an admin or the console, or registered
/// with an initial access token. Expired at and after the instant returned.
pub fn open_registration_expires_at(c: &Client, last_used: Option<i64>) -> Option<i64> {
    if !c.origin.is_stranger() || !c.open_registration {
        return None;
    }
    let since = last_used.map_or(c.issued_at, |u| u.max(c.issued_at));
    Some(since.saturating_add(OPEN_REGISTRATION_IDLE))
}

/// Whether `c` is, at `now`, an open registration unused for too long (see
/// [`open_registration_expires_at`]).
pub fn open_registration_expired(c: &Client, last_used: Option<i64>, now: i64) -> bool {
    open_registration_expires_at(c, last_used).is_some_and(|at| now >= at)
}

/// Bounds on free-text and list metadata.
pub(super) const MAX_NAME: usize = 200;
pub(super) const MAX_URI: usize = 2000;
pub(super) const MAX_REDIRECT_URIS: usize = 20;
pub(super) const MAX_CONTACTS: usize = 10;

impl Client {
    /// A new live client with no secret, no grants of trust (not first-party, no agent link, no
    /// user policy) and nothing rotated or revoked yet.
    pub fn new(
        client_id: ClientId,
        tenant: TenantId,
        metadata: ClientMetadata,
        origin: Origin,
        now: i64,
    ) -> Self {
        Self {
            client_id,
            tenant,
            metadata,
            secret_hash: None,
            secret_expires_at: 0,
            registration_token_hash: None,
            issued_at: now,
            updated_at: now,
            origin,
            first_party: false,
            consent_epoch: 0,
            agent_of: None,
            previous_secret_hash: None,
            previous_secret_until: 0,
            disabled: false,
            tokens_revoked_before: 0,
            user_policy: None,
            document: None,
            open_registration: false,
            resource_server_for: Vec::new(),
        }
    }

    /// The host of a metadata-document client's URL: what users are shown first, since such a
    /// client chose its own name.
    pub fn document_host(&self) -> Option<String> {
        if self.origin != Origin::Cimd {
            return None;
        }
        crate::cimd::site(&Url::parse(&self.client_id).ok()?)
    }

    /// The name users are shown: a metadata-document client's host, else its name, else its id.
    pub fn display_name(&self) -> String {
        self.document_host()
            .or_else(|| self.metadata.client_name.clone())
            .unwrap_or_else(|| self.client_id.to_string())
    }

    /// Who registered it, which bounds what it may hold ([`GrantType::least_registrant`]). A DCR
    /// client stored before `open_registration` existed counts as registered with an initial
    /// access token: nothing recorded which it was.
    pub fn registrant(&self) -> Registrant {
        match self.origin {
            Origin::Dcr if self.open_registration => Registrant::Anonymous,
            Origin::Dcr => Registrant::InitialAccessToken,
            Origin::Cimd => Registrant::Anonymous,
            Origin::Api => Registrant::TenantAdmin,
            Origin::Admin | Origin::Console => Registrant::Operator,
        }
    }

    /// Whether the token endpoint may run `grant` for this client: it is registered for it, and
    /// whoever registered it may give it that grant — checked at every use, so a client that
    /// registered a grant before the rule forbade it (an anonymous registration holding
    /// `client_credentials`) is not issued it.
    pub fn may_use_grant(&self, grant: GrantType) -> bool {
        self.metadata.allows_grant(grant) && grant.registrable_by(self.registrant())
    }

    /// Whether RFC 7592 (read, update, delete with the registration access token) applies: only
    /// to clients that registered themselves.
    pub fn self_managed(&self) -> bool {
        self.origin == Origin::Dcr && self.registration_token_hash.is_some()
    }

    /// Whether it holds [`ADMIN_SCOPE`] now: registered for it and either made by the operator
    /// and confidential, or the tenant's console (which obtains it for admin-role users only:
    /// `service::access`).
    pub fn may_hold_admin_scope(&self) -> bool {
        let kind_ok = match self.origin {
            Origin::Admin => self.metadata.auth_method().is_confidential(),
            Origin::Console => crate::console::is_console(self),
            Origin::Dcr | Origin::Api | Origin::Cimd => false,
        };
        kind_ok && self.metadata.scopes().contains(ADMIN_SCOPE)
    }

    /// The scopes this client may be issued now: those it registered that are still in the
    /// tenant's catalog, less the tenant's restricted scopes unless the client was made by the
    /// operator or an admin (so a scope restricted after a DCR client registered it is no longer
    /// issued to that client).
    pub fn allowed_scopes(&self, tenant: &Tenant) -> ScopeSet {
        self.metadata.scopes().retain(|s| {
            if s == ADMIN_SCOPE {
                return self.may_hold_admin_scope();
            }
            tenant.scopes.contains_key(s)
                && (!self.origin.is_stranger() || !tenant.restricted_scopes.contains(s))
        })
    }
}

mod metadata;
pub use metadata::*;

#[cfg(test)]
mod tests {
    use super::MetadataErrorKind as ErrorCode;
    use super::*;
    use crate::grant_type::{ClientAuthMethod, GrantType};
    use crate::tenant::{DcrPolicy, TenantId};
    use serde_json::json;

    fn tenant() -> Tenant {
        let mut t = Tenant::new(TenantId::parse("acme").unwrap(), DcrPolicy::Token, None, 0);
        t.scopes.insert("api:read".into(), "Read".into());
        t.scopes.insert("api:write".into(), "Write".into());
        t.scopes.insert("api:admin".into(), "Administer".into());
        t.restricted_scopes.insert("api:admin".into());
        t
    }

    fn check(input: Value, expected: Result<(), ErrorCode>) {
        let got = validate_metadata(
            &input,
            &tenant(),
            Registrant::InitialAccessToken,
            KeyHosts::LoopbackToo,
        )
        .map(|_| ())
        .map_err(|e| e.kind);
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn metadata_cases() {
        use ErrorCode::*;
        let cc = |extra: Value| {
            let mut base = json!({"grant_types": ["client_credentials"], "scope": "api:read"});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            base
        };
        check(cc(json!({})), Ok(()));
        // A CLI of the device flow (RFC 8628): public, no redirect URI, no response type;
        // refresh tokens with it. Not by anyone: nothing anchors its name on the confirmation
        // page (RFC 8628 §5.4), so an anonymous registration is refused.
        let device = json!({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
                            "token_endpoint_auth_method": "none", "scope": "api:read"});
        check(device.clone(), Ok(()));
        let anonymous = validate_metadata(&device, &tenant(), Registrant::Anonymous, KeyHosts::LoopbackToo);
        assert!(anonymous.is_err(), "{anonymous:?}");
        check(
            json!({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"], "response_types": ["code"]}),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"client_name": "CI pipeline", "token_endpoint_auth_method": "client_secret_post"})),
            Ok(()),
        );
        check(
            cc(json!({"redirect_uris": ["https://app.example.com/cb"]})),
            Ok(()),
        );
        check(
            cc(
                json!({"redirect_uris": ["http://127.0.0.1:9000/cb", "http://[::1]/cb", "http://localhost/cb"]}),
            ),
            Ok(()),
        );
        check(
            cc(json!({"redirect_uris": ["http://app.example.com/cb"]})),
            Err(InvalidRedirectUri),
        );
        check(
            cc(json!({"redirect_uris": ["https://app.example.com/cb#frag"]})),
            Err(InvalidRedirectUri),
        );
        check(
            cc(json!({"redirect_uris": ["https://*.example.com/cb"]})),
            Err(InvalidRedirectUri),
        );
        check(
            cc(json!({"redirect_uris": ["javascript:alert(1)"]})),
            Err(InvalidRedirectUri),
        );
        check(
            cc(json!({"redirect_uris": ["data:text/html,hi"]})),
            Err(InvalidRedirectUri),
        );
        check(
            cc(json!({"redirect_uris": ["/relative/cb"]})),
            Err(InvalidRedirectUri),
        );
        check(
            cc(json!({"redirect_uris": ["https://user:pw@app.example.com/cb"]})),
            Err(InvalidRedirectUri),
        );
        check(
            cc(json!({"redirect_uris": "https://app.example.com/cb"})),
            Err(InvalidClientMetadata),
        );
        check(cc(json!({"redirect_uris": [42]})), Err(InvalidClientMetadata));
        check(
            cc(json!({"grant_types": ["password"]})),
            Err(InvalidClientMetadata),
        );
        check(cc(json!({"grant_types": []})), Err(InvalidClientMetadata));
        check(
            cc(json!({"grant_types": "client_credentials"})),
            Err(InvalidClientMetadata),
        );
        // RFC 7591's default grant is authorization_code, which needs a redirect URI.
        check(json!({"scope": "api:read"}), Err(InvalidRedirectUri));
        let code = json!({"redirect_uris": ["https://app.example.com/cb"], "scope": "api:read"});
        check(code.clone(), Ok(()));
        let mut public = code.clone();
        public["token_endpoint_auth_method"] = json!("none");
        public["grant_types"] = json!(["authorization_code", "refresh_token"]);
        check(public, Ok(()));
        check(
            json!({"grant_types": ["refresh_token"], "redirect_uris": ["https://a.example/cb"]}),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"response_types": ["token"]})),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"response_types": ["code"]})),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"token_endpoint_auth_method": "none"})),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"token_endpoint_auth_method": "private_key_jwt"})),
            Err(InvalidClientMetadata),
        );
        check(cc(json!({"scope": "api:read admin"})), Err(InvalidClientMetadata));
        check(cc(json!({"scope": 7})), Err(InvalidClientMetadata));
        check(cc(json!({"client_name": ""})), Err(InvalidClientMetadata));
        check(
            cc(json!({"client_name": "x".repeat(201)})),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"client_name": "bad\u{0007}name"})),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"client_uri": "javascript:alert(1)"})),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"logo_uri": "http://app.example.com/logo.png"})),
            Err(InvalidClientMetadata),
        );
        check(
            cc(json!({"policy_uri": "https://app.example.com/privacy"})),
            Ok(()),
        );
        check(cc(json!({"contacts": ["ops@example.com"]})), Ok(()));
        check(
            cc(json!({"contacts": ["not an email"]})),
            Err(InvalidClientMetadata),
        );
        check(cc(json!({"first_party": true})), Err(InvalidClientMetadata));
        check(
            cc(json!({"jwks_uri": "https://app.example.com/jwks"})),
            Err(InvalidClientMetadata),
        );
        check(cc(json!({"unknown_field": "ignored"})), Ok(()));
        // A jwks_uri the fetcher would refuse is refused at registration.
        for (uri, ok) in [
            ("https://keys.example.com/jwks", true),
            ("http://127.0.0.1:9000/jwks", true),
            ("https://169.254.169.254/latest/meta-data/", false),
            ("https://10.1.2.3/jwks", false),
            ("https://192.168.0.10/jwks", false),
            ("https://100.64.1.1/jwks", false),
            ("https://0.0.0.0/jwks", false),
            ("https://[::]/jwks", false),
            ("https://[fd12:3456::1]/jwks", false),
            ("https://[::ffff:10.0.0.1]/jwks", false),
            ("https://metadata.google.internal/jwks", false),
            ("https://printer.local/jwks", false),
        ] {
            check(
                cc(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri})),
                if ok { Ok(()) } else { Err(InvalidClientMetadata) },
            );
        }
        check(json!([1, 2]), Err(InvalidClientMetadata));
        check(json!("string"), Err(InvalidClientMetadata));
    }

    #[test]
    fn misleading_uris_and_names_are_refused() {
        use ErrorCode::*;
        let cc = |extra: Value| {
            let mut base = json!({"grant_types": ["client_credentials"], "scope": "api:read"});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            base
        };
        for uri in [
            "https://evil.example\\@good.example/cb",
            "https:evil.example/cb",
            "https:/\\evil.example/cb",
            "https:\\\\evil.example/cb",
            "https://\u{0430}pple.example/cb",
            "https://xn--pple-43d.example./cb",
            "HTTPS://app.example/cb",
            "https://APP.example/cb",
            "https://app.example/x/../cb",
            "https://app.example/./cb",
            "https://app.example:443/cb",
            "http://127.1/cb",
            "http://2130706433/cb",
            "http://0x7f.0.0.1/cb",
            "https://app.example/c b",
            "https://app.example/cb\t",
            "https://app.example/\u{202E}bc",
        ] {
            check(cc(json!({"redirect_uris": [uri]})), Err(InvalidRedirectUri));
        }
        for uri in [
            "https://app.example/cb",
            "https://xn--pple-43d.example/cb",
            "https://app.example",
            "https://app.example/",
            "https://app.example:8443/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
        ] {
            check(cc(json!({"redirect_uris": [uri]})), Ok(()));
        }
        for bad in [
            "https://evil.example\\@good.example/",
            "https://\u{0430}pple.example",
            "HTTPS://app.example/",
        ] {
            check(cc(json!({"client_uri": bad})), Err(InvalidClientMetadata));
            check(cc(json!({"logo_uri": bad})), Err(InvalidClientMetadata));
        }
        for name in [
            "Acme \u{202E}gpj.exe",
            "a\u{200B}b",
            "\u{2066}x\u{2069}",
            "x\u{FEFF}",
            "tag\u{E0041}",
            "\u{2800}",
            "Acme\u{2028}Bank",
            "Acme\u{2029}Bank",
            "a\u{0301}\u{0301}\u{0301}",
            "x\u{FFFC}",
        ] {
            check(cc(json!({"client_name": name})), Err(InvalidClientMetadata));
        }
        check(cc(json!({"client_name": "Ünïcödé Notes 日本"})), Ok(()));
        check(
            cc(json!({"client_name": "Tiê\u{0302}\u{0301}ng Vie\u{0323}\u{0302}t"})),
            Ok(()),
        );
    }

    #[test]
    fn restricted_scopes_are_for_admin_made_clients() {
        let md = json!({"grant_types": ["client_credentials"], "scope": "api:read api:admin"});
        let err = validate_metadata(
            &md,
            &tenant(),
            Registrant::InitialAccessToken,
            KeyHosts::LoopbackToo,
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorCode::InvalidClientMetadata);
        assert!(err.reason.contains("api:admin"), "{}", err.reason);
        let m = validate_metadata(&md, &tenant(), Registrant::Operator, KeyHosts::LoopbackToo).unwrap();
        assert_eq!(m.scope, "api:admin api:read");
        // A DCR client that holds a scope restricted later is no longer issued it.
        let mut c = Client::new(
            "c1".into(),
            TenantId::parse("acme").unwrap(),
            validate_metadata(&md, &tenant(), Registrant::Operator, KeyHosts::LoopbackToo).unwrap(),
            Origin::Dcr,
            0,
        );
        c.metadata.scope = "api:admin api:read gone".into();
        assert_eq!(c.allowed_scopes(&tenant()).to_scope_string(), "api:read");
        c.origin = Origin::Admin;
        assert_eq!(
            c.allowed_scopes(&tenant()).to_scope_string(),
            "api:admin api:read"
        );
    }

    /// Only a client registered by anyone (open DCR, no initial access token) expires, and
    /// only once it has gone [`OPEN_REGISTRATION_IDLE`] without a token since its last use (or
    /// its registration, if it never got one).
    #[test]
    fn unused_open_registrations_expire_and_nothing_else_does() {
        let md = json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "none", "scope": "api:read"});
        let client = |origin: Origin, open: bool| Client {
            open_registration: open,
            ..Client::new(
                "c1".into(),
                TenantId::parse("acme").unwrap(),
                validate_metadata(
                    &md,
                    &tenant(),
                    Registrant::InitialAccessToken,
                    KeyHosts::LoopbackToo,
                )
                .unwrap(),
                origin,
                1_000,
            )
        };
        let open = client(Origin::Dcr, true);
        let idle = OPEN_REGISTRATION_IDLE;
        let day = 86_400;
        for (c, last_used, now, expired) in [
            // Never used: 30 days after its registration, to the second.
            (&open, None, 1_000 + idle - 1, false),
            (&open, None, 1_000 + idle, true),
            (&open, None, 1_000 + 400 * day, true),
            // Used: 30 days after the last use.
            (&open, Some(1_000 + 10 * day), 1_000 + idle, false),
            (&open, Some(1_000 + 10 * day), 1_000 + 10 * day + idle - 1, false),
            (&open, Some(1_000 + 10 * day), 1_000 + 10 * day + idle, true),
            (&open, Some(1_000 + 400 * day), 1_000 + 400 * day + 1, false),
            // A use recorded before the registration (a clock step) counts from the registration.
            (&open, Some(0), 1_000 + idle - 1, false),
            // Made by the operator, an admin, the console; or registered with an initial
            // access token (or before registrations were told apart): never.
            (&client(Origin::Admin, false), None, i64::MAX, false),
            (&client(Origin::Api, false), None, i64::MAX, false),
            (&client(Origin::Console, false), None, i64::MAX, false),
            (&client(Origin::Dcr, false), None, i64::MAX, false),
            // The flag alone on a client that DCR did not make changes nothing.
            (&client(Origin::Admin, true), None, i64::MAX, false),
        ] {
            assert_eq!(
                open_registration_expired(c, last_used, now),
                expired,
                "{:?} open={} last_used={last_used:?} now={now}",
                c.origin,
                c.open_registration
            );
        }
        assert_eq!(
            open_registration_expires_at(&open, Some(5_000)),
            Some(5_000 + idle)
        );
        assert_eq!(
            open_registration_expires_at(&client(Origin::Dcr, false), None),
            None
        );
        // Clients stored before the flag existed load as not open (they never expire).
        let mut v = serde_json::to_value(&open).unwrap();
        v.as_object_mut().unwrap().remove("open_registration");
        let old: Client = serde_json::from_value(v).unwrap();
        assert!(!old.open_registration);
    }

    #[test]
    fn the_admin_scope_is_the_operators_to_give_to_client_credentials_clients_only() {
        let cc = json!({"grant_types": ["client_credentials"], "scope": "bulwark:admin"});
        for (md, channel, ok) in [
            (cc.clone(), Registrant::Operator, true),
            (cc.clone(), Registrant::TenantAdmin, false),
            (cc.clone(), Registrant::InitialAccessToken, false),
            (
                json!({"grant_types": ["client_credentials"], "scope": "bulwark:admin", "token_endpoint_auth_method": "none"}),
                Registrant::Operator,
                false,
            ),
            (
                json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://app.example/cb"], "scope": "bulwark:admin"}),
                Registrant::Operator,
                false,
            ),
            (
                json!({"grant_types": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"], "scope": "bulwark:admin"}),
                Registrant::Operator,
                false,
            ),
            (
                json!({"grant_types": ["client_credentials"], "scope": "bulwark:other"}),
                Registrant::Operator,
                false,
            ),
        ] {
            assert_eq!(
                validate_metadata(&md, &tenant(), channel, KeyHosts::LoopbackToo).is_ok(),
                ok,
                "{md} via {channel:?}"
            );
        }
        // Held only by an operator-made confidential client.
        let mut c = Client::new(
            "c1".into(),
            TenantId::parse("acme").unwrap(),
            validate_metadata(&cc, &tenant(), Registrant::Operator, KeyHosts::LoopbackToo).unwrap(),
            Origin::Admin,
            0,
        );
        assert_eq!(c.allowed_scopes(&tenant()).to_scope_string(), "bulwark:admin");
        for origin in [Origin::Api, Origin::Dcr] {
            c.origin = origin;
            assert!(c.allowed_scopes(&tenant()).is_empty(), "{origin:?}");
        }
    }

    /// A `federated` client stands for an identity another party asserts: only the tenant admin
    /// and the operator may bind one, to an issuer the tenant trusts for workloads, and the
    /// binding cannot be given to (or taken by) any other kind of client.
    #[test]
    fn only_admins_make_federated_clients_of_a_trusted_workload_issuer() {
        use crate::tenant::TrustedIssuer;
        let mut t = tenant();
        for (issuer, workload) in [("https://k8s.example", true), ("https://users.example", false)] {
            t.trusted_issuers.push(TrustedIssuer {
                issuer: issuer.into(),
                jwks: None,
                jwks_uri: Some(format!("{issuer}/jwks")),
                id_jag: false,
                idp_tenant: None,
                workload,
                single_use: false,
            });
        }
        let fed = |issuer: &str| {
            json!({"grant_types": ["client_credentials"], "scope": "api:read",
                "token_endpoint_auth_method": "federated",
                "federated_credential": {"issuer": issuer, "subjects": ["system:serviceaccount:ns:deploy"]}})
        };
        for (md, registrant, ok) in [
            (fed("https://k8s.example"), Registrant::TenantAdmin, true),
            (fed("https://k8s.example"), Registrant::Operator, true),
            (fed("https://k8s.example"), Registrant::InitialAccessToken, false),
            (fed("https://k8s.example"), Registrant::Anonymous, false),
            (fed("https://users.example"), Registrant::Operator, false),
            (fed("https://untrusted.example"), Registrant::Operator, false),
            (
                json!({"grant_types": ["client_credentials"], "scope": "api:read", "token_endpoint_auth_method": "federated"}),
                Registrant::Operator,
                false,
            ),
            (
                json!({"grant_types": ["client_credentials"], "scope": "api:read",
                    "federated_credential": {"issuer": "https://k8s.example", "subjects": ["x"]}}),
                Registrant::Operator,
                false,
            ),
        ] {
            assert_eq!(
                validate_metadata(&md, &t, registrant, KeyHosts::LoopbackToo).is_ok(),
                ok,
                "{md} by {registrant:?}"
            );
        }
        let m = validate_metadata(
            &fed("https://k8s.example"),
            &t,
            Registrant::TenantAdmin,
            KeyHosts::LoopbackToo,
        )
        .unwrap();
        assert_eq!(m.auth_method(), ClientAuthMethod::Federated);
        assert!(m.auth_method().is_confidential());
        assert_eq!(
            m.federated_credential.as_ref().map(|c| c.subjects.clone()),
            Some(vec!["system:serviceaccount:ns:deploy".to_string()])
        );
        // No switch into or out of federated authentication, whoever asks.
        let secret = validate_metadata(
            &json!({"grant_types": ["client_credentials"], "scope": "api:read"}),
            &t,
            Registrant::TenantAdmin,
            KeyHosts::LoopbackToo,
        )
        .unwrap();
        let keyed = validate_metadata(
            &json!({"grant_types": ["client_credentials"], "scope": "api:read",
                "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://keys.example/jwks"}),
            &t,
            Registrant::TenantAdmin,
            KeyHosts::LoopbackToo,
        )
        .unwrap();
        for (from, to) in [(&secret, &m), (&keyed, &m), (&m, &keyed), (&m, &secret)] {
            let c = Client::new(
                "c1".into(),
                TenantId::parse("acme").unwrap(),
                from.clone(),
                Origin::Api,
                0,
            );
            assert!(
                crate::client_update::change_metadata(
                    &c,
                    to.clone(),
                    crate::client_update::Changer::Admin,
                    1
                )
                .is_err(),
                "{:?} -> {:?}",
                from.auth_method(),
                to.auth_method()
            );
        }
    }

    #[test]
    fn application_type_is_web_or_native_and_kept() {
        let base = json!({"grant_types": ["client_credentials"], "scope": "api:read"});
        for (t, ok) in [("web", true), ("native", true), ("browser", false), ("", false)] {
            let mut md = base.clone();
            md["application_type"] = json!(t);
            let r = validate_metadata(
                &md,
                &tenant(),
                Registrant::InitialAccessToken,
                KeyHosts::LoopbackToo,
            );
            assert_eq!(r.is_ok(), ok, "{t}");
            if let Ok(m) = r {
                assert_eq!(m.to_json()["application_type"], t);
            }
        }
        let mut md = base.clone();
        md["application_type"] = json!(7);
        assert!(
            validate_metadata(
                &md,
                &tenant(),
                Registrant::InitialAccessToken,
                KeyHosts::LoopbackToo
            )
            .is_err()
        );
        assert!(
            validate_metadata(
                &base,
                &tenant(),
                Registrant::InitialAccessToken,
                KeyHosts::LoopbackToo
            )
            .unwrap()
            .application_type
            .is_none()
        );
    }

    #[test]
    fn normalises() {
        let m = validate_metadata(
            &json!({"grant_types": ["client_credentials", "client_credentials"], "scope": "api:write api:read api:read"}),
            &tenant(),
            Registrant::InitialAccessToken, KeyHosts::LoopbackToo
        )
        .unwrap();
        assert_eq!(m.grant_types, vec![GrantType::ClientCredentials]);
        assert_eq!(m.scope, "api:read api:write");
        assert_eq!(m.token_endpoint_auth_method, ClientAuthMethod::ClientSecretBasic);
        assert!(m.response_types.is_empty());
    }
}
