//! `jsonwebtoken`'s cryptography on `ring`, the one crypto stack of the process (rustls, our
//! own ES256 signatures, sealed secrets): `jsonwebtoken` is built without a backend of its own
//! (its `aws_lc_rs` backend would link a second stack, AWS-LC, about 2 MB of every function
//! binary; its `rust_crypto` backend would add the `rsa` crate and curve25519-dalek), and
//! [`install`] makes this provider the process's before any JWT is signed or verified.
//!
//! It mirrors `jsonwebtoken::crypto::aws_lc` (aws-lc-rs keeps ring's API), algorithm for
//! algorithm. Which algorithms a caller *accepts* is decided elsewhere
//! ([`super::external::ALGORITHMS`]: never `none` or HMAC for other parties' tokens).

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature as sig;
use ring::{digest, hmac};

/// Make the `ring` provider `jsonwebtoken`'s for this process (idempotent; cheap after the
/// first call). Everything in this crate that signs or verifies with `jsonwebtoken` calls it
/// first; so must a test that uses `jsonwebtoken` directly.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err only if a provider is already installed (then it is this one, or a test's choice).
        let _ = PROVIDER.install_default();
    });
}

/// The provider.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

/// `ring`'s errors say nothing (by design); neither does this one.
fn sig_err<E>(_: E) -> signature::Error {
    signature::Error::new()
}

fn family(actual: AlgorithmFamily, wanted: AlgorithmFamily) -> Result<()> {
    if actual == wanted {
        Ok(())
    } else {
        Err(ErrorKind::InvalidKeyFormat.into())
    }
}

// ---- signing ------------------------------------------------------------------------------------

enum SigningKey {
    Hmac(hmac::Key),
    Ecdsa(sig::EcdsaKeyPair),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ed25519(sig::Ed25519KeyPair),
}

struct RingSigner {
    alg: Algorithm,
    key: SigningKey,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        Ok(match &self.key {
            SigningKey::Hmac(k) => hmac::sign(k, msg).as_ref().to_vec(),
            SigningKey::Ecdsa(k) => k.sign(&rng, msg).map_err(sig_err)?.as_ref().to_vec(),
            SigningKey::Rsa(k, padding) => {
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(*padding, &rng, msg, &mut out).map_err(sig_err)?;
                out
            }
            SigningKey::Ed25519(k) => k.sign(msg).as_ref().to_vec(),
        })
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    use Algorithm::*;
    let hmac_key = |h| -> Result<SigningKey> {
        family(key.family(), AlgorithmFamily::Hmac)?;
        Ok(SigningKey::Hmac(hmac::Key::new(h, key.as_bytes())))
    };
    let ecdsa = |a| -> Result<SigningKey> {
        family(key.family(), AlgorithmFamily::Ec)?;
        sig::EcdsaKeyPair::from_pkcs8(a, key.as_bytes(), &SystemRandom::new())
            .map(SigningKey::Ecdsa)
            .map_err(|_| ErrorKind::InvalidEcdsaKey.into())
    };
    let rsa = |padding: &'static dyn sig::RsaEncoding| -> Result<SigningKey> {
        family(key.family(), AlgorithmFamily::Rsa)?;
        sig::RsaKeyPair::from_der(key.as_bytes())
            .map(|k| SigningKey::Rsa(k, padding))
            .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()).into())
    };
    let key = match alg {
        HS256 => hmac_key(hmac::HMAC_SHA256)?,
        HS384 => hmac_key(hmac::HMAC_SHA384)?,
        HS512 => hmac_key(hmac::HMAC_SHA512)?,
        ES256 => ecdsa(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)?,
        ES384 => ecdsa(&sig::ECDSA_P384_SHA384_FIXED_SIGNING)?,
        RS256 => rsa(&sig::RSA_PKCS1_SHA256)?,
        RS384 => rsa(&sig::RSA_PKCS1_SHA384)?,
        RS512 => rsa(&sig::RSA_PKCS1_SHA512)?,
        PS256 => rsa(&sig::RSA_PSS_SHA256)?,
        PS384 => rsa(&sig::RSA_PSS_SHA384)?,
        PS512 => rsa(&sig::RSA_PSS_SHA512)?,
        EdDSA => {
            family(key.family(), AlgorithmFamily::Ed)?;
            SigningKey::Ed25519(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.as_bytes())
                    .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?,
            )
        }
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(Box::new(RingSigner { alg: *alg, key }))
}

// ---- verification -------------------------------------------------------------------------------

enum VerifyingAlg {
    Hmac(hmac::Algorithm),
    /// ECDSA (fixed-length `r || s`) or Ed25519, over the raw public key bytes.
    Raw(&'static dyn sig::VerificationAlgorithm),
    Rsa(&'static sig::RsaParameters),
}

struct RingVerifier {
    alg: Algorithm,
    how: VerifyingAlg,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let bytes = || self.key.try_get_as_bytes().map_err(sig_err);
        match (&self.how, self.key.kind()) {
            (VerifyingAlg::Hmac(h), _) => {
                hmac::verify(&hmac::Key::new(*h, bytes()?), msg, signature).map_err(sig_err)
            }
            (VerifyingAlg::Raw(a), _) => sig::UnparsedPublicKey::new(*a, bytes()?)
                .verify(msg, signature)
                .map_err(sig_err),
            (VerifyingAlg::Rsa(p), DecodingKeyKind::SecretOrDer(der)) => sig::UnparsedPublicKey::new(*p, der)
                .verify(msg, signature)
                .map_err(sig_err),
            (VerifyingAlg::Rsa(p), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                sig::RsaPublicKeyComponents { n, e }
                    .verify(p, msg, signature)
                    .map_err(sig_err)
            }
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    use Algorithm::*;
    let (wanted, how) = match alg {
        HS256 => (AlgorithmFamily::Hmac, VerifyingAlg::Hmac(hmac::HMAC_SHA256)),
        HS384 => (AlgorithmFamily::Hmac, VerifyingAlg::Hmac(hmac::HMAC_SHA384)),
        HS512 => (AlgorithmFamily::Hmac, VerifyingAlg::Hmac(hmac::HMAC_SHA512)),
        ES256 => (
            AlgorithmFamily::Ec,
            VerifyingAlg::Raw(&sig::ECDSA_P256_SHA256_FIXED),
        ),
        ES384 => (
            AlgorithmFamily::Ec,
            VerifyingAlg::Raw(&sig::ECDSA_P384_SHA384_FIXED),
        ),
        RS256 => (
            AlgorithmFamily::Rsa,
            VerifyingAlg::Rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        ),
        RS384 => (
            AlgorithmFamily::Rsa,
            VerifyingAlg::Rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        ),
        RS512 => (
            AlgorithmFamily::Rsa,
            VerifyingAlg::Rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        ),
        PS256 => (
            AlgorithmFamily::Rsa,
            VerifyingAlg::Rsa(&sig::RSA_PSS_2048_8192_SHA256),
        ),
        PS384 => (
            AlgorithmFamily::Rsa,
            VerifyingAlg::Rsa(&sig::RSA_PSS_2048_8192_SHA384),
        ),
        PS512 => (
            AlgorithmFamily::Rsa,
            VerifyingAlg::Rsa(&sig::RSA_PSS_2048_8192_SHA512),
        ),
        EdDSA => (AlgorithmFamily::Ed, VerifyingAlg::Raw(&sig::ED25519)),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    family(key.family(), wanted)?;
    Ok(Box::new(RingVerifier {
        alg: *alg,
        how,
        key: key.clone(),
    }))
}

// ---- JWK helpers --------------------------------------------------------------------------------

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((c.n, c.e))
}

/// A PKCS#1 `RSAPublicKey` (`SEQUENCE { n INTEGER, e INTEGER }`), as `DecodingKey::from_rsa_der`
/// holds it. `ring` parses public keys only while verifying, so the two integers are read here.
fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let bad = || Error::from(ErrorKind::InvalidRsaKey("not a PKCS#1 RSAPublicKey".into()));
    fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        let (&l, rest) = rest.split_first()?;
        if t != tag {
            return None;
        }
        let (len, rest) = match l {
            0..=0x7f => (usize::from(l), rest),
            0x81..=0x84 => {
                let n = usize::from(l & 0x7f);
                let (len, rest) = rest.split_at_checked(n)?;
                (len.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)), rest)
            }
            _ => return None,
        };
        rest.split_at_checked(len)
    }
    let strip = |i: &[u8]| {
        i.iter()
            .position(|b| *b != 0)
            .map_or(vec![0], |p| i[p..].to_vec())
    };
    let (seq, rest) = tlv(der, 0x30).ok_or_else(bad)?;
    let (n, seq) = tlv(seq, 0x02).ok_or_else(bad)?;
    let (e, seq) = tlv(seq, 0x02).ok_or_else(bad)?;
    if !rest.is_empty() || !seq.is_empty() {
        return Err(bad());
    }
    Ok((strip(n), strip(e)))
}

fn ec_components_from_private_key(der: &[u8], alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    use sig::KeyPair;
    let (signing, curve, len) = match alg {
        Algorithm::ES256 => (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, EllipticCurve::P256, 32),
        Algorithm::ES384 => (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
        .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    let point = pair.public_key().as_ref();
    if point.first() != Some(&4) || point.len() != 1 + 2 * len {
        return Err(ErrorKind::InvalidEcdsaKey.into());
    }
    let (x, y) = point[1..].split_at(len);
    Ok((curve, x.to_vec(), y.to_vec()))
}

fn ed_pub_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    use sig::KeyPair;
    match curve {
        EllipticCurve::Ed25519 => Ok(sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| ErrorKind::InvalidEddsaKey)?
            .public_key()
            .as_ref()
            .to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(alg, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use jsonwebtoken::{Header, Validation, decode, encode};
    use serde_json::{Value, json};

    fn rsa_der() -> Vec<u8> {
        STANDARD
            .decode(include_str!("testdata/rsa2048-pkcs1.der.b64").trim())
            .unwrap()
    }

    fn roundtrip(alg: Algorithm, enc: &EncodingKey, dec: &DecodingKey) {
        install();
        let claims = json!({"sub": "s"});
        let t = encode(&Header::new(alg), &claims, enc).unwrap();
        let mut v = Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let got = decode::<Value>(&t, dec, &v).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(got.claims, claims);
        // One flipped signature bit fails.
        let (head, s) = t.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(s).unwrap();
        raw[0] ^= 1;
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));
        assert!(
            decode::<Value>(&forged, dec, &v).is_err(),
            "{alg:?} accepted a forged signature"
        );
    }

    #[test]
    fn every_algorithm_signs_and_verifies_and_rejects_a_forgery() {
        let rng = SystemRandom::new();
        let ec = sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec_pub = {
            use sig::KeyPair;
            sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, ec.as_ref(), &rng)
                .unwrap()
                .public_key()
                .as_ref()
                .to_vec()
        };
        roundtrip(
            Algorithm::ES256,
            &EncodingKey::from_ec_der(ec.as_ref()),
            &DecodingKey::from_ec_der(&ec_pub),
        );
        let ed = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed_pub = ed_pub_components_from_private_key(ed.as_ref(), &EllipticCurve::Ed25519).unwrap();
        roundtrip(
            Algorithm::EdDSA,
            &EncodingKey::from_ed_der(ed.as_ref()),
            &DecodingKey::from_ed_der(&ed_pub),
        );
        let der = rsa_der();
        let (n, e) = rsa_components_from_private_key(&der).unwrap();
        let rsa_dec = DecodingKey::from_rsa_raw_components(&n, &e);
        for alg in [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::RS512,
            Algorithm::PS384,
        ] {
            roundtrip(alg, &EncodingKey::from_rsa_der(&der), &rsa_dec);
        }
        roundtrip(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
            &DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        );
    }

    #[test]
    fn a_key_of_another_family_is_refused() {
        install();
        let t = encode(
            &Header::new(Algorithm::HS256),
            &json!({}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        let (n, e) = rsa_components_from_private_key(&rsa_der()).unwrap();
        let v = Validation::new(Algorithm::HS256);
        assert!(decode::<Value>(&t, &DecodingKey::from_rsa_raw_components(&n, &e), &v).is_err());
    }

    #[test]
    fn rsa_public_components_parse_from_pkcs1() {
        let (n, e) = rsa_components_from_private_key(&rsa_der()).unwrap();
        assert_eq!(e, vec![1, 0, 1]);
        assert_eq!(n.len(), 256);
        // SEQUENCE { INTEGER n (with its leading zero), INTEGER e }
        let mut body = vec![0x02, 0x82, 0x01, 0x01, 0x00];
        body.extend(&n);
        body.extend([0x02, 0x03, 1, 0, 1]);
        let mut der = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
        der.extend(body);
        assert_eq!(rsa_components_from_public_key(&der).unwrap(), (n, e));
        assert!(rsa_components_from_public_key(&der[..der.len() - 1]).is_err());
        assert!(rsa_components_from_public_key(&[0x30, 0x00, 0x00]).is_err());
    }
}
