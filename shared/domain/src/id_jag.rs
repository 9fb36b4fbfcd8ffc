//! Identity Assertion JWT Authorization Grants (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant-03), sans IO: the profile of the RFC 7523
//! JWT bearer grant by which an identity provider the tenant trusts for its users delegates
//! access to one client of ours for one of them ("Cross App Access"). The signature is checked
//! elsewhere (`keys::external`), replay (`jti`) is the store's, the user link the service's.
//!
//! What an ID-JAG adds to a plain grant assertion, and why each rule is here:
//! - `typ` is `oauth-id-jag+jwt`: no other JWT the provider signs (an ID token, a plain
//!   assertion) passes for one, and an ID-JAG never passes for a plain assertion
//!   (`check_grant_assertion` takes only `JWT` or none).
//! - `aud` is our issuer identifier alone (the one the request came to: the shared issuer or
//!   the tenant's own), never the token endpoint: an ID-JAG for another authorization server,
//!   or for another tenant's issuer, is refused.
//! - `client_id` is the authenticated client: an ID-JAG stolen from the client it was issued
//!   for is worth nothing to another client, even one holding the same grant type.
//! - `iat` is required; `exp` at most 10 minutes ahead, as for plain assertions.
//! - What this server does not implement is refused rather than ignored, so that an ID-JAG
//!   never buys more than its issuer meant: `cnf` (proof of possession: we take no DPoP proof,
//!   and the draft says to refuse then), `authorization_details` (RAR constraints we would not
//!   enforce). `aud_tenant`, if present, must be the client's tenant.
//! - `tenant` (the draft's OPTIONAL claim naming the provider's own tenant, for providers that
//!   serve many under one issuer): where the tenant trusts the issuer for one of its tenants
//!   (`issuer add --idp-tenant`), it must be present and be that one — a provider's subjects are
//!   unique only within its tenant, while a link is per issuer and subject; otherwise ignored.
//! - `scope` and `resource` bound what is issued ([`id_jag_scope`], [`id_jag_resources`]); an
//!   ID-JAG without `scope` buys only what the request names, never everything the client may
//!   hold.

use serde_json::Value;

use crate::assertion::{MAX_GRANT_ASSERTION_LIFETIME, SKEW};
use crate::scope::{ScopeSet, grant_scope};

/// The JOSE `typ` of an ID-JAG.
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";

/// The profile identifier discovery lists in `authorization_grant_profiles_supported`.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// What the checks compare an ID-JAG with.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The trusted issuer whose keys verified it.
    pub trusted: &'a str,
    /// Our issuer identifier, as the request came to it.
    pub issuer: &'a str,
    /// The authenticated client.
    pub client_id: &'a str,
    /// The client's tenant.
    pub tenant: &'a str,
    /// The provider's tenant the trust is for (`TrustedIssuer::idp_tenant`), if any.
    pub idp_tenant: Option<&'a str>,
    pub now: i64,
}

/// What a valid ID-JAG says.
#[derive(Debug, PartialEq, Eq)]
pub struct IdJag {
    /// The user's subject at the issuer.
    pub subject: String,
    pub jti: String,
    pub exp: i64,
    /// The `scope` claim, if any.
    pub scope: Option<ScopeSet>,
    /// The `resource` claim (RFC 8707 resource identifiers), empty if absent.
    pub resources: Vec<String>,
}

/// Check an ID-JAG's header type and claims (its signature already verified with the keys of
/// the trusted issuer `e.trusted`). Every `Err` is an `invalid_grant`; the reason is for logs.
pub fn check_id_jag(typ: Option<&str>, claims: &Value, e: &Expected<'_>) -> Result<IdJag, &'static str> {
    let typed = typ.is_some_and(|t| {
        t.eq_ignore_ascii_case(ID_JAG_TYP) || t.eq_ignore_ascii_case("application/oauth-id-jag+jwt")
    });
    if !typed {
        return Err("the assertion's typ is not oauth-id-jag+jwt");
    }
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(e.trusted) {
        return Err("iss is not the trusted issuer");
    }
    let subject = s("sub")
        .filter(|x| !x.is_empty() && x.len() <= 256)
        .ok_or("sub is required")?;
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => Some(a.as_str()),
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_str(),
        _ => None,
    };
    if aud != Some(e.issuer) {
        return Err("aud must be our issuer identifier, alone");
    }
    if s("client_id") != Some(e.client_id) {
        return Err("client_id is not the authenticated client");
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("exp is required")?;
    if exp.saturating_add(SKEW) <= e.now {
        return Err("the assertion has expired");
    }
    if exp > e.now + MAX_GRANT_ASSERTION_LIFETIME + SKEW {
        return Err("exp may be at most 10 minutes ahead");
    }
    match claims.get("iat").and_then(Value::as_i64) {
        Some(i) if i <= e.now + SKEW && i >= e.now - 86_400 => {}
        Some(_) => return Err("iat is out of range"),
        None => return Err("iat is required"),
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_i64() {
            Some(n) if n <= e.now + SKEW => {}
            _ => return Err("the assertion is not valid yet"),
        }
    }
    let jti = s("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("jti is required")?;
    if claims.get("cnf").is_some() {
        return Err("cnf (proof of possession) is not supported");
    }
    if claims.get("authorization_details").is_some() {
        return Err("authorization_details is not supported");
    }
    if let Some(expected) = e.idp_tenant
        && s("tenant") != Some(expected)
    {
        return Err("tenant is not the identity provider's tenant this issuer is trusted for");
    }
    if claims.get("aud_tenant").is_some() && s("aud_tenant") != Some(e.tenant) {
        return Err("aud_tenant is not the client's tenant");
    }
    let scope = match claims.get("scope") {
        None => None,
        Some(Value::String(v)) => Some(ScopeSet::parse(v).map_err(|_| "scope is malformed")?),
        Some(_) => return Err("scope must be a string"),
    };
    let resources = match claims.get("resource") {
        None => Vec::new(),
        Some(Value::String(r)) => vec![r.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= 10 => a
            .iter()
            .map(|r| r.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("resource must be strings")?,
        Some(_) => return Err("resource must be a URI or 1 to 10 of them"),
    };
    Ok(IdJag {
        subject: subject.to_string(),
        jti: jti.to_string(),
        exp,
        scope,
        resources,
    })
}

/// The scope of the token an ID-JAG buys, least privilege first: what the request names,
/// within what the client may be issued (`allowed`) and, when the ID-JAG has a `scope` claim,
/// within it. A request naming more than either is `invalid_scope`; an unnamed request gets the
/// claim's scopes the client may hold (the draft lets the server grant a subset), and none at
/// all is `invalid_scope` too. Without a `scope` claim the provider said nothing about what it
/// delegates, so only a request that names its scopes gets any: nothing is granted by default.
pub fn id_jag_scope(
    claim: Option<&ScopeSet>,
    requested: Option<&str>,
    allowed: &ScopeSet,
) -> Result<ScopeSet, String> {
    let Some(claim) = claim else {
        let wanted = match requested {
            Some(_) => grant_scope(requested, allowed)?,
            None => ScopeSet::default(),
        };
        if wanted.is_empty() {
            return Err(
                "the ID-JAG names no scope: name the scopes wanted in the request's scope parameter".into(),
            );
        }
        return Ok(wanted);
    };
    let wanted = grant_scope(requested, allowed)?;
    if requested.is_some() {
        let extra = wanted.difference(claim);
        if !extra.is_empty() {
            return Err(format!("scope beyond the ID-JAG's: {}", extra.join(" ")));
        }
        if wanted.is_empty() {
            return Err("the request names no scope".into());
        }
        return Ok(wanted);
    }
    let granted = claim.clone().retain(|s| allowed.contains(s));
    if granted.is_empty() {
        return Err("none of the ID-JAG's scopes may be issued to this client".into());
    }
    Ok(granted)
}

/// The ID-JAG's resources must all be ones the tenant serves (`invalid_target` otherwise): the
/// grant is then bound to them, and each token's audience is one of them.
pub fn id_jag_resources(claimed: &[String], served: &[String]) -> Result<(), &'static str> {
    if claimed.iter().all(|r| served.contains(r)) {
        Ok(())
    } else {
        Err("the ID-JAG names a resource this tenant does not serve")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assertion::check_grant_assertion;
    use serde_json::json;

    const ISS: &str = "https://as.example/t/acme";
    const IDP: &str = "https://idp.example";
    const NOW: i64 = 1_000_000;

    fn base() -> Value {
        json!({
            "iss": IDP, "sub": "u-1", "aud": ISS, "client_id": "c1", "jti": "j1",
            "iat": NOW, "exp": NOW + 300,
        })
    }

    fn patched(patch: Value) -> Value {
        let mut c = base();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn check(typ: Option<&str>, patch: Value) -> Result<IdJag, &'static str> {
        let e = Expected {
            trusted: IDP,
            issuer: ISS,
            client_id: "c1",
            tenant: "acme",
            idp_tenant: None,
            now: NOW,
        };
        check_id_jag(typ, &patched(patch), &e)
    }

    const T: Option<&str> = Some(ID_JAG_TYP);

    #[test]
    fn a_valid_id_jag() {
        assert_eq!(
            check(T, json!({})),
            Ok(IdJag {
                subject: "u-1".into(),
                jti: "j1".into(),
                exp: NOW + 300,
                scope: None,
                resources: vec![],
            })
        );
        let full = check(
            T,
            json!({"scope": "b a", "resource": ["https://r1.example", "https://r2.example"],
                   "aud_tenant": "acme", "auth_time": NOW - 60, "amr": ["mfa"], "acr": "x",
                   "email": "a@example.com", "aud_sub": "whatever", "act": {"sub": "agent"},
                   "nbf": NOW}),
        )
        .unwrap();
        assert_eq!(full.scope, Some(ScopeSet::parse("a b").unwrap()));
        assert_eq!(full.resources, ["https://r1.example", "https://r2.example"]);
        assert_eq!(
            check(T, json!({"resource": "https://r1.example"}))
                .unwrap()
                .resources,
            ["https://r1.example"]
        );
        // The typ as a full media type, in any case (RFC 7515 §4.1.9); aud as a one-element array.
        assert!(check(Some("application/oauth-id-jag+jwt"), json!({})).is_ok());
        assert!(check(Some("OAuth-ID-JAG+JWT"), json!({})).is_ok());
        assert!(check(T, json!({"aud": [ISS]})).is_ok());
        assert!(check(T, json!({"exp": NOW + 600})).is_ok());
        assert!(check(T, json!({"exp": NOW - 20})).is_ok(), "within the skew");
    }

    #[test]
    fn every_refusal() {
        for (why, typ, patch) in [
            // Another kind of JWT, including a plain grant assertion with every ID-JAG claim.
            ("no typ", None, json!({})),
            ("typ JWT", Some("JWT"), json!({})),
            (
                "a client authentication JWT",
                Some("client-authentication+jwt"),
                json!({}),
            ),
            ("an access token", Some("at+jwt"), json!({})),
            (
                "a typ that only starts right",
                Some("oauth-id-jag+jwt2"),
                json!({}),
            ),
            // Issuer and subject.
            ("another issuer", T, json!({"iss": "https://evil.example"})),
            ("no iss", T, json!({"iss": null})),
            ("no sub", T, json!({"sub": null})),
            ("an empty sub", T, json!({"sub": ""})),
            ("a sub too long", T, json!({"sub": "x".repeat(257)})),
            ("a sub not a string", T, json!({"sub": 7})),
            // Audience: our issuer, alone; not another tenant's, not the shared one, not an endpoint.
            ("no aud", T, json!({"aud": null})),
            (
                "another tenant's issuer",
                T,
                json!({"aud": "https://as.example/t/globex"}),
            ),
            ("the shared issuer", T, json!({"aud": "https://as.example"})),
            (
                "the token endpoint",
                T,
                json!({"aud": "https://as.example/t/acme/oauth2/token"}),
            ),
            (
                "a trailing slash",
                T,
                json!({"aud": "https://as.example/t/acme/"}),
            ),
            (
                "several audiences",
                T,
                json!({"aud": [ISS, "https://other.example"]}),
            ),
            ("an empty aud array", T, json!({"aud": []})),
            ("aud not a string", T, json!({"aud": [1]})),
            // Client continuity.
            ("another client", T, json!({"client_id": "c2"})),
            ("no client_id", T, json!({"client_id": null})),
            ("a client_id differing in case", T, json!({"client_id": "C1"})),
            ("client_id not a string", T, json!({"client_id": ["c1"]})),
            // Time.
            ("no exp", T, json!({"exp": null})),
            ("expired", T, json!({"exp": NOW - 30})),
            ("exp too far ahead", T, json!({"exp": NOW + 631})),
            ("exp a string", T, json!({"exp": "1000300"})),
            ("exp the largest number", T, json!({"exp": i64::MAX})),
            ("exp the smallest number", T, json!({"exp": i64::MIN})),
            ("no iat", T, json!({"iat": null})),
            ("iat in the future", T, json!({"iat": NOW + 31})),
            ("iat a day old", T, json!({"iat": NOW - 86_401})),
            ("iat a string", T, json!({"iat": "1000000"})),
            ("not yet valid", T, json!({"nbf": NOW + 31})),
            ("nbf a string", T, json!({"nbf": "0"})),
            // jti.
            ("no jti", T, json!({"jti": null})),
            ("an empty jti", T, json!({"jti": ""})),
            ("a jti too long", T, json!({"jti": "x".repeat(257)})),
            // What we do not implement, refused rather than ignored.
            ("cnf", T, json!({"cnf": {"jkt": "abc"}})),
            ("authorization_details", T, json!({"authorization_details": []})),
            // Our tenant.
            ("another tenant as aud_tenant", T, json!({"aud_tenant": "globex"})),
            ("aud_tenant not a string", T, json!({"aud_tenant": 1})),
            // Malformed authorization claims.
            ("scope not a string", T, json!({"scope": ["a"]})),
            ("a malformed scope", T, json!({"scope": "a\"b"})),
            ("resource not a string", T, json!({"resource": 1})),
            ("an empty resource array", T, json!({"resource": []})),
            (
                "a resource array with a number",
                T,
                json!({"resource": ["https://r.example", 1]}),
            ),
            (
                "too many resources",
                T,
                json!({"resource": vec!["https://r.example"; 11]}),
            ),
        ] {
            assert!(check(typ, patch).is_err(), "{why} was accepted");
        }
    }

    /// The draft's OPTIONAL `tenant` claim: ignored unless the issuer is trusted for one of
    /// its tenants, then required to be that one.
    #[test]
    fn the_providers_tenant_claim() {
        let with = |idp_tenant: Option<&str>, patch: Value| {
            let e = Expected {
                trusted: IDP,
                issuer: ISS,
                client_id: "c1",
                tenant: "acme",
                idp_tenant,
                now: NOW,
            };
            check_id_jag(T, &patched(patch), &e)
        };
        assert!(
            with(None, json!({"tenant": "contoso"})).is_ok(),
            "ignored when not configured"
        );
        assert!(with(None, json!({})).is_ok());
        assert!(with(Some("contoso"), json!({"tenant": "contoso"})).is_ok());
        assert!(
            with(Some("contoso"), json!({"tenant": "fabrikam"})).is_err(),
            "another tenant"
        );
        assert!(
            with(Some("contoso"), json!({})).is_err(),
            "none where one is expected"
        );
        assert!(
            with(Some("contoso"), json!({"tenant": ["contoso"]})).is_err(),
            "not a string"
        );
        assert!(
            with(Some("contoso"), json!({"tenant": "CONTOSO"})).is_err(),
            "compared exactly"
        );
    }

    #[test]
    fn an_id_jag_is_not_a_plain_grant_assertion() {
        // A trusted issuer not marked for ID-JAGs takes plain assertions only: the same claims
        // typed as an ID-JAG are refused there.
        let c = base();
        let plain = |typ| check_grant_assertion(typ, &c, IDP, ISS, &format!("{ISS}/oauth2/token"), NOW);
        assert!(plain(None).is_ok());
        assert!(plain(Some(ID_JAG_TYP)).is_err());
        assert!(plain(Some("application/oauth-id-jag+jwt")).is_err());
    }

    #[test]
    fn scope() {
        let s = |v: &str| ScopeSet::parse(v).unwrap();
        let allowed = s("openid api:read api:write");
        let f = |claim: Option<&str>, requested: Option<&str>| {
            id_jag_scope(claim.map(s).as_ref(), requested, &allowed).map(|x| x.to_scope_string())
        };
        // No claim: only what the request names (nothing by default: least privilege), and a
        // request naming nothing (a blank scope) gets nothing either.
        assert!(f(None, None).is_err());
        assert!(f(None, Some(" ")).is_err());
        assert_eq!(f(None, Some("api:read")), Ok("api:read".into()));
        assert!(f(None, Some("admin")).is_err());
        // A claim: the request within it and within the client's.
        assert_eq!(f(Some("api:read"), None), Ok("api:read".into()));
        assert_eq!(
            f(Some("api:read api:write"), Some("api:read")),
            Ok("api:read".into())
        );
        assert!(
            f(Some("api:read"), Some("api:write")).is_err(),
            "widening the ID-JAG"
        );
        assert!(
            f(Some("api:read"), Some("api:read api:write")).is_err(),
            "widening the ID-JAG"
        );
        assert!(
            f(Some("api:read admin"), Some("admin")).is_err(),
            "beyond the client's"
        );
        // Unnamed: the claim's scopes the client may hold; none of them is a refusal.
        assert_eq!(f(Some("api:read admin"), None), Ok("api:read".into()));
        assert!(f(Some("admin"), None).is_err());
        // An empty claim buys nothing either, nor does a blank request.
        assert!(f(Some(""), None).is_err());
        assert!(f(Some(""), Some(" ")).is_err());
        assert!(f(Some("api:read"), Some(" ")).is_err());
        assert!(f(Some(""), Some("")).is_err());
    }

    #[test]
    fn resources() {
        let served = ["https://a.example".to_string(), "https://b.example".to_string()];
        assert!(id_jag_resources(&[], &served).is_ok());
        assert!(id_jag_resources(&served, &served).is_ok());
        assert!(id_jag_resources(&["https://b.example".into()], &served).is_ok());
        assert!(id_jag_resources(&["https://c.example".into()], &served).is_err());
        assert!(
            id_jag_resources(&["https://a.example".into(), "https://c.example".into()], &served).is_err()
        );
        assert!(id_jag_resources(&["https://a.example/".into()], &served).is_err());
    }
}
