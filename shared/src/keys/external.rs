//! Other parties' keys and JWTs: checking a JWK Set a client registers (public signing keys
//! only) and verifying a JWT signed by one of its keys (ES256, RS256, PS256, EdDSA; never
//! `none` or HMAC), with `jsonwebtoken` on ring ([`super::jwt_crypto`]). Our own tokens are signed and verified
//! by [`super::jws`] / the `Signer` port; this is only for what others sign.

use std::collections::HashSet;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

use crate::domain::jwk::{PRIVATE_MEMBERS, check_public_jwks};

/// The algorithms accepted for other parties' JWTs.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

pub use crate::domain::jwk::{ALGORITHM_NAMES, MAX_KEYS};

/// Why a JWT did not verify (for logs; callers answer one generic error).
#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    Algorithm,
    NoKey,
    Signature,
}

/// Check a JWK Set as a client or trusted issuer registers it ([`check_public_jwks`]: public
/// signing keys of the types and algorithms we verify with) and read it.
pub fn check_jwks(v: &Value) -> Result<JwkSet, String> {
    check_public_jwks(v)?;
    let set: JwkSet =
        serde_json::from_value(v.clone()).map_err(|_| "jwks holds a key this server cannot read")?;
    for k in &set.keys {
        DecodingKey::from_jwk(k).map_err(|_| "jwks holds a key this server cannot read")?;
    }
    Ok(set)
}

/// The signing keys of a JWK Set someone publishes at a URL (a client's or identity provider's
/// `jwks_uri`): keys for other uses (`use: enc`, as Keycloak publishes) or of types and
/// algorithms we do not verify with are left out rather than failing the whole set; the rest
/// must pass [`check_jwks`] (and no key may carry private material).
pub fn published_signing_keys(v: &Value) -> Result<JwkSet, String> {
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be an object with a keys array")?;
    if keys.len() > 10 * MAX_KEYS {
        return Err("the key set is too large".into());
    }
    let signing: Vec<Value> = keys
        .iter()
        .filter(|k| {
            let s = |f: &str| k.get(f).and_then(Value::as_str);
            let use_ok = s("use").is_none_or(|u| u == "sig");
            let alg_ok = s("alg").is_none_or(|a| ALGORITHM_NAMES.contains(&a));
            let kind_ok = matches!(
                (s("kty"), s("crv")),
                (Some("EC"), Some("P-256")) | (Some("OKP"), Some("Ed25519")) | (Some("RSA"), _)
            );
            let private = PRIVATE_MEMBERS.iter().any(|f| k.get(*f).is_some());
            private || (use_ok && alg_ok && kind_ok)
        })
        .cloned()
        .collect();
    check_jwks(&serde_json::json!({ "keys": signing }))
}

/// The header of a JWT, unverified (to choose the key).
pub fn header(token: &str) -> Result<Header, VerifyError> {
    if token.len() > 16 * 1024 {
        return Err(VerifyError::Malformed);
    }
    jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)
}

fn key_alg_matches(k: &Jwk, alg: Algorithm) -> bool {
    let family_ok = match (&k.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::PS256) => true,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    let declared_ok = match &k.common.key_algorithm {
        None => true,
        Some(a) => format!("{a:?}") == format!("{alg:?}"),
    };
    let use_ok = k
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    family_ok && declared_ok && use_ok
}

/// Verify `token`'s signature with a key of `keys` (the one its `kid` names, else any key of
/// the right type) and return its header and claims. Claims are not checked here.
pub fn verify(token: &str, keys: &JwkSet) -> Result<(Header, Value), VerifyError> {
    let h = header(token)?;
    if !ALGORITHMS.contains(&h.alg) {
        return Err(VerifyError::Algorithm);
    }
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| match &h.kid {
            Some(kid) => k.common.key_id.as_deref() == Some(kid.as_str()),
            None => true,
        })
        .filter(|k| key_alg_matches(k, h.alg))
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::NoKey);
    }
    super::jwt_crypto::install();
    let v = signature_only(h.alg);
    for k in candidates {
        let Ok(key) = DecodingKey::from_jwk(k) else {
            continue;
        };
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, &key, &v) {
            if !data.claims.is_object() {
                return Err(VerifyError::Malformed);
            }
            return Ok((h, data.claims));
        }
    }
    Err(VerifyError::Signature)
}

/// A validation that checks the signature with `alg` and nothing else (callers check claims).
fn signature_only(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.required_spec_claims = HashSet::new();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

/// A JWT's JOSE header as JSON, unverified (a DPoP proof's `typ`, `alg` and `jwk` are checked
/// by `domain::dpop` before anything is verified with its key).
pub fn unverified_header(token: &str) -> Option<Value> {
    use base64::Engine;
    if token.len() > 16 * 1024 {
        return None;
    }
    let head = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

/// Verify `token`'s signature with the one public key `jwk` (a DPoP proof carries its own key),
/// with the header's `alg`, which must be one of [`ALGORITHMS`] and fit the key; return its
/// claims. Claims are not checked here.
pub fn verify_with_key(token: &str, jwk: &serde_json::Map<String, Value>) -> Result<Value, VerifyError> {
    let h = header(token)?;
    if !ALGORITHMS.contains(&h.alg) {
        return Err(VerifyError::Algorithm);
    }
    let key: Jwk = serde_json::from_value(Value::Object(jwk.clone())).map_err(|_| VerifyError::NoKey)?;
    if !key_alg_matches(&key, h.alg) {
        return Err(VerifyError::NoKey);
    }
    let decoding = DecodingKey::from_jwk(&key).map_err(|_| VerifyError::NoKey)?;
    super::jwt_crypto::install();
    let v = signature_only(h.alg);
    let data = jsonwebtoken::decode::<Value>(token, &decoding, &v).map_err(|_| VerifyError::Signature)?;
    if !data.claims.is_object() {
        return Err(VerifyError::Malformed);
    }
    Ok(data.claims)
}

/// A string claim of a JWT, read without verifying it (to choose whose keys verify it).
pub fn unverified_claim(token: &str, name: &str) -> Option<String> {
    unverified_claims(token)?.get(name)?.as_str().map(str::to_string)
}

/// A JWT's claims, read without verifying them: only to refuse early (before fetching anyone's
/// keys) what could never pass, never to accept anything.
pub fn unverified_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    if token.len() > 16 * 1024 {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

/// The `kid` a JWT names, if any (unverified).
pub fn kid(token: &str) -> Option<String> {
    header(token).ok().and_then(|h| h.kid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use serde_json::json;

    fn encode(h: &Header, claims: &Value, key: &EncodingKey) -> jsonwebtoken::errors::Result<String> {
        crate::keys::jwt_crypto::install();
        jsonwebtoken::encode(h, claims, key)
    }

    /// A P-256 key pair: (private PKCS#8 PEM, public JWK).
    fn ec_key(kid: &str) -> (EncodingKey, Value) {
        use p256::ecdsa::SigningKey;
        use p256::pkcs8::EncodePrivateKey;
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let der = sk.to_pkcs8_der().unwrap();
        let jwk: Value =
            serde_json::from_str(&p256::PublicKey::from(sk.verifying_key()).to_jwk_string()).unwrap();
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        (EncodingKey::from_ec_der(der.as_bytes()), jwk)
    }

    #[test]
    fn verifies_with_the_named_key_and_refuses_the_rest() {
        let (k1, j1) = ec_key("one");
        let (k2, j2) = ec_key("two");
        let set = check_jwks(&json!({"keys": [j1, j2.clone()]})).unwrap();
        let claims = json!({"iss": "c", "sub": "c"});
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("one".into());
        let t = encode(&h, &claims, &k1).unwrap();
        assert_eq!(verify(&t, &set).unwrap().1, claims);
        // Signed by key two but claiming kid one: refused.
        let forged = encode(&h, &claims, &k2).unwrap();
        assert_eq!(verify(&forged, &set).unwrap_err(), VerifyError::Signature);
        // No kid: any key of the right type.
        let t = encode(&Header::new(Algorithm::ES256), &claims, &k2).unwrap();
        assert!(verify(&t, &set).is_ok());
        // Unknown kid.
        h.kid = Some("three".into());
        assert_eq!(
            verify(&encode(&h, &claims, &k1).unwrap(), &set).unwrap_err(),
            VerifyError::NoKey
        );
        // HMAC and none are refused before any key is tried.
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"x"),
        )
        .unwrap();
        assert_eq!(verify(&hs, &set).unwrap_err(), VerifyError::Algorithm);
        let none = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJjIn0.";
        assert!(verify(none, &set).is_err());
        assert_eq!(verify("garbage", &set).unwrap_err(), VerifyError::Malformed);
    }

    /// RS256, PS256 (a fixed 2048-bit test key) and EdDSA verify too; a key of one type never
    /// verifies another algorithm.
    #[test]
    fn rsa_pss_and_eddsa_verify() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let der = b64
            .decode(include_str!("testdata/rsa2048-pkcs1.der.b64").trim())
            .unwrap();
        let n = include_str!("testdata/rsa2048-n.b64url").trim();
        let rsa = EncodingKey::from_rsa_der(&der);
        let rsa_jwk = json!({"kty": "RSA", "kid": "r1", "n": n, "e": "AQAB"});
        let ed_pkcs8 =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let ed_pair = ring::signature::Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).unwrap();
        use ring::signature::KeyPair;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ed_pair.public_key().as_ref());
        let ed = EncodingKey::from_ed_der(ed_pkcs8.as_ref());
        let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "e1", "x": x});
        let set = check_jwks(&json!({"keys": [rsa_jwk, ed_jwk]})).unwrap();
        let claims = json!({"iss": "c", "sub": "c"});
        for (alg, key, kid) in [
            (Algorithm::RS256, &rsa, "r1"),
            (Algorithm::PS256, &rsa, "r1"),
            (Algorithm::EdDSA, &ed, "e1"),
        ] {
            let mut h = Header::new(alg);
            h.kid = Some(kid.into());
            let t = encode(&h, &claims, key).unwrap();
            assert_eq!(verify(&t, &set).unwrap().1, claims, "{alg:?}");
        }
        // An RSA signature presented as EdDSA under the RSA key's kid finds no key of that type.
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("e1".into());
        assert_eq!(
            verify(&encode(&h, &claims, &rsa).unwrap(), &set).unwrap_err(),
            VerifyError::NoKey
        );
        // RS384 is not on the list.
        let h = Header::new(Algorithm::RS384);
        assert_eq!(
            verify(&encode(&h, &claims, &rsa).unwrap(), &set).unwrap_err(),
            VerifyError::Algorithm
        );
    }

    #[test]
    fn registered_key_sets_hold_public_signing_keys_only() {
        let (_, j) = ec_key("a");
        assert!(check_jwks(&json!({"keys": [j.clone()]})).is_ok());
        let mut private = j.clone();
        private["d"] = json!("AAAA");
        let mut enc = j.clone();
        enc["use"] = json!("enc");
        let mut hs = j.clone();
        hs["alg"] = json!("HS256");
        for bad in [
            json!({}),
            json!({"keys": []}),
            json!({"keys": [private]}),
            json!({"keys": [enc]}),
            json!({"keys": [hs]}),
            json!({"keys": [j.clone(), j.clone()]}),
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}),
            json!({"keys": (0..11).map(|i| { let mut k = j.clone(); k["kid"] = json!(i.to_string()); k }).collect::<Vec<_>>()}),
        ] {
            assert!(check_jwks(&bad).is_err(), "{bad}");
        }
    }

    /// A published set (an identity provider's jwks_uri) may hold encryption keys and keys we
    /// do not use: they are left out, the signing keys kept; a registered set is strict.
    #[test]
    fn published_sets_keep_their_signing_keys_only() {
        let (_, sig) = ec_key("sig-1");
        let mut enc = ec_key("enc-1").1;
        enc["use"] = json!("enc");
        let mut other_alg = ec_key("es512").1;
        other_alg["alg"] = json!("ES512");
        let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384",
            "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"});
        let published = json!({"keys": [enc.clone(), sig.clone(), other_alg, p384]});
        let set = published_signing_keys(&published).unwrap();
        let kids: Vec<_> = set.keys.iter().filter_map(|k| k.common.key_id.clone()).collect();
        assert_eq!(kids, ["sig-1"]);
        assert!(check_jwks(&published).is_err(), "a registered set stays strict");
        // Nothing to sign with, or private material anywhere: refused.
        assert!(published_signing_keys(&json!({"keys": [enc]})).is_err());
        let mut leaked = sig;
        leaked["d"] = json!("AAAA");
        assert!(published_signing_keys(&json!({"keys": [leaked]})).is_err());
    }
}
