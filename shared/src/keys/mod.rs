//! Signing keys: the `Signer` port, JWS compact serialisation (ES256), JWKs.
//!
//! Adapters: [`local`] (an ES256 key file in the data directory, for `bulwark serve`) and, in
//! the Lambda build, [`kms`] (every JWT signed by KMS `Sign`) and [`wrapped`] (a key kept only
//! as KMS ciphertext in the store, decrypted once per process, signing in process). All produce
//! the same JWS; verification is done here, against the published key set, for introspection
//! and revocation.

pub mod external;
pub mod jws;
pub mod jwt_crypto;
#[cfg(feature = "aws")]
pub mod kms;
#[cfg(feature = "local-signer")]
pub mod local;
pub mod wrapped;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::EncodedPoint;
use p256::ecdsa::VerifyingKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignerError {
    /// The key backend could not be reached (KMS down, key file unreadable).
    #[error("signer unavailable: {0}")]
    Unavailable(String),
    /// The key material is unusable (corrupt file, wrong key type).
    #[error("signer misconfigured: {0}")]
    Invalid(String),
}

/// The signing port. The active key signs; every published key verifies.
#[async_trait]
pub trait Signer: Send + Sync + 'static {
    /// Sign `claims` (a JSON object, serialised) as a compact JWS with header
    /// `{"alg":"ES256","typ":typ,"kid":<active kid>}`.
    async fn sign_jwt(&self, typ: &str, claims: &[u8]) -> Result<String, SignerError>;

    /// The public keys currently published (active first). Cached by the adapter.
    async fn public_keys(&self) -> Result<Arc<KeySet>, SignerError>;

    /// Get ready to sign (at a Lambda cold start): an adapter that must fetch or decrypt key
    /// material does it now rather than on the first request. A failure is not fatal: the
    /// adapter tries again on the next request.
    async fn prepare(&self) -> Result<(), SignerError> {
        Ok(())
    }
}

/// What `bulwark keys rotate` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotation {
    pub active_kid: String,
    pub published_kids: Vec<String>,
}

#[cfg(feature = "aws")]
/// The signer of a signing mode, over the SDK clients of `sdk` and the store.
pub fn aws_signer(
    signing: &crate::config::Signing,
    sdk: &crate::aws::SdkConfig,
    store: &Arc<dyn crate::store::Kv>,
    clock: Arc<dyn crate::clock::Clock>,
    retention: i64,
) -> Result<Arc<dyn Signer>, SignerError> {
    Ok(match signing {
        crate::config::Signing::Kms { key_ids } => Arc::new(kms::KmsSigner::new(
            aws_sdk_kms::Client::new(sdk),
            key_ids.clone(),
        )?),
        crate::config::Signing::Wrapped {
            stack,
            wrapping_key_id,
        } => {
            let wrapper = wrapping_key_id.as_ref().map(|id| {
                Arc::new(kms::KmsKeyWrapper::new(aws_sdk_kms::Client::new(sdk), id.clone()))
                    as Arc<dyn wrapped::KeyWrapper>
            });
            Arc::new(wrapped::WrappedSigner::new(
                crate::store::repo::Repo::new(store.clone(), clock.clone()),
                stack,
                wrapper,
                clock,
                retention,
            ))
        }
    })
}

/// A public key with its id.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pub kid: String,
    pub key: VerifyingKey,
    /// The SEC1 uncompressed point (`04 || x || y`), as `ring` verifies with it.
    pub uncompressed: Vec<u8>,
}

impl PublicKey {
    pub fn new(key: VerifyingKey) -> Self {
        let uncompressed = key.to_encoded_point(false).as_bytes().to_vec();
        Self {
            kid: thumbprint(&key),
            key,
            uncompressed,
        }
    }

    /// Verify an ES256 signature (`r || s`) over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &self.uncompressed)
            .verify(message, signature)
            .is_ok()
    }

    /// The public JWK (RFC 7517) with `use`, `alg` and `kid`.
    pub fn jwk(&self) -> Value {
        let (x, y) = coordinates(&self.key);
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": self.kid})
    }
}

/// The set of published keys.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
}

impl KeySet {
    pub fn find(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        json!({"keys": self.keys.iter().map(PublicKey::jwk).collect::<Vec<_>>()})
    }
}

fn coordinates(key: &VerifyingKey) -> (String, String) {
    let point: EncodedPoint = key.to_encoded_point(false);
    let x = point.x().map(|x| URL_SAFE_NO_PAD.encode(x)).unwrap_or_default();
    let y = point.y().map(|y| URL_SAFE_NO_PAD.encode(y)).unwrap_or_default();
    (x, y)
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): a stable key id derived from the key itself.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let (x, y) = coordinates(key);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_construction() {
        // RFC 7638 defines the hash over the required members in lexicographic order; recompute it
        // from the JWK we publish and compare.
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pk = PublicKey::new(*sk.verifying_key());
        let jwk = pk.jwk();
        let canonical = serde_json::to_string(&json!({
            "crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]
        }))
        .unwrap();
        assert_eq!(
            pk.kid,
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(pk.kid.len(), 43);
    }
}
