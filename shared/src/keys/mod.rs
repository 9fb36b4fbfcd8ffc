//! Signing keys: the `Signer` port, JWS compact serialisation (ES256), JWKs.
//!
//! Adapters: [`local`] (an ES256 key file in the data directory, for `bulwark serve`) and, in
//! the Lambda build, [`kms`] (every JWT signed by KMS `Sign`) and [`wrapped`] (a key kept only
//! as KMS ciphertext in the store, decrypted once per process, signing in process). All produce
//! the same JWS; verification is done here, against the published key set, for introspection
//! and revocation.

pub mod client_key;
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
/// The signer of a signing mode, over the SDK clients of `sdk` and the store; its KMS calls
/// are counted into `metrics`.
pub fn aws_signer(
    signing: &crate::config::Signing,
    sdk: &crate::aws::SdkConfig,
    ring_store: Arc<dyn wrapped::RingStore>,
    clock: Arc<dyn crate::clock::Clock>,
    retention: i64,
    metrics: Arc<dyn crate::metrics::Metrics>,
) -> Result<Arc<dyn Signer>, SignerError> {
    Ok(match signing {
        crate::config::Signing::Kms { key_ids } => {
            let kms = Arc::new(
                kms::KmsSigner::new(aws_sdk_kms::Client::new(sdk), key_ids.clone())?.with_metrics(metrics),
            );
            // The ring's keys too (none unless an operator is preparing a switch to kms-wrapped).
            let ring = Arc::new(wrapped::WrappedSigner::publishing(ring_store, clock, retention));
            Arc::new(AlsoPublishing::new(kms, ring))
        }
        crate::config::Signing::Wrapped {
            stack,
            wrapping_key_id,
            previous_kms_key_ids,
        } => {
            let wrapper = wrapping_key_id.as_ref().map(|id| {
                Arc::new(
                    kms::KmsKeyWrapper::new(aws_sdk_kms::Client::new(sdk), id.clone())
                        .with_metrics(metrics.clone()),
                ) as Arc<dyn wrapped::KeyWrapper>
            });
            let ring: Arc<dyn Signer> = Arc::new(wrapped::WrappedSigner::new(
                ring_store, stack, wrapper, clock, retention,
            ));
            if previous_kms_key_ids.is_empty() {
                ring
            } else {
                // Only `GetPublicKey`: these keys never sign here.
                let previous =
                    kms::KmsSigner::new(aws_sdk_kms::Client::new(sdk), previous_kms_key_ids.clone())?
                        .with_metrics(metrics);
                Arc::new(AlsoPublishing::new(ring, Arc::new(previous)))
            }
        }
    })
}

/// A signer that also publishes keys which do not sign, from another source: a stack that
/// switched from `SigningMode=kms` to `kms-wrapped` keeps its former KMS keys in the key set
/// (after the ring's own) until the tokens they signed have expired, and a `kms` stack publishes
/// the ring's keys (a first wrapped key, before the switch). `signer` alone signs and
/// prepares; a key set is never partial: if either source fails, so does `public_keys` (a JWKS
/// without the former key would make resource servers reject its tokens until they refetch).
pub struct AlsoPublishing {
    signer: Arc<dyn Signer>,
    previous: Arc<dyn Signer>,
    /// The last merge, by the identity of its two inputs (both adapters cache their sets).
    merged: std::sync::Mutex<Option<Merged>>,
}

/// The two inputs of a merge and its result.
type Merged = (Arc<KeySet>, Arc<KeySet>, Arc<KeySet>);

impl AlsoPublishing {
    pub fn new(signer: Arc<dyn Signer>, previous: Arc<dyn Signer>) -> Self {
        Self {
            signer,
            previous,
            merged: Default::default(),
        }
    }
}

#[async_trait]
impl Signer for AlsoPublishing {
    async fn sign_jwt(&self, typ: &str, claims: &[u8]) -> Result<String, SignerError> {
        self.signer.sign_jwt(typ, claims).await
    }

    async fn public_keys(&self) -> Result<Arc<KeySet>, SignerError> {
        let current = self.signer.public_keys().await?;
        let previous = self.previous.public_keys().await?;
        let mut merged = self.merged.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, p, m)) = merged.as_ref()
            && Arc::ptr_eq(c, &current)
            && Arc::ptr_eq(p, &previous)
        {
            return Ok(m.clone());
        }
        let mut keys = current.keys.clone();
        for k in &previous.keys {
            if !keys.iter().any(|have| have.kid == k.kid) {
                keys.push(k.clone());
            }
        }
        let set = Arc::new(KeySet { keys });
        *merged = Some((current, previous, set.clone()));
        Ok(set)
    }

    async fn prepare(&self) -> Result<(), SignerError> {
        self.signer.prepare().await
    }
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
    use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// One fixed key; its key set can be made to fail.
    struct Fixed {
        key: SigningKey,
        set: Arc<KeySet>,
        down: AtomicBool,
    }

    impl Fixed {
        fn new(seed: u8) -> Arc<Self> {
            let key = SigningKey::from_slice(&[seed; 32]).unwrap();
            let set = Arc::new(KeySet {
                keys: vec![PublicKey::new(*key.verifying_key())],
            });
            Arc::new(Self {
                key,
                set,
                down: AtomicBool::new(false),
            })
        }
        fn kid(&self) -> String {
            self.set.keys[0].kid.clone()
        }
    }

    #[async_trait]
    impl Signer for Fixed {
        async fn sign_jwt(&self, typ: &str, claims: &[u8]) -> Result<String, SignerError> {
            let input = jws::signing_input(&self.kid(), typ, claims);
            let sig: Signature = self.key.sign(input.as_bytes());
            Ok(jws::assemble(input, &sig.to_bytes().into()))
        }
        async fn public_keys(&self) -> Result<Arc<KeySet>, SignerError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(SignerError::Unavailable("down".into()));
            }
            Ok(self.set.clone())
        }
    }

    /// After a switch from kms: the ring's key signs and comes first; the former key is
    /// published after it and still verifies what it signed; it never signs here.
    #[tokio::test]
    async fn also_publishing_signs_with_the_current_key_and_verifies_the_former_keys_tokens() {
        let ring = Fixed::new(1);
        let former = Fixed::new(2);
        let old_token = former.sign_jwt("at+jwt", br#"{"sub":"a"}"#).await.unwrap();
        let s = AlsoPublishing::new(ring.clone(), former.clone());
        let new_token = s.sign_jwt("at+jwt", br#"{"sub":"b"}"#).await.unwrap();
        let set = s.public_keys().await.unwrap();
        let kids: Vec<&str> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, [ring.kid().as_str(), former.kid().as_str()]);
        assert_eq!(
            jws::verify(&new_token, &set, "at+jwt").unwrap(),
            br#"{"sub":"b"}"#
        );
        assert_eq!(
            jws::verify(&old_token, &set, "at+jwt").unwrap(),
            br#"{"sub":"a"}"#
        );
        assert!(
            jws::verify(&new_token, &former.public_keys().await.unwrap(), "at+jwt").is_err(),
            "the new token is signed by the ring's key, not the former one"
        );
        // The merge is kept while its inputs are the same sets.
        assert!(Arc::ptr_eq(&set, &s.public_keys().await.unwrap()));
        // A key in both sources is listed once.
        let same = AlsoPublishing::new(ring.clone(), ring.clone());
        assert_eq!(same.public_keys().await.unwrap().keys.len(), 1);
    }

    /// A key set is never partial: if the former keys cannot be read, publishing fails (503)
    /// rather than dropping them; signing does not depend on them.
    #[tokio::test]
    async fn also_publishing_fails_whole_when_the_former_keys_are_unavailable() {
        let ring = Fixed::new(1);
        let former = Fixed::new(2);
        let s = AlsoPublishing::new(ring.clone(), former.clone());
        former.down.store(true, Ordering::SeqCst);
        assert!(matches!(s.public_keys().await, Err(SignerError::Unavailable(_))));
        assert!(s.sign_jwt("at+jwt", b"{}").await.is_ok());
        former.down.store(false, Ordering::SeqCst);
        assert_eq!(s.public_keys().await.unwrap().keys.len(), 2);
        ring.down.store(true, Ordering::SeqCst);
        assert!(s.public_keys().await.is_err());
    }

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
