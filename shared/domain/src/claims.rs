//! Access-token claims (RFC 9068) and the decision whether a presented token is active.

use serde::{Deserialize, Serialize};

use super::exchange::Actor;
use super::scope::ScopeSet;

/// The claims of a Bulwark access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Tenant id.
    pub tid: String,
    /// The grant a user token came from (absent for client credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// When the user logged in (user tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Who acts for `sub` (RFC 8693 §4.1): the agent holding a delegated token, and the ones
    /// before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The delegation ids of the actors in `act`, current first: a delegated token lives only
    /// while each of them is the user's live delegation of that agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dlg: Vec<String>,
    /// The `jti`s of the tokens a delegated token was exchanged from, nearest first: revoking
    /// any of them (RFC 7009) ends it too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prv: Vec<String>,
    /// RFC 9449 §6.1 / RFC 7800: the DPoP key the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// A token's confirmation claim (RFC 7800): the thumbprint of the key it is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: crate::dpop::Jkt,
}

impl AccessClaims {
    /// These claims bound to the DPoP key `jkt` (or left a bearer token's).
    pub fn bound_to(mut self, jkt: Option<&crate::dpop::Jkt>) -> Self {
        self.cnf = jkt.map(|j| Confirmation { jkt: j.clone() });
        self
    }
}

/// What the claim builder needs for a client-credentials token.
pub struct ClientCredentialsGrant<'a> {
    pub issuer: &'a str,
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub scope: &'a ScopeSet,
    pub audience: &'a str,
    pub ttl: i64,
    pub now: i64,
    pub jti: String,
}

/// Claims for a client-credentials access token: `sub` is the client itself.
pub fn client_credentials_claims(g: ClientCredentialsGrant<'_>) -> AccessClaims {
    AccessClaims {
        iss: g.issuer.to_string(),
        sub: g.client_id.to_string(),
        aud: g.audience.to_string(),
        exp: g.now + g.ttl,
        iat: g.now,
        nbf: g.now,
        jti: g.jti,
        client_id: g.client_id.to_string(),
        scope: g.scope.to_scope_string(),
        tid: g.tenant.to_string(),
        gid: None,
        auth_time: None,
        act: None,
        dlg: Vec::new(),
        prv: Vec::new(),
        cnf: None,
    }
}

/// What the claim builder needs for a token issued to a client for a user.
pub struct UserGrant<'a> {
    pub issuer: &'a str,
    pub tenant: &'a str,
    pub client_id: &'a str,
    pub sub: &'a str,
    pub gid: &'a str,
    pub auth_time: i64,
    pub scope: &'a ScopeSet,
    pub audience: &'a str,
    pub ttl: i64,
    pub now: i64,
    pub jti: String,
}

/// Claims for an access token acting for a user: `sub` is the user, `gid` the grant.
pub fn user_claims(g: UserGrant<'_>) -> AccessClaims {
    AccessClaims {
        iss: g.issuer.to_string(),
        sub: g.sub.to_string(),
        aud: g.audience.to_string(),
        exp: g.now + g.ttl,
        iat: g.now,
        nbf: g.now,
        jti: g.jti,
        client_id: g.client_id.to_string(),
        scope: g.scope.to_scope_string(),
        tid: g.tenant.to_string(),
        gid: Some(g.gid.to_string()),
        auth_time: Some(g.auth_time),
        act: None,
        dlg: Vec::new(),
        prv: Vec::new(),
        cnf: None,
    }
}

/// What the claim builder needs for a token an agent obtains by exchanging `subject`.
pub struct Delegated<'a> {
    pub subject: &'a AccessClaims,
    pub agent: &'a str,
    pub act: Actor,
    pub did: String,
    pub scope: &'a ScopeSet,
    pub audience: &'a str,
    pub ttl: i64,
    pub now: i64,
    pub jti: String,
}

/// Claims for a delegated token (RFC 8693 §2.2.1): about the subject token's user and grant,
/// held by the agent (`client_id`, `act`), never outliving the subject token.
pub fn delegated_claims(d: Delegated<'_>) -> AccessClaims {
    let s = d.subject;
    let mut dlg = Vec::with_capacity(s.dlg.len() + 1);
    dlg.push(d.did);
    dlg.extend(s.dlg.iter().cloned());
    let mut prv = Vec::with_capacity(s.prv.len() + 1);
    prv.push(s.jti.clone());
    prv.extend(s.prv.iter().cloned());
    AccessClaims {
        iss: s.iss.clone(),
        sub: s.sub.clone(),
        aud: d.audience.to_string(),
        exp: (d.now + d.ttl).min(s.exp),
        iat: d.now,
        nbf: d.now,
        jti: d.jti,
        client_id: d.agent.to_string(),
        scope: d.scope.to_scope_string(),
        tid: s.tid.clone(),
        gid: s.gid.clone(),
        auth_time: s.auth_time,
        act: Some(d.act),
        dlg,
        prv,
        // Bound (or not) to the agent's own proof by the caller, never to the subject token's key.
        cnf: None,
    }
}

/// OpenID Connect ID token claims (Core §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Left half of SHA-256 of the access token, base64url (Core §3.1.3.6).
    pub at_hash: String,
    pub tid: String,
}

/// `at_hash` for an ES256-signed ID token.
pub fn at_hash(access_token: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Choose the audience for a token request (RFC 8707): no `resource` → the tenant's default
/// audience; one `resource` → it, if the tenant lists it; more than one → refused (a Bulwark
/// token has exactly one audience).
pub fn choose_audience<'a>(
    requested: &'a [String],
    allowed: &'a [String],
    default: &'a str,
) -> Result<&'a str, String> {
    match requested {
        [] => Ok(default),
        [one] if allowed.iter().any(|a| a == one) => Ok(one.as_str()),
        [_] => Err("the resource is not one this tenant serves".into()),
        _ => Err("request one resource per token".into()),
    }
}

/// Why a verified token is not active (for logs; introspection answers only `active: false`).
#[derive(Debug, PartialEq, Eq)]
pub enum Inactive {
    WrongIssuer,
    Expired,
    NotYetValid,
    OtherTenant,
}

/// Time and tenant checks on verified claims.
pub fn check_active(
    c: &AccessClaims,
    issuer_ok: impl Fn(&str, &str) -> bool,
    tenant: &str,
    now: i64,
) -> Result<(), Inactive> {
    if !issuer_ok(&c.iss, &c.tid) {
        return Err(Inactive::WrongIssuer);
    }
    if c.exp <= now {
        return Err(Inactive::Expired);
    }
    if c.nbf > now + 60 {
        return Err(Inactive::NotYetValid);
    }
    if c.tid != tenant {
        return Err(Inactive::OtherTenant);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_cases() {
        let allowed = vec!["https://api.a".to_string(), "https://api.b".to_string()];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_audience(&[], &allowed, "d"), Ok("d"));
        assert_eq!(
            choose_audience(&s(&["https://api.b"]), &allowed, "d"),
            Ok("https://api.b")
        );
        assert!(choose_audience(&s(&["https://evil"]), &allowed, "d").is_err());
        assert!(choose_audience(&s(&["https://api.a", "https://api.b"]), &allowed, "d").is_err());
    }

    #[test]
    fn active_cases() {
        let scope = ScopeSet::parse("a").unwrap();
        let c = client_credentials_claims(ClientCredentialsGrant {
            issuer: "https://i",
            tenant: "acme",
            client_id: "c1",
            scope: &scope,
            audience: "aud",
            ttl: 100,
            now: 1000,
            jti: "j".into(),
        });
        assert_eq!((c.sub.as_str(), c.exp, c.scope.as_str()), ("c1", 1100, "a"));
        assert_eq!(
            check_active(&c, |i: &str, _: &str| i == "https://i", "acme", 1050),
            Ok(())
        );
        assert_eq!(
            check_active(&c, |i: &str, _: &str| i == "https://i", "acme", 1100),
            Err(Inactive::Expired)
        );
        assert_eq!(
            check_active(&c, |i: &str, _: &str| i == "https://i", "other", 1050),
            Err(Inactive::OtherTenant)
        );
        assert_eq!(
            check_active(&c, |i: &str, _: &str| i == "https://x", "acme", 1050),
            Err(Inactive::WrongIssuer)
        );
        assert_eq!(
            check_active(&c, |i: &str, _: &str| i == "https://i", "acme", 900),
            Err(Inactive::NotYetValid)
        );
    }
}
