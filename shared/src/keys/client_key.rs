//! A client's own private key, for signing its RFC 7523 client assertions (`private_key_jwt`)
//! as a client of some authorization server (`bulwark token --private-key-file`): an EC P-256
//! key (ES256) or an RSA key (RS256), read from PEM — PKCS#8 (`PRIVATE KEY`), SEC1
//! (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`). Signed with `jsonwebtoken` on
//! [`super::jwt_crypto`] (ring); `p256` only re-encodes an EC key as the PKCS#8 ring reads.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::der::{self, Decode};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, ObjectIdentifier, PrivateKeyInfo};

/// `rsaEncryption` (RFC 8017).
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480).
const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// Why a key cannot be used. Never shows the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM private key")]
    NotPem,
    #[error(
        "a PEM `{0}`, not a private key this can sign with (EC P-256 or RSA: PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY; unencrypted)"
    )]
    Unsupported(String),
    #[error("the key could not be read: {0}")]
    Malformed(&'static str),
    #[error("signing failed")]
    Signing,
}

/// The algorithms a [`ClientKey`] signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Rs256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    fn jwt(self) -> Algorithm {
        match self {
            Alg::Es256 => Algorithm::ES256,
            Alg::Rs256 => Algorithm::RS256,
        }
    }
}

/// A private key and the algorithm it signs with.
pub struct ClientKey {
    alg: Alg,
    key: EncodingKey,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientKey({:?}, <redacted>)", self.alg)
    }
}

impl ClientKey {
    /// Read a PEM private key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (label, der) = der::pem::decode_vec(pem).map_err(|_| KeyError::NotPem)?;
        match label {
            "EC PRIVATE KEY" => Self::ec(
                p256::SecretKey::from_sec1_der(&der)
                    .map_err(|_| KeyError::Malformed("not an EC P-256 key (SEC1)"))?,
            ),
            "RSA PRIVATE KEY" => Self::rsa(der),
            "PRIVATE KEY" => {
                let info = PrivateKeyInfo::from_der(&der).map_err(|_| KeyError::Malformed("not PKCS#8"))?;
                if info.algorithm.oid == RSA {
                    Self::rsa(info.private_key.to_vec())
                } else if info.algorithm.oid == EC {
                    Self::ec(
                        p256::SecretKey::from_pkcs8_der(&der)
                            .map_err(|_| KeyError::Malformed("an EC key, but not on P-256"))?,
                    )
                } else {
                    Err(KeyError::Unsupported(format!(
                        "PRIVATE KEY ({})",
                        info.algorithm.oid
                    )))
                }
            }
            other => Err(KeyError::Unsupported(other.to_string())),
        }
    }

    fn ec(key: p256::SecretKey) -> Result<Self, KeyError> {
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|_| KeyError::Malformed("the EC key could not be re-encoded"))?;
        Ok(Self {
            alg: Alg::Es256,
            key: EncodingKey::from_ec_der(pkcs8.as_bytes()),
        })
    }

    /// `pkcs1`: an RSAPrivateKey (RFC 8017), which is what ring reads.
    fn rsa(pkcs1: Vec<u8>) -> Result<Self, KeyError> {
        let key = Self {
            alg: Alg::Rs256,
            key: EncodingKey::from_rsa_der(&pkcs1),
        };
        // Refuse a bad key now, not at the first signature.
        key.sign(None, None, &serde_json::json!({}))?;
        Ok(key)
    }

    /// `ES256` or `RS256`.
    pub fn alg(&self) -> &'static str {
        self.alg.as_str()
    }

    /// A compact JWS of `claims` with header `alg`, `typ` and `kid` (when given).
    pub fn sign(
        &self,
        typ: Option<&str>,
        kid: Option<&str>,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        super::jwt_crypto::install();
        let mut header = Header::new(self.alg.jwt());
        header.typ = typ.map(str::to_string);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|_| KeyError::Signing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use p256::pkcs8::LineEnding;

    fn pem(label: &str, der: &[u8]) -> String {
        der::pem::encode_string(label, LineEnding::LF, der).unwrap()
    }

    fn rsa_pkcs1() -> Vec<u8> {
        STANDARD
            .decode(include_str!("testdata/rsa2048-pkcs1.der.b64").trim())
            .unwrap()
    }

    /// PKCS#8 around a PKCS#1 RSA key: SEQUENCE { 0, { rsaEncryption, NULL }, OCTET STRING }.
    fn rsa_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            let n = body.len();
            if n < 128 {
                v.push(n as u8);
            } else {
                v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let alg = tlv(
            0x30,
            &[
                &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01][..],
                &[0x05, 0x00],
            ]
            .concat(),
        );
        tlv(0x30, &[&[0x02, 0x01, 0x00][..], &alg, &tlv(0x04, pkcs1)].concat())
    }

    fn claims(token: &str) -> (serde_json::Value, serde_json::Value) {
        let part = |i: usize| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap())
                .unwrap()
        };
        (part(0), part(1))
    }

    #[test]
    fn ec_keys_in_pkcs8_and_sec1_sign_es256_that_verifies() {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let public = p256::ecdsa::VerifyingKey::from(&p256::ecdsa::SigningKey::from(&secret));
        let pkcs8 = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        for pem in [pkcs8.as_str(), sec1.as_str()] {
            let key = ClientKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.alg(), "ES256");
            let jws = key
                .sign(
                    Some("client-authentication+jwt"),
                    Some("k1"),
                    &serde_json::json!({"iss": "c"}),
                )
                .unwrap();
            let (header, body) = claims(&jws);
            assert_eq!(header["alg"], "ES256");
            assert_eq!(header["kid"], "k1");
            assert_eq!(header["typ"], "client-authentication+jwt");
            assert_eq!(body["iss"], "c");
            let (signed, sig) = jws.rsplit_once('.').unwrap();
            let sig = p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
            use p256::ecdsa::signature::Verifier;
            public.verify(signed.as_bytes(), &sig).unwrap();
        }
    }

    #[test]
    fn rsa_keys_in_pkcs1_and_pkcs8_sign_rs256_that_verifies() {
        let pkcs1 = rsa_pkcs1();
        let n = URL_SAFE_NO_PAD
            .decode(include_str!("testdata/rsa2048-n.b64url").trim())
            .unwrap();
        for pem in [
            pem("RSA PRIVATE KEY", &pkcs1),
            pem("PRIVATE KEY", &rsa_pkcs8(&pkcs1)),
        ] {
            let key = ClientKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.alg(), "RS256");
            let jws = key.sign(None, None, &serde_json::json!({"iss": "c"})).unwrap();
            let (header, _) = claims(&jws);
            assert_eq!(header["alg"], "RS256");
            assert!(header.get("kid").is_none_or(|k| k.is_null()));
            let (signed, sig) = jws.rsplit_once('.').unwrap();
            ring::signature::RsaPublicKeyComponents {
                n: n.as_slice(),
                e: &[1u8, 0, 1][..],
            }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(sig).unwrap(),
            )
            .unwrap();
        }
    }

    #[test]
    fn other_pems_are_refused_without_showing_the_key() {
        assert_eq!(ClientKey::from_pem(b"not a key").unwrap_err(), KeyError::NotPem);
        let cert = pem("CERTIFICATE", b"\x30\x00");
        assert!(
            matches!(ClientKey::from_pem(cert.as_bytes()), Err(KeyError::Unsupported(l)) if l == "CERTIFICATE")
        );
        let bad_rsa = pem("RSA PRIVATE KEY", b"\x30\x03\x02\x01\x00");
        let e = ClientKey::from_pem(bad_rsa.as_bytes()).unwrap_err();
        assert!(!e.to_string().contains("MAMCAQA"), "{e}");
        let ed = pem(
            "PRIVATE KEY",
            &[
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
                0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
                25, 26, 27, 28, 29, 30, 31, 32,
            ],
        );
        assert!(matches!(
            ClientKey::from_pem(ed.as_bytes()),
            Err(KeyError::Unsupported(_))
        ));
    }
}
