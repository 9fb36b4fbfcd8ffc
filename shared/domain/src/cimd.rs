//! OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document), sans IO:
//! a `client_id` that is an https URL names a JSON document at that URL holding the client's
//! metadata. What may be such a URL, what the document may say, how long a fetched document is
//! trusted, and the tenant policy that decides whose documents are accepted at all.
//!
//! A client known only by its document is a stranger: it is never first-party, it may use only
//! the authorization code grant (with refresh tokens), it has no secret (`none`, or
//! `private_key_jwt` with keys the document names), it is never issued restricted scopes, and
//! the consent page names the document's host, not just the name the document claims.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::client::{ClientMetadata, validate_metadata};
use super::grant_type::{GrantType, Registrant};
use super::tenant::Tenant;

/// Longest client id URL (it is also part of storage keys).
pub const MAX_URL: usize = 256;
/// Largest document accepted (the draft suggests 5 KB).
pub const MAX_DOCUMENT: usize = 5 * 1024;
/// A fetched document is trusted for at least this long (seconds), whatever its cache headers…
pub const MIN_FRESH: i64 = 300;
/// …and at most this long.
pub const MAX_FRESH: i64 = 86_400;
/// A redirect URI not in the stored document refetches it, at most this often (seconds).
pub const REFETCH_AFTER: i64 = 60;
/// Fetches of documents a tenant does not hold yet, per tenant per minute (a stranger chooses
/// the URL).
pub const FETCHES_PER_MINUTE: u32 = 60;
/// Refetches of a document a tenant holds, per document per minute…
pub const REFETCHES_PER_DOCUMENT: u32 = 3;
/// …and of all the documents a tenant holds, per tenant per minute (a budget of its own, so
/// that strangers naming new URLs cannot starve the clients in use).
pub const REFETCHES_PER_MINUTE: u32 = 300;

/// A tenant's policy on metadata-document clients.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CimdPolicy {
    /// None accepted (the default).
    #[default]
    Deny,
    /// Any public host's documents.
    Allow,
    /// Only documents on these hosts (exact, lower-case host names).
    Hosts(BTreeSet<String>),
}

/// Hosts a tenant may list.
pub const MAX_HOSTS: usize = 100;

impl CimdPolicy {
    /// Whether documents at `host` are accepted.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            CimdPolicy::Deny => false,
            CimdPolicy::Allow => true,
            CimdPolicy::Hosts(h) => h.contains(&host.to_ascii_lowercase()),
        }
    }

    /// Whether any document could be accepted (discovery advertises support only then).
    pub fn enabled(&self) -> bool {
        match self {
            CimdPolicy::Deny => false,
            CimdPolicy::Allow => true,
            CimdPolicy::Hosts(h) => !h.is_empty(),
        }
    }

    /// A host list, checked: each a DNS name (letters, digits, `-`, `.`), at most [`MAX_HOSTS`].
    pub fn hosts<I: IntoIterator<Item = String>>(hosts: I) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for h in hosts {
            let h = h.trim().to_ascii_lowercase();
            let ok = !h.is_empty()
                && h.len() <= 253
                && !h.starts_with('.')
                && !h.ends_with('.')
                && !h.contains("..")
                && h.split_once(':')
                    .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0))
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':');
            if !ok {
                return Err(format!("{:.64} is not a host name", h.escape_debug()));
            }
            set.insert(h);
        }
        if set.len() > MAX_HOSTS {
            return Err(format!("at most {MAX_HOSTS} hosts"));
        }
        Ok(CimdPolicy::Hosts(set))
    }

    /// As the admin API and the CLI show it: `"deny"`, `"allow"`, or the host list.
    pub fn to_json(&self) -> Value {
        match self {
            CimdPolicy::Deny => Value::from("deny"),
            CimdPolicy::Allow => Value::from("allow"),
            CimdPolicy::Hosts(h) => Value::from(h.iter().cloned().collect::<Vec<_>>()),
        }
    }
}

/// Whether a `client_id` is a URL (then it can only be a metadata-document client: the ids
/// this server issues never contain `:`).
pub fn is_url_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Check a client id URL (draft §3): https (plain http only to loopback, and only when the issuer
/// itself is loopback http), a path component, no `.` or `..` segments, no fragment, no
/// userinfo, written exactly as the URL parser serialises it, at most [`MAX_URL`] bytes.
/// Returns its host.
pub fn check_url(client_id: &str, allow_loopback_http: bool) -> Result<String, &'static str> {
    if client_id.len() > MAX_URL {
        return Err("the client id URL is too long");
    }
    let u = Url::parse(client_id).map_err(|_| "the client id is not a URL")?;
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) if allow_loopback_http && ip.is_loopback() => ip.to_string(),
        Some(url::Host::Ipv6(ip)) if allow_loopback_http && ip.is_loopback() => format!("[{ip}]"),
        Some(_) => return Err("the client id URL must name a host, not an address"),
        None => return Err("the client id URL has no host"),
    };
    let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    match u.scheme() {
        "https" => {}
        "http" if allow_loopback_http && loopback => {}
        _ => return Err("the client id URL must be https"),
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("the client id URL must not contain userinfo");
    }
    if u.fragment().is_some() || client_id.contains('#') {
        return Err("the client id URL must not contain a fragment");
    }
    // Segments as written: the parser would silently resolve them away.
    let after_host = client_id
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))
        .unwrap_or("");
    let path_only = after_host.split('?').next().unwrap_or("");
    if path_only.is_empty() || path_only == "/" {
        return Err("the client id URL must have a path");
    }
    if path_only.split('/').any(|s| {
        let s = s.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    }) {
        return Err("the client id URL must not contain dot segments");
    }
    if u.as_str() != client_id {
        return Err("the client id URL is not in canonical form");
    }
    Ok(site(&u).unwrap_or(host))
}

/// What users are shown and the tenant's host list is matched against: the URL's host, with its
/// port when one other than the scheme's is given (`app.example.com:8443` is another site than
/// `app.example.com`), except on loopback, where ports come and go (RFC 8252 §7.3).
pub fn site(u: &Url) -> Option<String> {
    let host = u.host_str()?;
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    Some(match u.port() {
        Some(p) if !loopback => format!("{host}:{p}"),
        _ => host.to_string(),
    })
}

/// Validate a fetched document for the client id `url` (draft §4), against the tenant's
/// catalog: its `client_id` equals the URL (simple string comparison); no shared secret (no
/// `client_secret`, `client_secret_expires_at`, nor a `client_secret_*` auth method); the
/// authorization code grant only (with `refresh_token`); otherwise the same checks as a DCR
/// registration. A document naming no `scope` may ask for the tenant's unrestricted catalog.
pub fn validate_document(
    doc: &Value,
    url: &str,
    tenant: &Tenant,
    key_hosts: crate::net::KeyHosts,
) -> Result<ClientMetadata, String> {
    let obj = doc.as_object().ok_or("the document is not a JSON object")?;
    if obj.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err("the document's client_id is not its URL".into());
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if obj.contains_key(secret) {
            return Err(format!("the document must not contain {secret}"));
        }
    }
    let method = obj
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none");
    if method != "none" && method != "private_key_jwt" {
        return Err("token_endpoint_auth_method must be none or private_key_jwt".into());
    }
    let mut input = obj.clone();
    input.remove("client_id");
    input.insert("token_endpoint_auth_method".into(), Value::from(method));
    if !input.contains_key("scope") || input.get("scope").is_some_and(Value::is_null) {
        let open: Vec<&str> = tenant
            .scopes
            .keys()
            .filter(|s| !tenant.restricted_scopes.contains(*s))
            .map(String::as_str)
            .collect();
        input.insert("scope".into(), Value::from(open.join(" ")));
    }
    let md = validate_metadata(&Value::Object(input), tenant, Registrant::Anonymous, key_hosts)
        .map_err(|e| e.reason)?;
    let code_only = md
        .grant_types
        .iter()
        .all(|g| matches!(g, GrantType::AuthorizationCode | GrantType::RefreshToken));
    if !code_only || !md.allows_grant(GrantType::AuthorizationCode) {
        return Err("a metadata-document client may use authorization_code (and refresh_token) only".into());
    }
    Ok(md)
}

/// How long a document fetched at `now` is trusted: its `Cache-Control: max-age` (none, or
/// `no-store`/`no-cache`: the minimum) within [`MIN_FRESH`]..=[`MAX_FRESH`].
pub fn fresh_until(now: i64, max_age: Option<i64>) -> i64 {
    now + max_age.unwrap_or(MIN_FRESH).clamp(MIN_FRESH, MAX_FRESH)
}

/// What a stored document is worth for an authorization request at `now` with `redirect_uri`.
#[derive(Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Use it.
    Use,
    /// Fetch it again (too old, or the redirect URI is new and the last fetch is over a minute
    /// old); a failed refetch of a [`Freshness::Stale`] document is a refusal.
    Refetch,
    /// Too old: fetch it again, and refuse if that fails.
    Stale,
}

/// See [`Freshness`].
pub fn freshness(
    md: &ClientMetadata,
    state: &DocumentState,
    redirect_uri: Option<&str>,
    now: i64,
) -> Freshness {
    if now >= state.fresh_until {
        return Freshness::Stale;
    }
    let known = redirect_uri.is_none_or(|r| md.redirect_uris.iter().any(|u| u == r));
    if !known && now - state.fetched_at >= REFETCH_AFTER {
        return Freshness::Refetch;
    }
    Freshness::Use
}

/// When a stored document was fetched and until when it is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentState {
    pub fetched_at: i64,
    pub fresh_until: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant_type::ClientAuthMethod;
    use crate::tenant::{DcrPolicy, TenantId};
    use serde_json::json;

    fn tenant() -> Tenant {
        let mut t = Tenant::new(TenantId::parse("acme").unwrap(), DcrPolicy::Token, None, 0);
        t.scopes.insert("files:admin".into(), "Administer files".into());
        t.restricted_scopes.insert("files:admin".into());
        t
    }

    const URL: &str = "https://app.example.com/oauth/client.json";

    fn doc() -> Value {
        json!({
            "client_id": URL,
            "client_name": "Example App",
            "redirect_uris": ["https://app.example.com/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        })
    }

    #[test]
    fn client_id_urls() {
        assert_eq!(check_url(URL, false), Ok("app.example.com".into()));
        assert_eq!(
            check_url("http://127.0.0.1:8080/c.json", true),
            Ok("127.0.0.1".into())
        );
        for bad in [
            "http://app.example.com/client.json",
            "https://app.example.com",
            "https://app.example.com/",
            "https://app.example.com/a/../b.json",
            "https://app.example.com/a/./b.json",
            "https://app.example.com/a/%2e%2e/b.json",
            "https://app.example.com/a/.%2E/b.json",
            "https://app.example.com/c.json#frag",
            "https://user:pw@app.example.com/c.json",
            "https://user@app.example.com/c.json",
            "https://APP.example.com/c.json",
            "https://93.184.216.34/c.json",
            "https://[2606:4700::1111]/c.json",
            "http://127.0.0.1:8080/c.json",
            "ftp://app.example.com/c.json",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://app.example.com/c.json", true).is_err());
        assert!(check_url(&format!("https://a.example/{}", "x".repeat(MAX_URL)), false).is_err());
        // Another port is another site; on loopback the port does not count.
        assert_eq!(
            check_url("https://app.example.com:8443/c.json", false),
            Ok("app.example.com:8443".into())
        );
        assert_eq!(
            check_url("https://localhost:8443/c.json", true),
            Ok("localhost".into())
        );
    }

    #[test]
    fn a_good_document() {
        let md = validate_document(&doc(), URL, &tenant(), crate::net::KeyHosts::LoopbackToo).unwrap();
        assert_eq!(md.token_endpoint_auth_method, ClientAuthMethod::None);
        assert_eq!(md.redirect_uris, vec!["https://app.example.com/callback"]);
        // No scope named: the unrestricted catalog.
        assert!(md.scopes().contains("openid"));
        assert!(!md.scopes().contains("files:admin"));
    }

    #[test]
    fn documents_refused() {
        let t = tenant();
        let with = |k: &str, v: Value| {
            let mut d = doc();
            d[k] = v;
            validate_document(&d, URL, &t, crate::net::KeyHosts::LoopbackToo)
        };
        assert!(with("client_id", json!("https://evil.example/c.json")).is_err());
        assert!(with("client_id", json!(format!("{URL}/"))).is_err());
        assert!(with("client_secret", json!("s")).is_err());
        assert!(with("client_secret_expires_at", json!(0)).is_err());
        assert!(with("token_endpoint_auth_method", json!("client_secret_basic")).is_err());
        assert!(with("token_endpoint_auth_method", json!("client_secret_post")).is_err());
        assert!(with("token_endpoint_auth_method", json!("private_key_jwt")).is_err()); // no keys
        assert!(with("grant_types", json!(["client_credentials"])).is_err());
        assert!(with("grant_types", json!(["authorization_code", "client_credentials"])).is_err());
        assert!(
            with(
                "grant_types",
                json!(["urn:ietf:params:oauth:grant-type:token-exchange"])
            )
            .is_err()
        );
        assert!(with("redirect_uris", json!(["http://app.example.com/cb"])).is_err());
        assert!(with("redirect_uris", json!(["https://app.example.com/*"])).is_err());
        assert!(with("scope", json!("files:admin")).is_err());
        assert!(with("scope", json!("bulwark:admin")).is_err());
        assert!(with("first_party", json!(true)).is_err());
        assert!(validate_document(&json!([1]), URL, &t, crate::net::KeyHosts::LoopbackToo).is_err());
        let mut d = doc();
        d.as_object_mut().unwrap().remove("client_id");
        assert!(validate_document(&d, URL, &t, crate::net::KeyHosts::LoopbackToo).is_err());
        // With keys, private_key_jwt is fine.
        assert!(with("jwks_uri", json!("https://app.example.com/jwks.json")).is_err());
        let mut d = doc();
        d["token_endpoint_auth_method"] = json!("private_key_jwt");
        d["jwks_uri"] = json!("https://app.example.com/jwks.json");
        assert!(validate_document(&d, URL, &t, crate::net::KeyHosts::LoopbackToo).is_ok());
    }

    #[test]
    fn freshness_bounds() {
        assert_eq!(fresh_until(1000, None), 1000 + MIN_FRESH);
        assert_eq!(fresh_until(1000, Some(0)), 1000 + MIN_FRESH);
        assert_eq!(fresh_until(1000, Some(3600)), 4600);
        assert_eq!(fresh_until(1000, Some(10 * 86_400)), 1000 + MAX_FRESH);
        let md = validate_document(&doc(), URL, &tenant(), crate::net::KeyHosts::LoopbackToo).unwrap();
        let s = DocumentState {
            fetched_at: 1000,
            fresh_until: 1300,
        };
        assert_eq!(freshness(&md, &s, None, 1299), Freshness::Use);
        assert_eq!(freshness(&md, &s, None, 1300), Freshness::Stale);
        let known = Some("https://app.example.com/callback");
        let new = Some("https://app.example.com/other");
        assert_eq!(freshness(&md, &s, known, 1100), Freshness::Use);
        assert_eq!(freshness(&md, &s, new, 1059), Freshness::Use);
        assert_eq!(freshness(&md, &s, new, 1060), Freshness::Refetch);
    }

    #[test]
    fn policies() {
        assert!(!CimdPolicy::Deny.allows("app.example.com"));
        assert!(CimdPolicy::Allow.allows("app.example.com"));
        let p = CimdPolicy::hosts(["App.Example.com".to_string()]).unwrap();
        assert!(p.allows("app.example.com"));
        assert!(!p.allows("evil.example.com"));
        assert!(!p.allows("app.example.com.evil.example"));
        assert!(!p.allows("app.example.com:8443"));
        let ported = CimdPolicy::hosts(["app.example.com:8443".to_string()]).unwrap();
        assert!(ported.allows("app.example.com:8443") && !ported.allows("app.example.com"));
        assert!(CimdPolicy::hosts(["app.example.com:x".to_string()]).is_err());
        assert!(CimdPolicy::hosts(["app.example.com:0".to_string()]).is_err());
        assert!(CimdPolicy::hosts(["a:1:2".to_string()]).is_err());
        assert!(CimdPolicy::hosts(["a b".to_string()]).is_err());
        assert!(CimdPolicy::hosts(["*.example.com".to_string()]).is_err());
        assert_eq!(CimdPolicy::Allow.to_json(), json!("allow"));
        assert_eq!(p.to_json(), json!(["app.example.com"]));
        assert!(!CimdPolicy::Hosts(BTreeSet::new()).enabled());
        // Stored tenants from before the policy existed deny.
        assert_eq!(CimdPolicy::default(), CimdPolicy::Deny);
    }
}
