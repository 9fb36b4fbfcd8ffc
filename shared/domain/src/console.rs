//! The Connected Apps console's rules, sans IO: its built-in client (one per tenant), and what
//! its sign-in (authorization code + PKCE against our own endpoints) and its forms derive from
//! a random value.
//!
//! The console is an ordinary OAuth client of this server: a public client with one redirect
//! URI (`{issuer}/console/callback`), `authorization_code` only, registered for `bulwark:admin`
//! alone and pre-approved (first-party). The admin role is the whole of its user policy
//! (`service::access`): a user without it gets no code, no token, and a token already issued
//! stops working when the role goes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::client::{ADMIN_SCOPE, Client, ClientMetadata, Origin};
use super::grant_type::{ClientAuthMethod, GrantType};
use super::tenant::TenantId;

/// The prefix of every console client id; no generated client id contains a `.`.
pub const CLIENT_PREFIX: &str = "bulwark-console.";

/// Seconds since the administrator last entered a password, beyond which the console's sign-in
/// asks for it again (OIDC `max_age`), whatever single sign-on session the browser has.
pub const MAX_AUTH_AGE: i64 = 3600;

/// The path the console's codes come back to.
pub const CALLBACK_PATH: &str = "/console/callback";

/// The console client's id in `tenant`.
pub fn client_id(tenant: &str) -> String {
    format!("{CLIENT_PREFIX}{tenant}")
}

/// The console client of `tenant`, for an issuer whose callback is `callback`.
pub fn client(tenant: &TenantId, callback: &str, now: i64) -> Client {
    let metadata = ClientMetadata {
        redirect_uris: vec![callback.to_string()],
        grant_types: vec![GrantType::AuthorizationCode],
        response_types: vec!["code".into()],
        token_endpoint_auth_method: ClientAuthMethod::None,
        client_name: Some("Bulwark console".into()),
        client_uri: None,
        logo_uri: None,
        tos_uri: None,
        policy_uri: None,
        scope: ADMIN_SCOPE.into(),
        contacts: Vec::new(),
        software_id: None,
        software_version: None,
        jwks: None,
        jwks_uri: None,
        application_type: None,
        dpop_bound_access_tokens: false,
        require_pushed_authorization_requests: false,
        federated_credential: None,
    };
    Client {
        first_party: true,
        ..Client::new(
            client_id(tenant.as_str()).into(),
            tenant.clone(),
            metadata,
            Origin::Console,
            now,
        )
    }
}

/// Whether `c` is what [`client`] makes for its tenant (a stored client claiming the console's
/// origin under another id, or with other powers, is not the console).
pub fn is_console(c: &Client) -> bool {
    c.origin == Origin::Console
        && c.client_id == client_id(c.tenant.as_str())
        && c.metadata.is_public()
        && c.metadata.grant_types == [GrantType::AuthorizationCode]
        && c.metadata.redirect_uris.len() == 1
        && c.metadata.redirect_uris[0].ends_with(CALLBACK_PATH)
        && c.agent_of.is_none()
}

fn derive(label: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bulwark-console\0");
    h.update(label.as_bytes());
    h.update(b"\0");
    h.update(value.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// One sign-in attempt, from the random value kept in the browser's flow cookie: the `state`
/// sent with the authorization request, and the PKCE verifier (43 characters of base64url) and
/// its S256 challenge.
pub struct Flow {
    pub state: String,
    pub verifier: String,
    pub challenge: String,
}

pub fn flow(secret: &str) -> Flow {
    let verifier = derive("pkce", secret);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Flow {
        state: derive("state", secret),
        verifier,
        challenge,
    }
}

/// The flow cookie's value: the tenant signing in and the random value.
pub fn flow_cookie(tenant: &str, secret: &str) -> String {
    format!("{tenant}.{secret}")
}

/// The tenant and random value of a flow cookie.
pub fn parse_flow_cookie(v: &str) -> Option<(TenantId, &str)> {
    let (t, s) = v.split_once('.')?;
    let t = TenantId::parse(t).ok()?;
    (s.len() >= 32 && s.len() <= 64).then_some((t, s))
}

/// The CSRF token of the console's forms: bound to the session's access token, kept in an
/// `HttpOnly` cookie ([`crate::csrf`]).
pub fn csrf(token: &str) -> String {
    crate::csrf::token(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_client_is_recognised_only_as_made() {
        let t = TenantId::parse("acme").unwrap();
        let c = client(&t, "https://auth.example/console/callback", 1);
        assert!(is_console(&c));
        assert!(c.may_hold_admin_scope());
        assert!(c.client_id.starts_with(CLIENT_PREFIX));
        let mut other = c.clone();
        other.client_id = "bulwark-console.other".into();
        assert!(!is_console(&other), "another tenant's id");
        let mut confidential = c.clone();
        confidential.metadata.token_endpoint_auth_method = ClientAuthMethod::ClientSecretBasic;
        assert!(!is_console(&confidential));
        let mut elsewhere = c.clone();
        elsewhere.metadata.redirect_uris = vec!["https://evil.example/cb".into()];
        assert!(!is_console(&elsewhere) && !elsewhere.may_hold_admin_scope());
        let mut api = c.clone();
        api.origin = Origin::Api;
        assert!(!api.may_hold_admin_scope());
    }

    #[test]
    fn flows_derive_distinct_valid_values() {
        let a = flow("0123456789abcdef0123456789abcdef");
        let b = flow("0123456789abcdef0123456789abcdeF");
        assert_ne!(a.state, b.state);
        assert_ne!(a.state, a.verifier);
        assert_eq!(a.verifier.len(), 43);
        assert!(crate::authorize::verify_pkce(&a.verifier, &a.challenge));
        assert_ne!(csrf("t1"), csrf("t2"));
        let c = flow_cookie("acme", "0123456789abcdef0123456789abcdef");
        let (t, s) = parse_flow_cookie(&c).unwrap();
        assert_eq!((t.as_str(), s), ("acme", "0123456789abcdef0123456789abcdef"));
        assert!(parse_flow_cookie("acme.short").is_none());
        assert!(parse_flow_cookie("ACME.0123456789abcdef0123456789abcdef").is_none());
    }
}
