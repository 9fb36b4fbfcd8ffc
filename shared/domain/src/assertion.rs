//! JWT assertions others sign, sans IO: the claim rules for client authentication with
//! `private_key_jwt` (RFC 7523 §3, OIDC Core §9) under RFC 10070's audience rules. The
//! signature is checked elsewhere (`keys::external`); replay (`jti`) is the store's.

use serde_json::Value;

/// `client_assertion_type` for a JWT (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The explicit type RFC 10070 gives client authentication JWTs.
pub const CLIENT_AUTH_TYP: &str = "client-authentication+jwt";

/// Longest time ahead a client assertion's `exp` may be, unless the tenant sets a shorter one:
/// an hour, because the most used client libraries (authlib, Google's) sign client assertions
/// with `exp = iat + 3600` by default. Its `jti` is remembered until then, so it is no more
/// replayable for it.
pub const MAX_ASSERTION_LIFETIME: i64 = 3600;

/// The shortest such bound a tenant may set.
pub const MIN_ASSERTION_LIFETIME: i64 = 60;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const SKEW: i64 = 30;

/// What a valid client assertion leaves to do: remember its `jti` until `exp`.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub jti: String,
    pub exp: i64,
}

/// Check a client assertion's header type and claims for `client_id`.
///
/// Audience (RFC 10070): an explicitly typed assertion (`typ: client-authentication+jwt`) must
/// carry our issuer identifier as its sole `aud`, a JSON string. An untyped one (`JWT` or no
/// `typ`, as most libraries still send) may instead name one of our endpoint URLs that take
/// client assertions (`endpoints`: token, introspection, revocation — libraries put the URL they
/// post to), as RFC 7523 and OIDC Core allowed — but only as its sole audience: an assertion
/// addressed to several parties is refused. Any other `typ` (e.g. `at+jwt`) is refused, so that no other kind of JWT is
/// mistaken for one.
pub fn check_client_assertion(
    typ: Option<&str>,
    claims: &Value,
    client_id: &str,
    issuer: &str,
    endpoints: &[String],
    max_lifetime: i64,
    now: i64,
) -> Result<Accepted, &'static str> {
    let typed = match typ {
        Some(t)
            if t.eq_ignore_ascii_case(CLIENT_AUTH_TYP)
                || t.eq_ignore_ascii_case("application/client-authentication+jwt") =>
        {
            true
        }
        None => false,
        Some(t) if t.eq_ignore_ascii_case("JWT") => false,
        Some(_) => return Err("the assertion's typ is not a client authentication JWT"),
    };
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(client_id) || s("sub") != Some(client_id) {
        return Err("iss and sub must both be the client_id");
    }
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => a.as_str(),
        Some(Value::Array(a)) if !typed && a.len() == 1 => a[0].as_str().ok_or("aud must be a string")?,
        _ => return Err("aud must be a single value"),
    };
    let aud_ok = aud == issuer || (!typed && endpoints.iter().any(|e| e == aud));
    if !aud_ok {
        return Err("aud must be the issuer identifier");
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("exp is required")?;
    if exp.saturating_add(SKEW) <= now {
        return Err("the assertion has expired");
    }
    if exp > now + max_lifetime + SKEW {
        return Err("exp is further ahead than this tenant accepts (an hour, unless it set less)");
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_i64() {
            Some(n) if n <= now + SKEW => {}
            _ => return Err("the assertion is not valid yet"),
        }
    }
    if let Some(iat) = claims.get("iat") {
        match iat.as_i64() {
            Some(i) if i <= now + SKEW && i >= now - 86_400 => {}
            _ => return Err("iat is out of range"),
        }
    }
    let jti = s("jti").ok_or("jti is required")?;
    if jti.is_empty() || jti.len() > 256 {
        return Err("jti must be 1 to 256 characters");
    }
    Ok(Accepted {
        jti: jti.to_string(),
        exp,
    })
}

/// Longest time ahead a grant assertion's `exp` may be.
pub const MAX_GRANT_ASSERTION_LIFETIME: i64 = 600;

/// What a valid grant assertion says: whose it is, and what to remember against replay.
#[derive(Debug, PartialEq, Eq)]
pub struct GrantAssertion {
    pub subject: String,
    pub jti: String,
    pub exp: i64,
}

/// Check the claims of an RFC 7523 §2.1 authorization grant assertion from the trusted issuer
/// `trusted` (its signature already verified with that issuer's keys): `iss` = `trusted`; `sub`
/// present; `aud` our issuer as its sole value (RFC 10070), or — untyped — our token endpoint;
/// `exp` required, at most 10 minutes ahead; `nbf`/`iat` sane; `jti` required. Only `JWT` or no
/// `typ`: a client authentication JWT or an access token is not a grant.
pub fn check_grant_assertion(
    typ: Option<&str>,
    claims: &Value,
    trusted: &str,
    issuer: &str,
    token_endpoint: &str,
    now: i64,
) -> Result<GrantAssertion, &'static str> {
    if typ.is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err("the assertion's typ is not JWT");
    }
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(trusted) {
        return Err("iss is not the trusted issuer");
    }
    let subject = s("sub")
        .filter(|x| !x.is_empty() && x.len() <= 256)
        .ok_or("sub is required")?;
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => a.as_str(),
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_str().ok_or("aud must be a string")?,
        _ => return Err("aud must be a single value"),
    };
    if aud != issuer && aud != token_endpoint {
        return Err("aud must be the issuer identifier");
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("exp is required")?;
    if exp.saturating_add(SKEW) <= now {
        return Err("the assertion has expired");
    }
    if exp > now + MAX_GRANT_ASSERTION_LIFETIME + SKEW {
        return Err("exp may be at most 10 minutes ahead");
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_i64() {
            Some(n) if n <= now + SKEW => {}
            _ => return Err("the assertion is not valid yet"),
        }
    }
    if let Some(iat) = claims.get("iat") {
        match iat.as_i64() {
            Some(i) if i <= now + SKEW && i >= now - 86_400 => {}
            _ => return Err("iat is out of range"),
        }
    }
    let jti = s("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("jti is required")?;
    Ok(GrantAssertion {
        subject: subject.to_string(),
        jti: jti.to_string(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://as.example";
    const TE: &str = "https://as.example/oauth2/token";

    fn good() -> Value {
        json!({"iss": "c1", "sub": "c1", "aud": ISS, "exp": 1_000_100, "iat": 1_000_000, "jti": "j1"})
    }

    fn check(typ: Option<&str>, patch: Value) -> Result<Accepted, &'static str> {
        let mut c = good();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        check_client_assertion(
            typ,
            &c,
            "c1",
            ISS,
            &[TE.to_string(), format!("{ISS}/oauth2/introspect")],
            MAX_ASSERTION_LIFETIME,
            1_000_000,
        )
    }

    #[test]
    fn cases() {
        let typed = Some(CLIENT_AUTH_TYP);
        assert_eq!(
            check(None, json!({})),
            Ok(Accepted {
                jti: "j1".into(),
                exp: 1_000_100
            })
        );
        assert!(check(typed, json!({})).is_ok());
        assert!(check(Some("JWT"), json!({})).is_ok());
        // Audience: the issuer always; the token endpoint only untyped; alone, as one value.
        assert!(check(None, json!({"aud": TE})).is_ok());
        assert!(check(None, json!({"aud": [TE]})).is_ok());
        assert!(check(None, json!({"aud": "https://as.example/oauth2/introspect"})).is_ok());
        assert!(check(typed, json!({"aud": "https://as.example/oauth2/introspect"})).is_err());
        assert!(check(typed, json!({"aud": TE})).is_err());
        assert!(check(typed, json!({"aud": [ISS]})).is_err());
        assert!(check(None, json!({"aud": [ISS, "https://other.example"]})).is_err());
        assert!(check(None, json!({"aud": "https://other.example"})).is_err());
        assert!(check(None, json!({"aud": "https://as.example/"})).is_err());
        assert!(check(None, json!({"aud": null})).is_err());
        // Other typs are other kinds of JWT.
        assert!(check(Some("at+jwt"), json!({})).is_err());
        // iss and sub.
        assert!(check(None, json!({"iss": "c2"})).is_err());
        assert!(check(None, json!({"sub": "c2"})).is_err());
        assert!(check(None, json!({"sub": null})).is_err());
        // Time.
        assert!(check(None, json!({"exp": null})).is_err());
        assert!(check(None, json!({"exp": 999_960})).is_err());
        assert!(check(None, json!({"exp": 1_000_000 + 300})).is_ok());
        // An hour ahead, as authlib and Google's libraries sign them; not more.
        assert!(check(None, json!({"exp": 1_000_000 + 3600})).is_ok());
        assert!(check(None, json!({"exp": 1_000_000 + 3600 + SKEW + 1})).is_err());
        // A tenant's shorter bound.
        let short = |exp: i64| {
            let mut c = good();
            c["exp"] = json!(exp);
            check_client_assertion(None, &c, "c1", ISS, &[], 300, 1_000_000)
        };
        assert!(short(1_000_300).is_ok());
        assert!(short(1_000_400).is_err());
        assert!(check(None, json!({"exp": "1000100"})).is_err());
        // Extreme values are refused, never an overflow (a stranger's unverified claims).
        for v in [i64::MAX, i64::MIN, i64::MAX - 1] {
            assert!(check(None, json!({"exp": v})).is_err(), "exp {v}");
            assert!(check(None, json!({"nbf": v, "iat": v})).is_err(), "nbf/iat {v}");
        }
        assert!(check(None, json!({"nbf": 1_000_100})).is_err());
        assert!(check(None, json!({"iat": 1_000_100})).is_err());
        assert!(check(None, json!({"iat": 1})).is_err());
        // jti.
        assert!(check(None, json!({"jti": null})).is_err());
        assert!(check(None, json!({"jti": ""})).is_err());
        assert!(check(None, json!({"jti": "x".repeat(257)})).is_err());
    }

    #[test]
    fn grant_assertion_cases() {
        let idp = "https://idp.example";
        let base =
            json!({"iss": idp, "sub": "u-1", "aud": ISS, "exp": 1_000_500, "iat": 1_000_000, "jti": "a1"});
        let check = |typ: Option<&str>, patch: Value| {
            let mut c = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            check_grant_assertion(typ, &c, idp, ISS, TE, 1_000_000)
        };
        assert_eq!(
            check(None, json!({})),
            Ok(GrantAssertion {
                subject: "u-1".into(),
                jti: "a1".into(),
                exp: 1_000_500
            })
        );
        assert!(check(Some("JWT"), json!({"aud": TE})).is_ok());
        assert!(check(Some(CLIENT_AUTH_TYP), json!({})).is_err());
        assert!(check(Some("at+jwt"), json!({})).is_err());
        assert!(check(None, json!({"iss": "https://evil.example"})).is_err());
        assert!(check(None, json!({"sub": null})).is_err());
        assert!(check(None, json!({"aud": [ISS, "x"]})).is_err());
        assert!(check(None, json!({"aud": "https://other.example"})).is_err());
        assert!(check(None, json!({"exp": null})).is_err());
        assert!(check(None, json!({"exp": 1_000_000 + 700})).is_err());
        for v in [i64::MAX, i64::MIN] {
            assert!(check(None, json!({"exp": v})).is_err(), "exp {v}");
        }
        assert!(check(None, json!({"exp": 999_000})).is_err());
        assert!(check(None, json!({"nbf": 1_000_100})).is_err());
        assert!(check(None, json!({"jti": null})).is_err());
    }
}
