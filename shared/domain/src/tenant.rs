//! Tenants: ids and per-tenant configuration.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A tenant id: `[a-z0-9-]{1,63}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err("a tenant id is 1 to 63 of [a-z0-9-]".to_string())
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TenantId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

crate::id_reads_as_str!(TenantId);

/// Who may register clients through `POST /oauth2/register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DcrPolicy {
    /// Anyone who knows the tenant id.
    Open,
    /// Only with an initial access token issued by the tenant admin (the default).
    #[default]
    Token,
    /// Nobody; clients are created by the admin only.
    Closed,
}

impl DcrPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "token" => Some(Self::Token),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Token => "token",
            Self::Closed => "closed",
        }
    }
}

/// The scopes every new tenant's catalog starts with.
pub const SEED_SCOPES: [(&str, &str); 5] = [
    ("openid", "Sign you in and know who you are"),
    ("profile", "See your name and basic profile"),
    ("email", "See your email address"),
    ("offline_access", "Keep access while you are away"),
    ("agent:act", "Let an agent act on your behalf"),
];

/// A tenant's configuration, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub dcr_policy: DcrPolicy,
    /// Scope catalog: name → description shown to users.
    pub scopes: BTreeMap<String, String>,
    /// Catalog scopes only operator/admin-made clients may hold (DCR and RFC 7592 are refused
    /// them, and a DCR client is never issued one).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub restricted_scopes: BTreeSet<String>,
    /// RFC 8707 resource indicators clients may ask for; a token's `aud` is one of these.
    pub resources: Vec<String>,
    /// Display names of some of `resources` (resource → name), shown on the consent page next
    /// to the URI. Set by the tenant, so trusted; absent in items written before names existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_names: BTreeMap<String, String>,
    /// `aud` of a token requested without `resource`.
    pub default_audience: String,
    /// Access-token lifetime in seconds; `None`: the deployment's default.
    #[serde(default)]
    pub access_token_ttl: Option<i64>,
    /// Refresh-token lifetimes in seconds (idle: since the last use; absolute: since the login);
    /// `None`: the deployment's defaults (30 and 90 days).
    #[serde(default)]
    pub refresh_idle_ttl: Option<i64>,
    #[serde(default)]
    pub refresh_absolute_ttl: Option<i64>,
    /// Whether the deprecated password grant is allowed (RFC 9700 §2.4: off unless opted in).
    #[serde(default)]
    pub password_grant: bool,
    /// Browser-session lifetime in seconds; `None`: the default (12 hours).
    #[serde(default)]
    pub session_ttl: Option<i64>,
    /// External identity providers whose signed assertions the JWT bearer grant accepts
    /// (RFC 7523 §2.1), for users linked to a subject of theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// The app allowlist: when set, users may authorize only these apps (client ids), and
    /// their grants to any other app stop working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_allowlist: Option<std::collections::BTreeSet<String>>,
    /// Which Client ID Metadata Documents are accepted (`domain::cimd`); none by default.
    #[serde(default, skip_serializing_if = "is_deny")]
    pub cimd: crate::cimd::CimdPolicy,
    /// How far ahead a `private_key_jwt` client assertion's `exp` may be, in seconds; `None`:
    /// [`crate::assertion::MAX_ASSERTION_LIFETIME`] (an hour). Only shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion_max_lifetime: Option<i64>,
    /// RFC 9449 §8: every DPoP proof at the token endpoint must carry a nonce this server
    /// issued (`use_dpop_nonce` otherwise); off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_nonce_required: bool,
    /// RFC 9126 §5: every client of the tenant sends its authorization requests only by the
    /// pushed authorization request endpoint (`set-policy --par required`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    pub created_at: i64,
}

/// An identity provider a tenant trusts: its issuer identifier and its keys (inline, or where
/// it publishes them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrustedIssuer {
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Whether its assertions are Identity Assertion JWT Authorization Grants
    /// (`domain::id_jag`): then only those (typed `oauth-id-jag+jwt`, naming the client that
    /// presents them), and no plain assertion, are taken from it; otherwise only plain ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub id_jag: bool,
    /// For an ID-JAG issuer that serves many tenants of its own under one issuer identifier
    /// (whose subjects are unique only within each): the one of its tenants whose ID-JAGs are
    /// taken. Their `tenant` claim must then be this; without it, the claim is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_tenant: Option<String>,
    /// Trusted for workloads (`issuer add --workload`): its tokens authenticate `federated`
    /// clients (`domain::workload`), and it is not a user federation's issuer (the JWT bearer
    /// grant takes no assertion from it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub workload: bool,
    /// For a workload issuer that mints a token per request (GitHub Actions): every `jti` is
    /// good once. Otherwise a token may authenticate again until it expires (a Kubernetes pod
    /// rereads its projected token until the kubelet rotates it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_use: bool,
}

impl TrustedIssuer {
    /// The profile flags that go together: `single_use` only for a workload issuer, a workload
    /// issuer not an ID-JAG one (nor with its `idp_tenant`).
    pub fn check_profile(&self) -> Result<(), String> {
        if self.single_use && !self.workload {
            return Err("--single-use is for a workload issuer (--workload)".into());
        }
        if self.workload && (self.id_jag || self.idp_tenant.is_some()) {
            return Err(
                "a workload issuer (--workload) is not an ID-JAG issuer (--id-jag, --idp-tenant)".into(),
            );
        }
        Ok(())
    }
}

/// Check an identity provider's tenant name as given to `issuer add --idp-tenant`: 1 to 128
/// printable ASCII characters, no spaces.
pub fn check_idp_tenant(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 128 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("an identity provider's tenant is 1 to 128 printable ASCII characters".into());
    }
    Ok(())
}

impl Tenant {
    /// How far ahead a client assertion's `exp` may be here (see
    /// [`Tenant::client_assertion_max_lifetime`]).
    pub fn client_assertion_lifetime(&self) -> i64 {
        use crate::assertion::{MAX_ASSERTION_LIFETIME, MIN_ASSERTION_LIFETIME};
        self.client_assertion_max_lifetime
            .unwrap_or(MAX_ASSERTION_LIFETIME)
            .clamp(MIN_ASSERTION_LIFETIME, MAX_ASSERTION_LIFETIME)
    }

    /// The trusted issuer with this identifier (compared as strings).
    pub fn trusted_issuer(&self, iss: &str) -> Option<&TrustedIssuer> {
        self.trusted_issuers.iter().find(|t| t.issuer == iss)
    }
}

fn is_deny(p: &crate::cimd::CimdPolicy) -> bool {
    *p == crate::cimd::CimdPolicy::Deny
}

/// The longest display name of a resource, in characters.
pub const MAX_RESOURCE_NAME: usize = 80;

/// A resource's display name as stored: trimmed, 1 to [`MAX_RESOURCE_NAME`] characters, no
/// control or invisible formatting characters (the page escapes it; this keeps it legible).
pub fn resource_name(s: &str) -> Result<String, String> {
    let n = s.trim();
    if n.is_empty() || n.chars().count() > MAX_RESOURCE_NAME || !crate::client::is_displayable(n) {
        return Err(format!(
            "a resource name is 1 to {MAX_RESOURCE_NAME} printable characters"
        ));
    }
    Ok(n.to_string())
}

impl Tenant {
    /// The display name of a resource, if the tenant gave it one.
    pub fn resource_name(&self, resource: &str) -> Option<&str> {
        self.resource_names.get(resource).map(String::as_str)
    }
}

impl Tenant {
    /// A new tenant with the seed scope catalog.
    pub fn new(id: TenantId, dcr_policy: DcrPolicy, default_audience: Option<String>, now: i64) -> Self {
        let default_audience = default_audience.unwrap_or_else(|| format!("urn:bulwark:tenant:{id}"));
        Self {
            scopes: SEED_SCOPES
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect(),
            restricted_scopes: BTreeSet::new(),
            resources: vec![default_audience.clone()],
            resource_names: BTreeMap::new(),
            default_audience,
            id,
            dcr_policy,
            access_token_ttl: None,
            refresh_idle_ttl: None,
            refresh_absolute_ttl: None,
            password_grant: false,
            session_ttl: None,
            trusted_issuers: Vec::new(),
            app_allowlist: None,
            cimd: Default::default(),
            client_assertion_max_lifetime: None,
            dpop_nonce_required: false,
            require_pushed_authorization_requests: false,
            created_at: now,
        }
    }
}

/// An initial access token (RFC 7591 §3), as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InitialAccessToken {
    pub tenant: TenantId,
    /// 0 = unlimited.
    pub max_uses: u32,
    pub uses: u32,
    pub created_at: i64,
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        for (s, ok) in [
            ("acme", true),
            ("a", true),
            ("acme-2", true),
            (&"a".repeat(63), true),
            (&"a".repeat(64), false),
            ("", false),
            ("Acme", false),
            ("acme_2", false),
            ("ac me", false),
            ("acmé", false),
        ] {
            assert_eq!(TenantId::parse(s).is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn resource_names() {
        let long = "a".repeat(MAX_RESOURCE_NAME);
        let too_long = "a".repeat(MAX_RESOURCE_NAME + 1);
        let wide = "é".repeat(MAX_RESOURCE_NAME);
        for (s, expected) in [
            ("Acme Files", Some("Acme Files")),
            ("  Acme Files \t", Some("Acme Files")),
            ("<b>Files</b>", Some("<b>Files</b>")), // escaped by the page, not refused
            (long.as_str(), Some(long.as_str())),
            (wide.as_str(), Some(wide.as_str())), // characters, not bytes
            (too_long.as_str(), None),
            ("", None),
            ("   ", None),
            ("Acme\nFiles", None),
            ("Acme\u{202e}seliF", None),
            ("Acme\u{200b}Files", None),
        ] {
            assert_eq!(resource_name(s).ok().as_deref(), expected, "{s:?}");
        }
    }

    #[test]
    fn a_tenant_stored_before_resource_names_loads() {
        let mut v = serde_json::to_value(Tenant::new(
            TenantId::parse("acme").unwrap(),
            DcrPolicy::Token,
            None,
            0,
        ))
        .unwrap();
        assert!(v.get("resource_names").is_none(), "not written while empty");
        v.as_object_mut().unwrap().remove("resource_names");
        let t: Tenant = serde_json::from_value(v).unwrap();
        assert!(t.resource_names.is_empty());
        assert_eq!(t.resource_name("urn:bulwark:tenant:acme"), None);
    }

    #[test]
    fn new_tenant_has_seed_scopes_and_a_default_audience() {
        let t = Tenant::new(TenantId::parse("acme").unwrap(), DcrPolicy::Token, None, 0);
        for s in ["openid", "profile", "email", "offline_access", "agent:act"] {
            assert!(t.scopes.contains_key(s), "{s}");
        }
        assert_eq!(t.default_audience, "urn:bulwark:tenant:acme");
        assert_eq!(t.resources, vec![t.default_audience.clone()]);
    }
}
