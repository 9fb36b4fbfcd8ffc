//! The authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect Core §3.1.2), sans IO:
//! which requests are refused on our own error page, which are answered by a redirect, and the
//! PKCE and redirect-URI rules of RFC 9700.

use crate::id::ClientId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use super::client::Client;
use super::params::Params;
use super::scope::{ScopeSet, grant_scope};

/// A validated authorization request, kept while the user logs in and consents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: ClientId,
    /// The registered redirect URI the request named (or the only one registered).
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri` (then the token request must repeat it).
    pub redirect_uri_explicit: bool,
    /// Space-separated, canonical.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// S256 code challenge.
    pub code_challenge: String,
    #[serde(default)]
    pub prompt: Prompt,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// RFC 8707 resources the request names (each one of the tenant's, checked by the
    /// service): the grant's tokens are for these and nothing else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is bound to; it is redeemed only
    /// with a proof of that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<crate::dpop::Jkt>,
}

impl AuthRequest {
    pub fn scopes(&self) -> ScopeSet {
        ScopeSet::parse(&self.scope).unwrap_or_default()
    }
}

/// OpenID Connect `prompt`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The redirect URI cannot be trusted: say so on our own page, never redirect.
    Page(UntrustedRedirect),
    /// The redirect URI is verified: send the error back to the client.
    Redirect {
        redirect_uri: String,
        error: AuthzError,
        description: String,
        state: Option<String>,
    },
}

/// The error codes an authorization request is refused with (RFC 6749 §4.1.2.1, RFC 8707,
/// OpenID Connect Core §3.1.2.6): in the redirect to the client, or in the JSON answer of the
/// pushed authorization request endpoint (RFC 9126 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthzError {
    InvalidRequest,
    UnsupportedResponseType,
    UnauthorizedClient,
    InvalidScope,
    InvalidTarget,
    RequestNotSupported,
}

impl AuthzError {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthzError::InvalidRequest => "invalid_request",
            AuthzError::UnsupportedResponseType => "unsupported_response_type",
            AuthzError::UnauthorizedClient => "unauthorized_client",
            AuthzError::InvalidScope => "invalid_scope",
            AuthzError::InvalidTarget => "invalid_target",
            AuthzError::RequestNotSupported => "request_not_supported",
        }
    }
}

/// Why a request's redirect URI cannot be used (the words are the page's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UntrustedRedirect {
    /// Not one the client registered.
    NotRegistered,
    /// None given, and the client registered several.
    Missing,
}

const MAX_STATE: usize = 2048;

/// Whether `presented` is one of the client's registered redirect URIs: the exact string,
/// except that for an `http` loopback IP literal the port may differ (RFC 8252 §7.3). That
/// exception compares the strings too, port aside: no parsing, so no normalisation
/// (`http://127.1/`, `HTTP://`, `/x/../`, a trailing dot or an encoded IP never match).
pub fn redirect_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| crate::secret::ct_eq_str(r, presented)) {
        return true;
    }
    let Some((host, rest)) = split_loopback(presented) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|r| split_loopback(r))
        .any(|(h, r)| h == host && r == rest)
}

/// `http://<loopback IP literal>[:port]<rest>` → (the IP literal, rest), for exactly the two
/// spellings browsers and native apps use (`127.0.0.1`, `[::1]`); the port, if present, is
/// 1–5 digits.
fn split_loopback(uri: &str) -> Option<(&str, &str)> {
    let after = uri.strip_prefix("http://")?;
    let host = ["127.0.0.1", "[::1]"]
        .into_iter()
        .find(|h| after.starts_with(h))?;
    let mut rest = &after[host.len()..];
    if let Some(port_and_rest) = rest.strip_prefix(':') {
        let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=5).contains(&digits) {
            return None;
        }
        rest = &port_and_rest[digits..];
    }
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) {
        return None;
    }
    Some((host, rest))
}

/// Validate an authorization request for `client` (already looked up by `client_id`; an
/// unknown client is the caller's own page refusal) that may be issued `allowed` scopes.
/// Most RFC 8707 resources one authorization request may name.
pub const MAX_RESOURCES: usize = 10;

pub fn validate(p: &Params, client: &Client, allowed: &ScopeSet) -> Result<AuthRequest, Refusal> {
    let registered = &client.metadata.redirect_uris;
    let (redirect_uri, explicit) = match p.get("redirect_uri") {
        Some(r) if redirect_matches(registered, r) => (r.to_string(), true),
        Some(_) => {
            return Err(Refusal::Page(UntrustedRedirect::NotRegistered));
        }
        None if registered.len() == 1 => (registered[0].clone(), false),
        None => {
            return Err(Refusal::Page(UntrustedRedirect::Missing));
        }
    };
    let state = p.get("state").map(str::to_string);
    let refuse = |error: AuthzError, description: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description: description.to_string(),
        state: state.clone().filter(|s| s.len() <= MAX_STATE),
    };
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE) {
        return Err(refuse(AuthzError::InvalidRequest, "state is too long"));
    }
    if p.get("request").is_some() {
        return Err(refuse(
            AuthzError::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    // A request_uri names a pushed request (RFC 9126): the authorization endpoint takes it
    // before anything else, and a pushed request cannot name another (§2.1).
    if p.get("request_uri").is_some() {
        return Err(refuse(
            AuthzError::InvalidRequest,
            "request_uri is accepted only with client_id, naming a pushed authorization request",
        ));
    }
    match p.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                AuthzError::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(refuse(
                AuthzError::InvalidRequest,
                "missing parameter response_type",
            ));
        }
    }
    if let Some(mode) = p.get("response_mode")
        && mode != "query"
    {
        return Err(refuse(
            AuthzError::InvalidRequest,
            "only response_mode=query is supported",
        ));
    }
    if !client
        .metadata
        .allows_grant(crate::grant_type::GrantType::AuthorizationCode)
    {
        return Err(refuse(
            AuthzError::UnauthorizedClient,
            "this client is not allowed the authorization_code grant",
        ));
    }
    let code_challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (None, _) => {
            return Err(refuse(
                AuthzError::InvalidRequest,
                "PKCE is required: send code_challenge",
            ));
        }
        (Some(_), None | Some("plain")) => {
            return Err(refuse(
                AuthzError::InvalidRequest,
                "code_challenge_method must be S256",
            ));
        }
        (Some(c), Some("S256")) => {
            if c.len() != 43
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(refuse(
                    AuthzError::InvalidRequest,
                    "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
                ));
            }
            c.to_string()
        }
        (Some(_), Some(_)) => {
            return Err(refuse(
                AuthzError::InvalidRequest,
                "code_challenge_method must be S256",
            ));
        }
    };
    let scope = grant_scope(p.get("scope"), allowed).map_err(|d| refuse(AuthzError::InvalidScope, &d))?;
    let mut prompt = Prompt::default();
    if let Some(ps) = p.get("prompt") {
        for v in ps.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => return Err(refuse(AuthzError::InvalidRequest, "unknown prompt value")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(refuse(
                AuthzError::InvalidRequest,
                "prompt=none cannot be combined",
            ));
        }
    }
    let max_age = match p.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(refuse(
                    AuthzError::InvalidRequest,
                    "max_age must be a non-negative integer",
                ));
            }
        },
    };
    let nonce = p.get("nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(refuse(AuthzError::InvalidRequest, "nonce is too long"));
    }
    let login_hint = p.get("login_hint").filter(|h| h.len() <= 256).map(str::to_string);
    let mut resources: Vec<String> = Vec::new();
    for r in p.all("resource") {
        if !resources.contains(r) {
            resources.push(r.clone());
        }
    }
    if resources.len() > MAX_RESOURCES {
        return Err(refuse(
            AuthzError::InvalidTarget,
            &format!("name at most {MAX_RESOURCES} resources"),
        ));
    }
    let dpop_jkt = match p.get("dpop_jkt") {
        None => None,
        Some(j) => Some(crate::dpop::Jkt::parse(j).ok_or_else(|| {
            refuse(
                AuthzError::InvalidRequest,
                "dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638, base64url)",
            )
        })?),
    };
    Ok(AuthRequest {
        resources,
        dpop_jkt,
        client_id: client.client_id.clone(),
        redirect_uri,
        redirect_uri_explicit: explicit,
        scope: scope.to_scope_string(),
        state,
        nonce,
        code_challenge,
        prompt,
        max_age,
        login_hint,
    })
}

/// RFC 9126 §2.2: how every `request_uri` the pushed authorization request endpoint issues
/// begins; the rest is a random reference (a 256-bit secret, base64url).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The random reference of a `request_uri` of ours (`None`: not one we could have issued).
pub fn pushed_reference(request_uri: &str) -> Option<&str> {
    let r = request_uri.strip_prefix(REQUEST_URI_PREFIX)?;
    let ok = (1..=128).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(r)
}

/// Whether `client` may send its authorization requests only by the pushed authorization
/// request endpoint (RFC 9126 §5, §6): its own metadata, or its tenant's policy, says so.
pub fn pushed_requests_required(client: &Client, tenant: &crate::tenant::Tenant) -> bool {
    client.metadata.require_pushed_authorization_requests || tenant.require_pushed_authorization_requests
}

/// Whether a user's consent covers the RFC 8707 resources a request names. `consented`:
/// `None` when there is no (current) consent; `Some(None)` for a consent given without naming
/// resources (its grants may get tokens for any of the tenant's resources, so it covers any);
/// `Some(Some(set))` for one given for those resources only (it covers requests that name
/// only resources in it — never one that names none, which would reach them all).
pub fn resources_covered(consented: Option<&Option<Vec<String>>>, requested: &[String]) -> bool {
    match consented {
        None => requested.is_empty(),
        Some(None) => true,
        Some(Some(set)) => !requested.is_empty() && requested.iter().all(|r| set.contains(r)),
    }
}

/// The resources a consent holds after the user approves a request naming `requested`: the
/// widest of the two (`None` is unbound).
pub fn merged_resources(
    consented: Option<&Option<Vec<String>>>,
    requested: &[String],
) -> Option<Vec<String>> {
    if requested.is_empty() {
        return None;
    }
    match consented {
        Some(None) => None,
        Some(Some(set)) => {
            let mut all = set.clone();
            for r in requested {
                if !all.contains(r) {
                    all.push(r.clone());
                }
            }
            Some(all)
        }
        None => Some(requested.to_vec()),
    }
}

/// `base64url(SHA-256(verifier))`, the S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1 verifier syntax and the S256 check, in constant time.
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    let syntax = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    syntax && crate::secret::ct_eq_str(&s256(verifier), challenge)
}

/// `base` with `params` added to its query (existing query parameters kept).
pub fn redirect_with(base: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(base) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => base.to_string(),
    }
}

/// Whether a login at `auth_time` is fresh enough for `max_age` at `now`.
pub fn login_fresh(auth_time: i64, max_age: Option<i64>, now: i64) -> bool {
    max_age.is_none_or(|m| now - auth_time <= m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant_type::{ClientAuthMethod, GrantType};

    #[test]
    fn a_consent_covers_the_resources_it_was_given_for() {
        let files = vec!["https://files.example".to_string()];
        let both = vec![
            "https://files.example".to_string(),
            "https://mail.example".to_string(),
        ];
        let mail = vec!["https://mail.example".to_string()];
        let none: Vec<String> = Vec::new();
        // No consent: only a request naming none is (vacuously) covered on resources.
        assert!(resources_covered(None, &none));
        assert!(!resources_covered(None, &files));
        // Unbound consent: covers anything.
        assert!(resources_covered(Some(&None), &files) && resources_covered(Some(&None), &none));
        // Bound consent: only what it names, never an unbound request.
        let bound = Some(files.clone());
        assert!(resources_covered(Some(&bound), &files));
        assert!(!resources_covered(Some(&bound), &mail));
        assert!(!resources_covered(Some(&bound), &both));
        assert!(!resources_covered(Some(&bound), &none));
        // Approving widens.
        assert_eq!(merged_resources(None, &files), Some(files.clone()));
        assert_eq!(merged_resources(Some(&bound), &mail), Some(both.clone()));
        assert_eq!(merged_resources(Some(&bound), &none), None);
        assert_eq!(merged_resources(Some(&None), &files), None);
    }
    use crate::client::{ClientMetadata, Origin};
    use crate::tenant::TenantId;

    fn client(redirects: &[&str]) -> Client {
        Client::new(
            "c1".into(),
            TenantId::parse("acme").unwrap(),
            ClientMetadata {
                redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
                grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                response_types: vec!["code".into()],
                token_endpoint_auth_method: ClientAuthMethod::None,
                client_name: None,
                client_uri: None,
                logo_uri: None,
                tos_uri: None,
                policy_uri: None,
                scope: "openid profile".into(),
                contacts: vec![],
                software_id: None,
                software_version: None,
                jwks: None,
                jwks_uri: None,
                application_type: None,
                dpop_bound_access_tokens: false,
                require_pushed_authorization_requests: false,
                federated_credential: None,
            },
            Origin::Admin,
            0,
        )
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn params(s: &str) -> Params {
        Params::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn redirect_matching() {
        let reg = vec![
            "https://app.example/cb".to_string(),
            "http://127.0.0.1/cb".to_string(),
            "http://[::1]:8000/cb".to_string(),
        ];
        for (uri, ok) in [
            ("https://app.example/cb", true),
            ("https://app.example/cb/", false),
            ("https://app.example/cb?x=1", false),
            ("https://APP.example/cb", false),
            ("https://app.example:443/cb", false),
            ("https://app.example.evil/cb", false),
            ("http://app.example/cb", false),
            ("http://127.0.0.1:51234/cb", true),
            ("http://127.0.0.1/cb", true),
            ("http://127.0.0.1:5/other", false),
            ("http://localhost:5/cb", false),
            ("http://[::1]:9/cb", true),
            ("http://127.0.0.2:9/cb", false),
            // RFC 8252 §7.3 allows a different port, nothing else: no normalisation.
            ("http://127.1/cb", false),
            ("http://2130706433/cb", false),
            ("http://0x7f.0.0.1/cb", false),
            ("http://0177.0.0.1/cb", false),
            ("HTTP://127.0.0.1/cb", false),
            ("http://127.0.0.1/x/../cb", false),
            ("http://127.0.0.1/./cb", false),
            ("http://127.0.0.1./cb", false),
            ("http://127.0.0.1:/cb", false),
            ("http://127.0.0.1:123456/cb", false),
            ("http://127.0.0.1:80/cb", true),
            ("http://127.0.0.1/cb/", false),
            ("http://127.0.0.1/CB", false),
            ("http://127.0.0.1/cb?x", false),
            ("http://127.0.0.1%2fcb", false),
            ("http://127.0.0.1@evil.example/cb", false),
            ("http://[0:0:0:0:0:0:0:1]:9/cb", false),
            ("http://[::1]/cb", true),
        ] {
            assert_eq!(redirect_matches(&reg, uri), ok, "{uri}");
        }
    }

    #[test]
    fn pkce() {
        // RFC 7636 appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(s256(v), CHALLENGE);
        assert!(verify_pkce(v, CHALLENGE));
        assert!(!verify_pkce(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            CHALLENGE
        ));
        assert!(!verify_pkce("short", &s256("short")));
        assert!(!verify_pkce(&format!("{v}!"), &s256(&format!("{v}!"))));
    }

    #[test]
    fn requests() {
        let c = client(&["https://app.example/cb"]);
        let ok =
            format!("response_type=code&client_id=c1&code_challenge={CHALLENGE}&code_challenge_method=S256");
        let all = c.metadata.scopes();
        let validate = |p: &Params, c: &Client| validate(p, c, &all);
        let r = validate(&params(&format!("{ok}&state=xyz&scope=openid&nonce=n")), &c).unwrap();
        assert_eq!(r.redirect_uri, "https://app.example/cb");
        assert!(!r.redirect_uri_explicit);
        assert_eq!((r.scope.as_str(), r.state.as_deref()), ("openid", Some("xyz")));
        let r = validate(&params(&ok), &c).unwrap();
        assert_eq!(r.scope, "openid profile", "defaults to the registered scopes");

        assert!(matches!(
            validate(
                &params(&format!("{ok}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb")),
                &c
            ),
            Err(Refusal::Page(UntrustedRedirect::NotRegistered))
        ));
        let two = client(&["https://a.example/cb", "https://b.example/cb"]);
        assert!(matches!(
            validate(&params(&ok), &two),
            Err(Refusal::Page(UntrustedRedirect::Missing))
        ));

        let err = |q: &str| match validate(&params(q), &c) {
            Err(Refusal::Redirect { error, state, .. }) => (error.as_str(), state),
            other => panic!("{q}: {other:?}"),
        };
        assert_eq!(
            err(&format!(
                "response_type=token&client_id=c1&code_challenge={CHALLENGE}&code_challenge_method=S256&state=s"
            )),
            ("unsupported_response_type", Some("s".into()))
        );
        assert_eq!(err("response_type=code&client_id=c1").0, "invalid_request");
        assert_eq!(
            err(&format!(
                "response_type=code&client_id=c1&code_challenge={CHALLENGE}"
            ))
            .0,
            "invalid_request"
        );
        assert_eq!(
            err(&format!(
                "response_type=code&client_id=c1&code_challenge={CHALLENGE}&code_challenge_method=plain"
            ))
            .0,
            "invalid_request"
        );
        assert_eq!(err(&format!("{ok}&scope=admin")).0, "invalid_scope");
        assert_eq!(err(&format!("{ok}&prompt=none%20login")).0, "invalid_request");
        assert_eq!(err(&format!("{ok}&max_age=-1")).0, "invalid_request");
        assert_eq!(err(&format!("{ok}&request=x")).0, "request_not_supported");
        // A pushed request cannot name another (RFC 9126 §2.1).
        assert_eq!(
            err(&format!(
                "{ok}&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax"
            ))
            .0,
            "invalid_request"
        );
        assert_eq!(err(&format!("{ok}&response_mode=fragment")).0, "invalid_request");

        let mut cc = c.clone();
        cc.metadata.grant_types = vec![GrantType::ClientCredentials];
        assert!(matches!(
            validate(&params(&ok), &cc),
            Err(Refusal::Redirect {
                error: AuthzError::UnauthorizedClient,
                ..
            })
        ));
    }

    #[test]
    fn request_uris() {
        for (uri, reference) in [
            ("urn:ietf:params:oauth:request_uri:abc-_1", Some("abc-_1")),
            ("urn:ietf:params:oauth:request_uri:", None),
            ("urn:ietf:params:oauth:request_uri:a b", None),
            ("urn:ietf:params:oauth:request_uri:a%2F", None),
            ("URN:ietf:params:oauth:request_uri:abc", None),
            ("https://client.example/request.jwt", None),
        ] {
            assert_eq!(pushed_reference(uri), reference, "{uri}");
        }
        let long = format!("{REQUEST_URI_PREFIX}{}", "a".repeat(129));
        assert_eq!(pushed_reference(&long), None);
    }

    #[test]
    fn a_pushed_request_is_usable_only_by_its_client_at_its_issuer() {
        use crate::session::PushedRequest;
        let c = client(&["https://app.example/cb"]);
        let q =
            format!("response_type=code&client_id=c1&code_challenge={CHALLENGE}&code_challenge_method=S256");
        let pushed = |issuer_scope: Option<&str>| PushedRequest {
            tenant: TenantId::parse("acme").unwrap(),
            request: validate(&params(&q), &c, &c.metadata.scopes()).unwrap(),
            issuer_scope: issuer_scope.map(str::to_string),
            created_at: 0,
            expires_at: 60,
        };
        let shared = pushed(None);
        assert!(shared.usable_by("c1", None));
        assert!(!shared.usable_by("c2", None), "another client");
        assert!(!shared.usable_by("c1", Some("acme")), "another issuer");
        let own = pushed(Some("acme"));
        assert!(own.usable_by("c1", Some("acme")));
        assert!(!own.usable_by("c1", None), "the shared issuer");
        assert!(!own.usable_by("c1", Some("other")), "another tenant's issuer");
    }

    #[test]
    fn pushed_requests_are_required_by_the_client_or_its_tenant() {
        let mut c = client(&["https://app.example/cb"]);
        let mut t = crate::tenant::Tenant::new(
            TenantId::parse("acme").unwrap(),
            crate::tenant::DcrPolicy::Closed,
            None,
            0,
        );
        assert!(!pushed_requests_required(&c, &t));
        t.require_pushed_authorization_requests = true;
        assert!(pushed_requests_required(&c, &t));
        t.require_pushed_authorization_requests = false;
        c.metadata.require_pushed_authorization_requests = true;
        assert!(pushed_requests_required(&c, &t));
    }

    #[test]
    fn redirects_keep_the_query() {
        assert_eq!(
            redirect_with("https://a.example/cb?x=1", &[("code", "c d"), ("state", "&")]),
            "https://a.example/cb?x=1&code=c+d&state=%26"
        );
    }

    #[test]
    fn max_age() {
        assert!(login_fresh(100, None, 10_000));
        assert!(login_fresh(100, Some(50), 150));
        assert!(!login_fresh(100, Some(50), 151));
    }
}
