//! Secrets as types: random 256-bit values that never print, are stored only as SHA-256 hashes
//! and are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret value (client secret, registration or initial access token, ...).
///
/// `Debug` prints `[redacted]`; there is no `Display` and no `Serialize`, so a secret reaches a
/// log line or a response body only through an explicit [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// A fresh random 256-bit secret, base64url without padding (43 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wrap a value a caller presented.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain value, for the one place that must show or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 hash under which this secret is stored.
    pub fn hash(&self) -> SecretHash {
        SecretHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The stored form of a secret: its SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Constant-time check of a presented secret against this hash.
    pub fn verify(&self, presented: &Secret) -> bool {
        self.0.ct_eq(&presented.hash().0).into()
    }

    /// Lowercase hex, as stored and used in keys.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
            s.push(char::from_digit((b & 0xf) as u32, 16).unwrap_or('0'));
        }
        s
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A verification against a hash that does not exist, so that "unknown client" and "wrong
/// secret" take the same time.
pub fn verify_against_nothing(presented: &Secret) -> bool {
    let dummy = SecretHash([0u8; 32]);
    let _ = dummy.verify(presented);
    false
}

/// A random identifier (not a secret): `bytes` random bytes, lowercase hex.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    let mut s = String::with_capacity(bytes * 2);
    for b in buf {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Constant-time equality of two strings (length is not hidden).
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Seal `plaintext` so that only a holder of `key` (a 256-bit random secret, e.g. a refresh
/// token) can open it: AES-256-GCM under SHA-256 of a domain-separated `label` and `key`, a
/// random 96-bit nonce; base64url(nonce || ciphertext || tag). What is stored is then no more
/// use to a reader of the store than the hash of `key` beside it.
pub fn seal_for(key: &Secret, label: &str, plaintext: &[u8]) -> Option<String> {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &seal_key(key, label)).ok()?);
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut buf = plaintext.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(label.as_bytes()),
        &mut buf,
    )
    .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// Open what [`seal_for`] sealed with the same `key` and `label`; `None` for anything else.
pub fn open_with(key: &Secret, label: &str, sealed: &str) -> Option<Vec<u8>> {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &seal_key(key, label)).ok()?);
    let mut buf = ct.to_vec();
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = k
        .open_in_place(nonce, Aad::from(label.as_bytes()), &mut buf)
        .ok()?;
    Some(plain.to_vec())
}

fn seal_key(key: &Secret, label: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"bulwark-seal\0");
    h.update(label.as_bytes());
    h.update(b"\0");
    h.update(key.expose().as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_holder_opens_a_seal() {
        let k = Secret::generate();
        let sealed = seal_for(&k, "refresh-successor", b"the next pair").unwrap();
        assert!(!sealed.contains("the next pair"));
        assert_eq!(
            open_with(&k, "refresh-successor", &sealed).unwrap(),
            b"the next pair"
        );
        assert!(open_with(&Secret::generate(), "refresh-successor", &sealed).is_none());
        assert!(open_with(&k, "another-label", &sealed).is_none());
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open_with(&k, "refresh-successor", &URL_SAFE_NO_PAD.encode(tampered)).is_none());
        assert!(open_with(&k, "refresh-successor", "").is_none());
        assert!(open_with(&k, "refresh-successor", "!!").is_none());
        assert_ne!(
            seal_for(&k, "x", b"a"),
            seal_for(&k, "x", b"a"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::generate();
        let printed = format!("{s:?} {:?}", s.hash());
        assert!(!printed.contains(s.expose()));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn generated_secrets_are_256_bit_and_distinct() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn hash_verifies_only_the_same_secret() {
        let a = Secret::generate();
        let h = a.hash();
        assert!(h.verify(&Secret::new(a.expose())));
        assert!(!h.verify(&Secret::new(format!("{}x", a.expose()))));
        assert!(!h.verify(&Secret::new("")));
    }

    #[test]
    fn hex_round_trips() {
        let h = Secret::generate().hash();
        assert_eq!(SecretHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(SecretHash::from_hex("zz"), None);
        assert_eq!(SecretHash::from_hex(&"g".repeat(64)), None);
    }
}
