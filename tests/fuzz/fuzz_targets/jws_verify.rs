//! `keys::jws::verify` against a fixed one-key set. Two kinds of input:
//!
//! - `T<token>`: an arbitrary compact JWS. If it verifies, its header says ES256, `at+jwt` and
//!   the key's `kid`, the payload is the decoded second part, and `p256` agrees that the
//!   signature is valid (a differential check of `ring`, which `verify` uses). If `verify` says
//!   only the signature is wrong, `p256` must agree too.
//! - `S<header JSON>\n<payload>`: we sign the header and payload with the fixed key, so the
//!   signature is always right and the result depends on the header alone; it must be exactly
//!   what the header rules say (alg ES256, typ `at+jwt`, no `crit`, a known `kid`).
#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey};
use serde_json::Value;
use shared::keys::jws::{self, JwsError};
use shared::keys::{KeySet, PublicKey};

const TYP: &str = "at+jwt";

/// The fixed test key (never used anywhere else) and the set holding its public half.
static KEY: LazyLock<(SigningKey, KeySet)> = LazyLock::new(|| {
    let sk = SigningKey::from_slice(&[0x42; 32]).expect("a valid P-256 scalar");
    let keys = KeySet {
        keys: vec![PublicKey::new(*sk.verifying_key())],
    };
    (sk, keys)
});

fuzz_target!(|data: &[u8]| {
    let (sk, keys) = &*KEY;
    let kid = keys.keys[0].kid.as_str();
    match data.split_first() {
        Some((b'S', rest)) => signed(sk, keys, kid, rest),
        Some((_, rest)) => {
            if let Ok(token) = std::str::from_utf8(rest) {
                arbitrary_token(keys, kid, token);
            }
        }
        None => {}
    }
});

/// The header rules, applied to a decoded header.
fn expected(header: &[u8], kid: &str) -> Result<(), JwsError> {
    let header: Value = serde_json::from_slice(header).map_err(|_| JwsError::Malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256")
        || header.get("typ").and_then(Value::as_str) != Some(TYP)
        || header.get("crit").is_some()
    {
        return Err(JwsError::UnsupportedHeader);
    }
    match header.get("kid").and_then(Value::as_str) {
        None => Err(JwsError::UnsupportedHeader),
        Some(k) if k == kid => Ok(()),
        Some(_) => Err(JwsError::UnknownKey),
    }
}

fn signed(sk: &SigningKey, keys: &KeySet, kid: &str, rest: &[u8]) {
    let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig: Signature = sk.sign(input.as_bytes());
    let token = jws::assemble(input, &sig.to_bytes().into());
    let got = jws::verify(&token, keys, TYP);
    if token.len() > 16 * 1024 {
        assert_eq!(got, Err(JwsError::Malformed));
        return;
    }
    match expected(header, kid) {
        Ok(()) => assert_eq!(got.as_deref(), Ok(payload)),
        Err(e) => assert_eq!(got, Err(e)),
    }
}

fn arbitrary_token(keys: &KeySet, kid: &str, token: &str) {
    let got = jws::verify(token, keys, TYP);
    let parts: Vec<&str> = token.split('.').collect();
    let p256_accepts = || {
        let [h, p, s] = parts[..] else { return false };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(s) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&sig) else {
            return false;
        };
        keys.keys[0]
            .key
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .is_ok()
    };
    match got {
        Ok(payload) => {
            assert_eq!(parts.len(), 3);
            let header = URL_SAFE_NO_PAD.decode(parts[0]).expect("header decodes");
            assert_eq!(expected(&header, kid), Ok(()));
            assert_eq!(
                URL_SAFE_NO_PAD.decode(parts[1]).as_deref(),
                Ok(payload.as_slice())
            );
            assert!(p256_accepts(), "ring accepted a signature p256 refuses");
        }
        Err(JwsError::BadSignature) => {
            assert!(!p256_accepts(), "ring refused a signature p256 accepts");
        }
        Err(_) => {}
    }
}
