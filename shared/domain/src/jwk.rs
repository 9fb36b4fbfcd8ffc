//! Which JWK Sets a client or trusted issuer may register (RFC 7517, RFC 7591 `jwks`): public
//! signing keys only, of the types and algorithms this server verifies with. Pure JSON rules;
//! `keys::external` then reads the keys with its JOSE library.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The algorithms accepted for other parties' JWTs, by name (discovery, key `alg`).
pub const ALGORITHM_NAMES: &[&str] = &["ES256", "RS256", "PS256", "EdDSA"];

/// Most keys a registered JWK Set may hold.
pub const MAX_KEYS: usize = 10;

/// Members that carry private or symmetric key material.
pub const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Check a JWK Set as a client or trusted issuer registers it: a JSON object with `keys`, 1 to
/// [`MAX_KEYS`] public signing keys (EC P-256, RSA of at least 2048 bits, OKP Ed25519), no
/// private or symmetric key material, `use` absent or `sig`, `alg` absent or one of
/// [`ALGORITHM_NAMES`], `kid`s unique.
pub fn check_public_jwks(v: &Value) -> Result<(), String> {
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be an object with a keys array")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("jwks must hold 1 to {MAX_KEYS} keys"));
    }
    let mut kids = HashSet::new();
    for k in keys {
        let obj = k.as_object().ok_or("each key must be a JSON object")?;
        if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
            return Err("jwks must hold public keys only (no private or symmetric key material)".into());
        }
        // A member set to null is absent (as JOSE libraries read it).
        match obj.get("use") {
            None | Some(Value::Null) => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(Value::String(_)) => return Err("jwks keys must be signing keys (use sig)".into()),
            Some(_) => return Err(unreadable()),
        }
        match obj.get("kid") {
            None | Some(Value::Null) => {}
            Some(Value::String(kid)) if !kids.insert(kid.as_str()) => {
                return Err("jwks key ids must be unique".into());
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(unreadable()),
        }
        check_key_material(obj)?;
        for list in ["key_ops", "x5c"] {
            match obj.get(list) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
                Some(_) => return Err(unreadable()),
            }
        }
        match obj.get("alg") {
            None | Some(Value::Null) => {}
            Some(Value::String(a)) if ALGORITHM_NAMES.contains(&a.as_str()) => {}
            Some(_) => {
                return Err(format!(
                    "jwks key algorithm must be one of {}",
                    ALGORITHM_NAMES.join(" ")
                ));
            }
        }
    }
    Ok(())
}

fn unreadable() -> String {
    "jwks holds a key this server cannot read".into()
}

fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    obj.get(name).and_then(Value::as_str).ok_or_else(unreadable)
}

fn base64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| unreadable())
}

/// The key's type, curve and public parameters: EC P-256 (32-byte `x`, `y`), OKP Ed25519
/// (32-byte `x`), RSA (`n` of at least 2048 bits, `e`).
fn check_key_material(obj: &Map<String, Value>) -> Result<(), String> {
    let wrong_kind = || "jwks keys must be EC P-256, RSA or OKP Ed25519".to_string();
    let kty = obj.get("kty").and_then(Value::as_str).ok_or_else(unreadable)?;
    match kty {
        "EC" => {
            if member(obj, "crv")? != "P-256" {
                return Err(wrong_kind());
            }
            for c in ["x", "y"] {
                if base64url(member(obj, c)?)?.len() != 32 {
                    return Err(unreadable());
                }
            }
        }
        "OKP" => {
            if member(obj, "crv")? != "Ed25519" {
                return Err(wrong_kind());
            }
            if base64url(member(obj, "x")?)?.len() != 32 {
                return Err(unreadable());
            }
        }
        "RSA" => {
            let n =
                base64url(member(obj, "n")?).map_err(|_| "an RSA key's n is not base64url".to_string())?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < 2048 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            if base64url(member(obj, "e")?)?.is_empty() {
                return Err(unreadable());
            }
        }
        _ => return Err(wrong_kind()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ec(kid: &str) -> Value {
        let b = URL_SAFE_NO_PAD.encode([1u8; 32]);
        json!({"kty": "EC", "crv": "P-256", "x": b, "y": b, "kid": kid, "use": "sig", "alg": "ES256"})
    }

    #[test]
    fn public_signing_keys_pass() {
        assert_eq!(check_public_jwks(&json!({"keys": [ec("a"), ec("b")]})), Ok(()));
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([2u8; 32])});
        let rsa = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 256]), "e": "AQAB"});
        assert_eq!(check_public_jwks(&json!({"keys": [ed, rsa]})), Ok(()));
        let mut nulls = ec("a");
        for m in ["use", "kid", "alg", "key_ops"] {
            nulls[m] = Value::Null;
        }
        assert_eq!(
            check_public_jwks(&json!({"keys": [nulls]})),
            Ok(()),
            "null is absent"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let mut private = ec("a");
        private["d"] = json!("AAAA");
        let mut enc = ec("a");
        enc["use"] = json!("enc");
        let mut hs = ec("a");
        hs["alg"] = json!("HS256");
        let mut short_x = ec("a");
        short_x["x"] = json!("AAAA");
        let mut p384 = ec("a");
        p384["crv"] = json!("P-384");
        let small_rsa = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        let oct = json!({"kty": "oct", "k": "AAAA"});
        let mut bad_ops = ec("a");
        bad_ops["key_ops"] = json!("verify");
        for bad in [
            json!({}),
            json!({"keys": []}),
            json!({"keys": [1]}),
            json!({"keys": vec![ec("a"); 11]}),
            json!({"keys": [ec("a"), ec("a")]}),
            json!({"keys": [private]}),
            json!({"keys": [enc]}),
            json!({"keys": [hs]}),
            json!({"keys": [short_x]}),
            json!({"keys": [p384]}),
            json!({"keys": [small_rsa]}),
            json!({"keys": [oct]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256"}]}),
            json!({"keys": [bad_ops]}),
        ] {
            assert!(check_public_jwks(&bad).is_err(), "{bad}");
        }
    }
}
