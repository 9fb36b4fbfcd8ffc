//! Secrets as types: values that never print, are stored only as SHA-256 hashes and are
//! compared in constant time. Drawing random secrets is not the domain's business
//! (`shared::secret::generate`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret value (client secret, registration or initial access token, ...).
///
/// `Debug` prints `[redacted]`; there is no `Display` and no `Serialize`, so a secret reaches a
/// log line or a response body only through an explicit [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// A secret made of 256 random bits the caller drew (the domain draws no randomness of its
    /// own: `shared::secret::generate` is the one place that does), base64url without padding
    /// (43 characters).
    pub fn from_random_bytes(bytes: [u8; 32]) -> Self {
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

/// Constant-time equality of two strings (length is not hidden).
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some() -> Secret {
        Secret::from_random_bytes([7u8; 32])
    }

    #[test]
    fn debug_is_redacted() {
        let s = some();
        let printed = format!("{s:?} {:?}", s.hash());
        assert!(!printed.contains(s.expose()));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn hash_verifies_only_the_same_secret() {
        let a = some();
        let h = a.hash();
        assert!(h.verify(&Secret::new(a.expose())));
        assert!(!h.verify(&Secret::new(format!("{}x", a.expose()))));
        assert!(!h.verify(&Secret::new("")));
    }

    #[test]
    fn hex_round_trips() {
        let h = some().hash();
        assert_eq!(SecretHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(SecretHash::from_hex("zz"), None);
        assert_eq!(SecretHash::from_hex(&"g".repeat(64)), None);
    }
}
