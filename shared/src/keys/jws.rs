//! JWS compact serialisation with ES256 (RFC 7515, RFC 7518 §3.4): the signature is the 64-byte
//! `r || s`, never DER.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::KeySet;

/// `base64url(header) "." base64url(payload)`, the bytes that get signed.
pub fn signing_input(kid: &str, typ: &str, claims: &[u8]) -> String {
    let header = serde_json::json!({"alg": "ES256", "typ": typ, "kid": kid});
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = URL_SAFE_NO_PAD.encode(header);
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(claims));
    out
}

/// Append the signature to a signing input.
pub fn assemble(signing_input: String, signature: &[u8; 64]) -> String {
    let mut out = signing_input;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature));
    out
}

/// Why a compact JWS was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum JwsError {
    Malformed,
    UnsupportedHeader,
    UnknownKey,
    BadSignature,
}

/// Verify a compact JWS against `keys`; require `alg: ES256` and the given `typ`. Returns the
/// decoded payload.
pub fn verify(token: &str, keys: &KeySet, typ: &str) -> Result<Vec<u8>, JwsError> {
    if token.len() > 16 * 1024 {
        return Err(JwsError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwsError::Malformed);
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwsError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256")
        || header.get("typ").and_then(Value::as_str) != Some(typ)
        || header.get("crit").is_some()
    {
        return Err(JwsError::UnsupportedHeader);
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwsError::UnsupportedHeader)?;
    let key = keys.find(kid).ok_or(JwsError::UnknownKey)?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwsError::Malformed)?;
    if sig.len() != 64 {
        return Err(JwsError::BadSignature);
    }
    let input_len = h.len() + 1 + p.len();
    if !key.verify(&token.as_bytes()[..input_len], &sig) {
        return Err(JwsError::BadSignature);
    }
    URL_SAFE_NO_PAD.decode(p).map_err(|_| JwsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};

    fn sign(sk: &SigningKey, kid: &str, typ: &str, claims: &[u8]) -> String {
        let input = signing_input(kid, typ, claims);
        let sig: Signature = sk.sign(input.as_bytes());
        assemble(input, &sig.to_bytes().into())
    }

    #[test]
    fn round_trip_and_refusals() {
        let sk = SigningKey::from_slice(&[1u8; 32]).unwrap();
        let other = SigningKey::from_slice(&[2u8; 32]).unwrap();
        let pk = PublicKey::new(*sk.verifying_key());
        let keys = KeySet {
            keys: vec![pk.clone()],
        };
        let t = sign(&sk, &pk.kid, "at+jwt", br#"{"a":1}"#);
        assert_eq!(verify(&t, &keys, "at+jwt").unwrap(), br#"{"a":1}"#);
        assert_eq!(verify(&t, &keys, "JWT"), Err(JwsError::UnsupportedHeader));
        assert_eq!(
            verify(&sign(&other, &pk.kid, "at+jwt", b"{}"), &keys, "at+jwt"),
            Err(JwsError::BadSignature)
        );
        assert_eq!(
            verify(&sign(&sk, "nope", "at+jwt", b"{}"), &keys, "at+jwt"),
            Err(JwsError::UnknownKey)
        );
        // payload swapped under a valid signature
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"a":2}"#);
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), &keys, "at+jwt"),
            Err(JwsError::BadSignature)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.AAAA"] {
            assert!(verify(garbage, &keys, "at+jwt").is_err(), "{garbage}");
        }
        // alg none is refused
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#),
            URL_SAFE_NO_PAD.encode(b"{}")
        );
        assert_eq!(verify(&none, &keys, "at+jwt"), Err(JwsError::UnsupportedHeader));
    }
}
