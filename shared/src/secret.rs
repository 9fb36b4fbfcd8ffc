//! Drawing secrets and sealing with them: the one place that takes randomness for secrets
//! ([`generate`], [`random_id`], the nonce of [`seal_for`]) and hashes passwords (argon2id). The
//! types themselves ([`Secret`], [`SecretHash`]) are the domain's (`domain::secret`).

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub use crate::domain::secret::{Secret, SecretHash, ct_eq_str, verify_against_nothing};

/// A fresh random 256-bit secret, base64url without padding (43 characters).
pub fn generate() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::from_random_bytes(bytes)
}

/// A random identifier (not a secret): `bytes` random bytes, lowercase hex.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes * 2);
    for b in buf {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
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

fn argon() -> argon2::Argon2<'static> {
    // OWASP's first recommended argon2id setting: 19 MiB, 2 passes, 1 lane.
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hash a password with argon2id and a random salt (PHC string format).
pub fn hash_password(p: &Secret) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon()
        .hash_password(p.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Whether `p` matches the PHC string `phc` (constant-time inside argon2).
pub fn verify_password(p: &Secret, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(phc) {
        Ok(h) => argon().verify_password(p.expose().as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password(&generate()));

/// Spend the same time as [`verify_password`] when there is no user, so that a wrong
/// username and a wrong password cannot be told apart by timing.
pub fn verify_against_no_user(p: &Secret) -> bool {
    let _ = verify_password(p, &DUMMY_HASH);
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_lowercase_hex_of_their_length_and_differ() {
        let a = random_id(16);
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{a}"
        );
        assert_ne!(a, random_id(16));
        // Every nibble value appears over enough draws (a table off by one would miss one).
        let many: String = (0..64).map(|_| random_id(16)).collect();
        for c in "0123456789abcdef".chars() {
            assert!(many.contains(c), "{c} never drawn");
        }
    }

    #[test]
    fn only_the_key_holder_opens_a_seal() {
        let k = generate();
        let sealed = seal_for(&k, "refresh-successor", b"the next pair").unwrap();
        assert!(!sealed.contains("the next pair"));
        assert_eq!(
            open_with(&k, "refresh-successor", &sealed).unwrap(),
            b"the next pair"
        );
        assert!(open_with(&generate(), "refresh-successor", &sealed).is_none());
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
    fn generated_secrets_are_256_bit_and_distinct() {
        let a = generate();
        let b = generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let p = Secret::new("correct horse battery");
        let h = hash_password(&p);
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&p, &h));
        assert!(!verify_password(&Secret::new("wrong horse battery"), &h));
        assert!(!verify_password(&p, "not a hash"));
        assert_ne!(h, hash_password(&p), "salted");
        assert!(!verify_against_no_user(&p));
    }
}
