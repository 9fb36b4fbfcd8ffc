//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3.1): `client_secret_basic` or `client_secret_post`, never both; a
//! `private_key_jwt` client assertion (RFC 7523 §2.2, never with another method); a workload
//! platform's token as the client assertion, beside the `client_id` it authenticates
//! (`federated`); or `none` (a public client sends only its `client_id`).

use crate::id::ClientId;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::assertion::JWT_BEARER_ASSERTION;
use super::params::Params;
use crate::secret::Secret;

pub use super::grant_type::ClientAuthMethod;

/// Credentials a client presented: who it says it is, and its evidence.
#[derive(Debug)]
pub struct PresentedCredentials {
    pub client_id: ClientId,
    pub evidence: Evidence,
}

/// What a client presented to prove who it is, one variant per way of proving it: whoever
/// checks it matches on this (a new method, such as a certificate, is a new variant the
/// compiler makes every check answer). `Debug` shows no secret and no assertion.
pub enum Evidence {
    /// `client_secret_basic`: the secret from the `Authorization` header.
    SecretBasic(Secret),
    /// `client_secret_post`: the secret from the form.
    SecretPost(Secret),
    /// `private_key_jwt`: a JWT signed with one of the client's keys (not a secret: it is
    /// verified, never compared).
    Assertion(String),
    /// `federated`: a client assertion whose `sub` is not the `client_id` sent beside it: a
    /// workload platform's token about the workload (not a secret either: it is verified with
    /// the trusted issuer's keys, never compared).
    WorkloadToken(String),
    /// `none`: a public client names itself and proves nothing (PKCE does the work).
    Nothing,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::SecretBasic(s) => f.debug_tuple("SecretBasic").field(s).finish(),
            Evidence::SecretPost(s) => f.debug_tuple("SecretPost").field(s).finish(),
            Evidence::Assertion(_) => f.write_str("Assertion([redacted])"),
            Evidence::WorkloadToken(_) => f.write_str("WorkloadToken([redacted])"),
            Evidence::Nothing => f.write_str("Nothing"),
        }
    }
}

impl PresentedCredentials {
    /// The method the evidence belongs to.
    pub fn method(&self) -> ClientAuthMethod {
        match self.evidence {
            Evidence::SecretBasic(_) => ClientAuthMethod::ClientSecretBasic,
            Evidence::SecretPost(_) => ClientAuthMethod::ClientSecretPost,
            Evidence::Assertion(_) => ClientAuthMethod::PrivateKeyJwt,
            Evidence::WorkloadToken(_) => ClientAuthMethod::Federated,
            Evidence::Nothing => ClientAuthMethod::None,
        }
    }
}

/// Why the presented credentials could not even be read.
#[derive(Debug, PartialEq, Eq)]
pub enum CredentialsError {
    /// Nothing presented: 401 `invalid_client`.
    Missing,
    /// More than one method, or a malformed header: 400 `invalid_request` / 401 `invalid_client`.
    Malformed(&'static str),
    /// Both Basic and body credentials.
    MultipleMethods,
}

/// Read the client's credentials from the `Authorization` header value (if any) and the form.
pub fn read_credentials(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedCredentials, CredentialsError> {
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion_type = params.get("client_assertion_type");
    let assertion = params.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        // private_key_jwt (RFC 7523 §2.2): the assertion names the client (its `sub`).
        if authorization.is_some() || body_secret.is_some() {
            return Err(CredentialsError::MultipleMethods);
        }
        if assertion_type != Some(JWT_BEARER_ASSERTION) {
            return Err(CredentialsError::Malformed(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
        }
        let a = assertion.ok_or(CredentialsError::Malformed("client_assertion is missing"))?;
        let sub = unverified_sub(a).ok_or(CredentialsError::Malformed("malformed client_assertion"))?;
        if let Some(id) = body_id
            && id != sub
        {
            // Not the client's own assertion (whose `sub` is its `client_id`): a workload
            // token, for the client named beside it. Only a `federated` client takes one.
            return Ok(PresentedCredentials {
                client_id: id.into(),
                evidence: Evidence::WorkloadToken(a.to_string()),
            });
        }
        return Ok(PresentedCredentials {
            client_id: sub.into(),
            evidence: Evidence::Assertion(a.to_string()),
        });
    }
    match authorization {
        Some(h) => {
            if body_secret.is_some() {
                return Err(CredentialsError::MultipleMethods);
            }
            let (id, secret) = parse_basic(h)?;
            if let Some(b) = body_id
                && b != id
            {
                return Err(CredentialsError::Malformed(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            Ok(PresentedCredentials {
                client_id: id.into(),
                evidence: Evidence::SecretBasic(Secret::new(secret)),
            })
        }
        None => match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(PresentedCredentials {
                client_id: id.into(),
                evidence: Evidence::SecretPost(Secret::new(secret)),
            }),
            (Some(id), None) => Ok(PresentedCredentials {
                client_id: id.into(),
                evidence: Evidence::Nothing,
            }),
            _ => Err(CredentialsError::Missing),
        },
    }
}

/// The `sub` of a JWT, read without verifying it (to know which client's keys to verify it with).
fn unverified_sub(jwt: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if jwt.len() > 16 * 1024 {
        return None;
    }
    let mut parts = jwt.split('.');
    let (_h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload = URL_SAFE_NO_PAD.decode(p).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    let sub = v.get("sub")?.as_str()?;
    (!sub.is_empty() && sub.len() <= 256).then(|| sub.to_string())
}

/// Decode `Basic base64(urlencode(id):urlencode(secret))`.
fn parse_basic(h: &str) -> Result<(String, String), CredentialsError> {
    let malformed = CredentialsError::Malformed("malformed Basic credentials");
    let (scheme, rest) = h
        .trim()
        .split_once(' ')
        .ok_or(CredentialsError::Malformed("unsupported Authorization scheme"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(CredentialsError::Malformed("unsupported Authorization scheme"));
    }
    let raw = STANDARD
        .decode(rest.trim())
        .map_err(|_| CredentialsError::Malformed("malformed Basic credentials"))?;
    let raw =
        String::from_utf8(raw).map_err(|_| CredentialsError::Malformed("malformed Basic credentials"))?;
    let (id, secret) = raw.split_once(':').ok_or(malformed)?;
    let id = urldecode(id).ok_or(CredentialsError::Malformed("malformed Basic credentials"))?;
    let secret = urldecode(secret).ok_or(CredentialsError::Malformed("malformed Basic credentials"))?;
    if id.is_empty() || secret.is_empty() {
        return Err(CredentialsError::Malformed("malformed Basic credentials"));
    }
    Ok((id, secret))
}

/// `application/x-www-form-urlencoded` decoding of one component (RFC 6749 §2.3.1).
fn urldecode(s: &str) -> Option<String> {
    let replaced = s.replace('+', " ");
    let bytes: Vec<u8> = percent_decode(&replaced)?;
    String::from_utf8(bytes).ok()
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_of(c: &PresentedCredentials) -> &str {
        match &c.evidence {
            Evidence::SecretBasic(s) | Evidence::SecretPost(s) => s.expose(),
            Evidence::Assertion(_) | Evidence::WorkloadToken(_) | Evidence::Nothing => "",
        }
    }

    fn basic(s: &str) -> String {
        format!("Basic {}", STANDARD.encode(s))
    }

    #[test]
    fn cases() {
        let none = Params::default();
        let c = read_credentials(Some(&basic("abc:s3cr%3At")), &none).unwrap();
        assert_eq!(
            (c.client_id.as_str(), secret_of(&c), c.method()),
            ("abc", "s3cr:t", ClientAuthMethod::ClientSecretBasic)
        );
        let c = read_credentials(Some(&basic("a+b:x")), &none).unwrap();
        assert_eq!(c.client_id, "a b");

        let post = Params::parse(b"client_id=abc&client_secret=xyz").unwrap();
        let c = read_credentials(None, &post).unwrap();
        assert_eq!(
            (c.client_id.as_str(), secret_of(&c), c.method()),
            ("abc", "xyz", ClientAuthMethod::ClientSecretPost)
        );

        assert_eq!(
            read_credentials(None, &none).unwrap_err(),
            CredentialsError::Missing
        );
        assert_eq!(
            read_credentials(Some(&basic("abc:x")), &post).unwrap_err(),
            CredentialsError::MultipleMethods
        );
        let id_only = Params::parse(b"client_id=abc").unwrap();
        let c = read_credentials(None, &id_only).unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.method()),
            ("abc", ClientAuthMethod::None)
        );
        let other_id = Params::parse(b"client_id=zzz").unwrap();
        assert!(matches!(
            read_credentials(Some(&basic("abc:x")), &other_id),
            Err(CredentialsError::Malformed(_))
        ));
        // private_key_jwt: the client is the assertion's sub.
        let jwt = |payload: &str| {
            use base64::engine::general_purpose::URL_SAFE_NO_PAD;
            format!("eyJhbGciOiJFUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
        };
        let a = jwt(r#"{"sub":"c9","iss":"c9"}"#);
        let form = |extra: &str| {
            Params::parse(
                format!("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}{extra}")
                    .as_bytes(),
            )
            .unwrap()
        };
        let c = read_credentials(None, &form("")).unwrap();
        assert!(
            !format!("{c:?}").contains(&a),
            "an assertion never shows in Debug"
        );
        assert_eq!(
            (c.client_id.as_str(), c.method()),
            ("c9", ClientAuthMethod::PrivateKeyJwt)
        );
        assert!(read_credentials(None, &form("&client_id=c9")).is_ok());
        // Another client_id beside it: a workload token for that client (federated).
        let c = read_credentials(None, &form("&client_id=other")).unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.method()),
            ("other", ClientAuthMethod::Federated)
        );
        assert!(
            !format!("{c:?}").contains(&a),
            "a workload token never shows in Debug"
        );
        assert_eq!(
            read_credentials(None, &form("&client_secret=x")).unwrap_err(),
            CredentialsError::MultipleMethods
        );
        assert_eq!(
            read_credentials(Some(&basic("c9:x")), &form("")).unwrap_err(),
            CredentialsError::MultipleMethods
        );
        let wrong_type =
            Params::parse(format!("client_assertion_type=urn%3Ax&client_assertion={a}").as_bytes()).unwrap();
        assert!(matches!(
            read_credentials(None, &wrong_type),
            Err(CredentialsError::Malformed(_))
        ));
        let no_sub = Params::parse(
            format!("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}", jwt(r#"{"iss":"c9"}"#)).as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            read_credentials(None, &no_sub),
            Err(CredentialsError::Malformed(_))
        ));

        for bad in [
            "Bearer abc",
            "Basic !!!",
            "Basic",
            &basic("nocolon"),
            &basic(":x"),
            &basic("a:"),
            &basic("a:%zz"),
        ] {
            assert!(
                matches!(
                    read_credentials(Some(bad), &none),
                    Err(CredentialsError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
