//! `read_credentials` on an arbitrary `Authorization` header and form body. Input: the header,
//! a NUL byte, then the body; with no NUL byte, the whole input is the body and there is no
//! header. Checks which method was chosen against what was presented, and that Basic
//! credentials read back the same after being encoded again.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use shared::domain::client_auth::{ClientAuthMethod, CredentialsError, Evidence, read_credentials};
use shared::domain::params::Params;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    // The HTTP layer hands over a header only if it is a string; a body only if it parsed.
    let header = match header.map(std::str::from_utf8) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => return,
    };
    let Ok(params) = Params::parse(body) else {
        return;
    };
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    let asserting = assertion.is_some() || assertion_type.is_some();

    match read_credentials(header, &params) {
        Ok(c) => {
            assert!(!c.client_id.is_empty());
            match &c.evidence {
                Evidence::SecretBasic(secret) => {
                    assert_eq!(c.method(), ClientAuthMethod::ClientSecretBasic);
                    assert!(header.is_some() && body_secret.is_none());
                    assert!(body_id.is_none_or(|b| b == c.client_id));
                    assert!(!secret.expose().is_empty());
                    // Encode the credentials again (RFC 6749 §2.3.1): they read back the same.
                    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                    let again = format!(
                        "Basic {}",
                        STANDARD.encode(format!("{}:{}", enc(&c.client_id), enc(secret.expose())))
                    );
                    let d = read_credentials(Some(&again), &Params::default()).expect("re-encoded Basic");
                    assert_eq!(d.client_id, c.client_id);
                    match &d.evidence {
                        Evidence::SecretBasic(s) => assert_eq!(s.expose(), secret.expose()),
                        other => panic!("re-encoded Basic read as {other:?}"),
                    }
                }
                Evidence::SecretPost(secret) => {
                    assert_eq!(c.method(), ClientAuthMethod::ClientSecretPost);
                    assert!(header.is_none());
                    assert_eq!(Some(c.client_id.as_str()), body_id);
                    assert_eq!(Some(secret.expose()), body_secret);
                }
                Evidence::Assertion(jwt) => {
                    assert_eq!(c.method(), ClientAuthMethod::PrivateKeyJwt);
                    assert!(header.is_none() && body_secret.is_none());
                    assert_eq!(Some(jwt.as_str()), assertion);
                    assert!(body_id.is_none_or(|b| b == c.client_id));
                }
                Evidence::WorkloadToken(jwt) => {
                    assert_eq!(c.method(), ClientAuthMethod::Federated);
                    assert!(header.is_none() && body_secret.is_none());
                    assert_eq!(Some(jwt.as_str()), assertion);
                    // Named by the client_id beside it, never by the token's own `sub`.
                    assert_eq!(Some(c.client_id.as_str()), body_id);
                }
                Evidence::Nothing => {
                    assert_eq!(c.method(), ClientAuthMethod::None);
                    assert!(header.is_none() && body_secret.is_none() && !asserting);
                    assert_eq!(Some(c.client_id.as_str()), body_id);
                }
            }
            // Neither a secret nor an assertion shows in Debug output.
            let printed = format!("{:?}", c.evidence);
            assert!(printed.contains("[redacted]") || printed == "Nothing", "{printed}");
        }
        Err(CredentialsError::Missing) => assert!(header.is_none() && body_id.is_none() && !asserting),
        Err(CredentialsError::MultipleMethods) => {
            assert!((header.is_some() && body_secret.is_some()) || (asserting && (header.is_some() || body_secret.is_some())))
        }
        Err(CredentialsError::Malformed(why)) => {
            assert!(header.is_some() || asserting, "malformed without a header or an assertion: {why}");
        }
    }
});
