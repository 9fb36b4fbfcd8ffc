//! The KMS signer: each JWT is signed by KMS `Sign` (ECC_NIST_P256, ECDSA_SHA_256, message type
//! RAW). KMS returns an ASN.1 DER signature; JWS ES256 needs the fixed 64-byte `r || s`
//! (RFC 7518 §3.4), so the signature is converted here. Public keys come from `GetPublicKey`
//! (DER SubjectPublicKeyInfo), fetched once per process and cached.
//!
//! Rotation: several key ids may be configured; the first signs, all are published.

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use p256::pkcs8::DecodePublicKey;
use std::sync::Arc;
use tokio::sync::OnceCell;

use super::{KeySet, PublicKey, Signer, SignerError, jws};
use crate::metrics::{Event, Metrics};

/// One KMS call, timed and counted (`KmsLatency`, `KmsErrors`: any failure, an access denial
/// included), inside a `kms` tracing span (debug level) naming the operation.
async fn metered<T, E>(
    metrics: &dyn Metrics,
    op: &'static str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use tracing::Instrument;
    async {
        let started = std::time::Instant::now();
        let out = call.await;
        let latency = started.elapsed();
        let ok = out.is_ok();
        metrics.record(Event::KmsCall { ok, latency });
        tracing::debug!(micros = latency.as_micros() as u64, ok, "kms call");
        out
    }
    .instrument(tracing::debug_span!("kms", op))
    .await
}

/// KMS-backed [`Signer`].
pub struct KmsSigner {
    client: Client,
    key_ids: Vec<String>,
    keys: OnceCell<Arc<KeySet>>,
    metrics: Arc<dyn Metrics>,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner")
            .field("key_ids", &self.key_ids)
            .finish_non_exhaustive()
    }
}

fn map_err<E: ProvideErrorMetadata, R>(e: SdkError<E, R>) -> SignerError {
    match e.code() {
        Some(code) => SignerError::Unavailable(format!("kms: {code}: {}", e.message().unwrap_or(""))),
        None => SignerError::Unavailable("kms: request failed (connection or timeout)".into()),
    }
}

impl KmsSigner {
    /// `key_ids`: the signing key first, then keys that are only published (previous keys).
    pub fn new(client: Client, key_ids: Vec<String>) -> Result<Self, SignerError> {
        if key_ids.is_empty() {
            return Err(SignerError::Invalid("no KMS key id configured".into()));
        }
        Ok(Self {
            client,
            key_ids,
            keys: OnceCell::new(),
            metrics: crate::metrics::noop(),
        })
    }

    /// The same signer, counting its KMS calls into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    async fn load(&self) -> Result<Arc<KeySet>, SignerError> {
        let mut keys = Vec::with_capacity(self.key_ids.len());
        for id in &self.key_ids {
            let out = metered(
                &*self.metrics,
                "GetPublicKey",
                self.client.get_public_key().key_id(id).send(),
            )
            .await
            .map_err(map_err)?;
            let der = out
                .public_key()
                .ok_or_else(|| SignerError::Invalid(format!("kms key {id}: no public key")))?;
            let pk = p256::PublicKey::from_public_key_der(der.as_ref())
                .map_err(|_| SignerError::Invalid(format!("kms key {id} is not an ECC_NIST_P256 key")))?;
            keys.push(PublicKey::new(pk.into()));
        }
        Ok(Arc::new(KeySet { keys }))
    }
}

#[async_trait]
impl Signer for KmsSigner {
    async fn sign_jwt(&self, typ: &str, claims: &[u8]) -> Result<String, SignerError> {
        let keys = self.public_keys().await?;
        let kid = &keys.keys[0].kid;
        let input = jws::signing_input(kid, typ, claims);
        let sign = self
            .client
            .sign()
            .key_id(&self.key_ids[0])
            .message(Blob::new(input.as_bytes()))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send();
        let out = metered(&*self.metrics, "Sign", sign).await.map_err(map_err)?;
        let der = out
            .signature()
            .ok_or_else(|| SignerError::Invalid("kms returned no signature".into()))?;
        let raw = der_to_jose(der.as_ref())
            .ok_or_else(|| SignerError::Invalid("kms returned a malformed signature".into()))?;
        Ok(jws::assemble(input, &raw))
    }

    async fn public_keys(&self) -> Result<Arc<KeySet>, SignerError> {
        self.keys.get_or_try_init(|| self.load()).await.cloned()
    }
}

/// The kms-wrapped mode's key-encryption key: a KMS symmetric key (`SYMMETRIC_DEFAULT`).
/// `Encrypt` (the operator CLI) and `Decrypt` (the token function, once per process and
/// rotation) always name the key and pass the encryption context `{stack, kid}`; naming the key
/// on `Decrypt` too means a ciphertext made under any other key is refused even where IAM would
/// allow it. Counts its `Decrypt` calls (sent, whatever their outcome) for tests and logs.
pub struct KmsKeyWrapper {
    client: Client,
    key_id: String,
    decrypts: std::sync::atomic::AtomicU64,
    metrics: Arc<dyn Metrics>,
}

impl std::fmt::Debug for KmsKeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeyWrapper")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KmsKeyWrapper {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
            decrypts: Default::default(),
            metrics: crate::metrics::noop(),
        }
    }

    /// The same wrapper, counting its KMS calls into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// How many `Decrypt` calls this adapter has sent.
    pub fn decrypt_calls(&self) -> u64 {
        self.decrypts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn context_map(c: &super::wrapped::WrapContext) -> std::collections::HashMap<String, String> {
    c.pairs()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[async_trait]
impl super::wrapped::KeyWrapper for KmsKeyWrapper {
    async fn wrap(
        &self,
        plaintext: &[u8],
        context: &super::wrapped::WrapContext,
    ) -> Result<Vec<u8>, SignerError> {
        let encrypt = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(context_map(context)))
            .send();
        let out = metered(&*self.metrics, "Encrypt", encrypt)
            .await
            .map_err(map_err)?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| SignerError::Invalid("kms returned no ciphertext".into()))
    }

    async fn unwrap(
        &self,
        ciphertext: &[u8],
        context: &super::wrapped::WrapContext,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SignerError> {
        self.decrypts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let decrypt = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(context_map(context)))
            .send();
        let out = metered(&*self.metrics, "Decrypt", decrypt)
            .await
            .map_err(map_err)?;
        out.plaintext
            .map(|b| zeroize::Zeroizing::new(b.into_inner()))
            .ok_or_else(|| SignerError::Unavailable("kms returned no plaintext".into()))
    }
}

/// Convert an ASN.1 DER ECDSA signature (`SEQUENCE { INTEGER r, INTEGER s }`) to the JOSE form:
/// `r` and `s` as 32-byte big-endian, concatenated. DER integers are minimal and signed, so a
/// value may be shorter than 32 bytes (left-pad with zeros) or carry a leading 0x00 when its
/// high bit is set (strip it).
pub fn der_to_jose(der: &[u8]) -> Option<[u8; 64]> {
    let (tag, body, rest) = der_tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (rt, r, after_r) = der_tlv(body)?;
    let (st, s, after_s) = der_tlv(after_r)?;
    if rt != 0x02 || st != 0x02 || !after_s.is_empty() {
        return None;
    }
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&int32(r)?);
    out[32..].copy_from_slice(&int32(s)?);
    Some(out)
}

/// One DER tag-length-value: (tag, value, remaining bytes).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else if first == 0x81 {
        let (&l, rest) = rest.split_first()?;
        if l < 0x80 {
            return None; // not minimal
        }
        (l as usize, rest)
    } else {
        return None; // longer lengths never occur for P-256 signatures
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// A positive DER INTEGER as 32 big-endian bytes.
fn int32(v: &[u8]) -> Option<[u8; 32]> {
    if v.is_empty() || v[0] & 0x80 != 0 {
        return None; // empty or negative
    }
    let v = if v.len() > 1 && v[0] == 0 {
        if v[1] & 0x80 == 0 {
            return None; // not minimal
        }
        &v[1..]
    } else {
        v
    };
    if v.len() > 32 {
        return None;
    }
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Some(out)
}

/// A KMS client from an SDK config built once.
pub fn client_from(sdk: &crate::aws::SdkConfig) -> Client {
    Client::new(sdk)
}

/// An SDK client for KMS (bounded retries and timeouts; `endpoint` for a local emulator).
pub async fn client(endpoint: Option<&str>, region: Option<&str>) -> Client {
    Client::new(&crate::aws::sdk_config(endpoint, region).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_int(v: &[u8]) -> Vec<u8> {
        // minimal positive encoding
        let mut v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        if v.is_empty() {
            v.push(0);
        }
        if v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }

    fn der_sig(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
        let body: Vec<u8> = [der_int(r), der_int(s)].concat();
        let mut out = vec![0x30];
        if body.len() >= 0x80 {
            out.push(0x81);
        }
        out.push(body.len() as u8);
        out.extend(body);
        out
    }

    #[test]
    fn der_conversion_cases() {
        let mut high = [0u8; 32];
        high[0] = 0x80;
        high[31] = 1;
        let mut short = [0u8; 32];
        short[30] = 0x12;
        short[31] = 0x34;
        let mut very_short = [0u8; 32];
        very_short[31] = 7;
        let max = [0xffu8; 32];
        let low = [0x01u8; 32];
        for (r, s) in [
            (high, low),
            (low, high),
            (short, high),
            (high, short),
            (very_short, max),
            (max, max),
            (low, low),
        ] {
            let der = der_sig(&r, &s);
            let jose = der_to_jose(&der).unwrap_or_else(|| panic!("{der:02x?}"));
            assert_eq!(&jose[..32], &r);
            assert_eq!(&jose[32..], &s);
        }
        // Agreement with an independent DER parser (p256's).
        let sk = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        for i in 0..50u8 {
            use p256::ecdsa::signature::Signer as _;
            let sig: p256::ecdsa::Signature = sk.sign(&[i; 10]);
            let der = sig.to_der();
            let raw: [u8; 64] = sig.to_bytes().into();
            assert_eq!(der_to_jose(der.as_bytes()).unwrap(), raw);
        }
    }

    #[test]
    fn malformed_der_is_refused() {
        let good = der_sig(&[1u8; 32], &[2u8; 32]);
        let mut trailing = good.clone();
        trailing.push(0);
        let mut wrong_tag = good.clone();
        wrong_tag[0] = 0x31;
        let negative = [0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01];
        let non_minimal = [0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01];
        let too_long: Vec<u8> = [
            vec![0x30, 0x26, 0x02, 0x21, 0x01],
            vec![1u8; 32],
            vec![0x02, 0x01, 0x01],
        ]
        .concat();
        for bad in [
            &good[..good.len() - 1],
            &trailing[..],
            &wrong_tag[..],
            &negative[..],
            &non_minimal[..],
            &too_long[..],
            &[][..],
        ] {
            assert!(der_to_jose(bad).is_none(), "{bad:02x?}");
        }
    }

    /// Against moto's KMS (started by the test script): a token signed through KMS verifies
    /// against the published keys, with our verifier and with p256's.
    #[cfg_attr(
        not(feature = "test-services"),
        ignore = "needs moto's KMS: run `bash infra/test.sh` (it starts moto and enables feature test-services)"
    )]
    #[tokio::test]
    async fn kms_signed_tokens_verify_against_the_published_keys() {
        use aws_sdk_kms::types::{KeySpec, KeyUsageType};
        let endpoint = std::env::var("BULWARK_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
            panic!("BULWARK_TEST_AWS_ENDPOINT is not set: run `bash infra/test.sh`, which starts moto")
        });
        let kms = client(Some(&endpoint), Some("us-east-1")).await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let k = kms
                .create_key()
                .key_spec(KeySpec::EccNistP256)
                .key_usage(KeyUsageType::SignVerify)
                .send()
                .await
                .expect("create key in moto");
            ids.push(k.key_metadata().unwrap().key_id().to_string());
        }
        let signer = KmsSigner::new(kms, ids).unwrap();
        let keys = signer.public_keys().await.unwrap();
        assert_eq!(keys.keys.len(), 2, "every configured key is published");
        for i in 0..20 {
            let claims = format!(r#"{{"n":{i}}}"#);
            let t = signer.sign_jwt("at+jwt", claims.as_bytes()).await.unwrap();
            let header: serde_json::Value = {
                use base64::Engine;
                let h = t.split('.').next().unwrap();
                serde_json::from_slice(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(h)
                        .unwrap(),
                )
                .unwrap()
            };
            assert_eq!(header["kid"], keys.keys[0].kid.as_str(), "the first key signs");
            assert_eq!(jws::verify(&t, &keys, "at+jwt").unwrap(), claims.as_bytes());
            // independently, with p256
            use base64::Engine;
            use p256::ecdsa::signature::Verifier;
            let (input, sig) = t.rsplit_once('.').unwrap();
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(sig)
                .unwrap();
            let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
            keys.keys[0]
                .key
                .verify(input.as_bytes(), &sig)
                .expect("p256 verifies the KMS signature");
        }
    }

    /// SigningMode=kms-wrapped against moto's DynamoDB and KMS: the CLI's rotation wraps a new
    /// key under a symmetric key; a signing process decrypts it once for any number of tokens
    /// (counted at the adapter: every `Decrypt` it sends), a verifying process never decrypts;
    /// KMS refuses a ciphertext under another stack's encryption context.
    #[cfg_attr(
        not(feature = "test-services"),
        ignore = "needs moto's KMS and DynamoDB: run `bash infra/test.sh` (it starts moto and enables feature test-services)"
    )]
    #[tokio::test]
    async fn wrapped_keys_decrypt_once_per_process_and_only_in_their_own_stack() {
        use crate::keys::wrapped::{REFRESH_SECS, WrappedSigner, rotate};
        use crate::store::dynamodb::{DynamoStore, TableNames};
        use crate::store::repo::Repo;
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        use aws_sdk_kms::types::{KeySpec, KeyUsageType};
        let endpoint = std::env::var("BULWARK_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
            panic!("BULWARK_TEST_AWS_ENDPOINT is not set: run `bash infra/test.sh`, which starts moto")
        });
        let sdk = crate::aws::sdk_config(Some(&endpoint), Some("us-east-1")).await;
        let kms = Client::new(&sdk);
        let kek = kms
            .create_key()
            .key_spec(KeySpec::SymmetricDefault)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .send()
            .await
            .expect("create a symmetric key in moto");
        let kek = kek.key_metadata().unwrap().key_id().to_string();
        // A keys table of this test's own (the ring is one item per stack).
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let mut tables = TableNames::with_prefix("unused-");
        tables.keys = format!("kms-test-keys-{}", &kek[..8]);
        ddb.create_table()
            .table_name(&tables.keys)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("sk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("sk")
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create the keys table in moto");
        let clock = crate::clock::ManualClock::at(1_700_000_000);
        let store = DynamoStore::new(ddb, tables, clock.clone());
        let repo = Repo::new(Arc::new(store), clock.clone());

        let cli = KmsKeyWrapper::new(kms.clone(), &kek);
        let r1 = rotate(&repo, &cli, "stack-a", 3600, repo.now()).await.unwrap();
        assert_eq!(cli.decrypt_calls(), 0, "rotating encrypts only");
        let item = repo.key_ring().await.unwrap().unwrap().value;
        let ct = item.active.ciphertext.clone();
        assert!(ct.len() > 40, "the private scalar is stored as KMS ciphertext");

        let wrapper = Arc::new(KmsKeyWrapper::new(kms.clone(), &kek));
        let signer = WrappedSigner::new(
            Arc::new(repo.clone()),
            "stack-a",
            Some(wrapper.clone()),
            clock.clone(),
            3600,
        );
        let verifier = WrappedSigner::new(Arc::new(repo.clone()), "stack-a", None, clock.clone(), 3600);
        signer.prepare().await.expect("decrypt at cold start");
        let mut tokens = Vec::new();
        for i in 0..25 {
            tokens.push(
                signer
                    .sign_jwt("at+jwt", format!(r#"{{"n":{i}}}"#).as_bytes())
                    .await
                    .unwrap(),
            );
        }
        let keys = verifier.public_keys().await.unwrap();
        for t in &tokens {
            crate::keys::jws::verify(t, &keys, "at+jwt").expect("verifies against the published keys");
        }
        assert_eq!(wrapper.decrypt_calls(), 1, "one Decrypt for 25 tokens");

        // Rotation: picked up after the refresh bound, with exactly one more Decrypt.
        let r2 = rotate(&repo, &cli, "stack-a", 3600, repo.now()).await.unwrap();
        assert_eq!(
            r2.published_kids,
            vec![r2.active_kid.clone(), r1.active_kid.clone()]
        );
        clock.advance(REFRESH_SECS);
        for _ in 0..5 {
            signer.sign_jwt("at+jwt", b"{}").await.unwrap();
        }
        assert_eq!(wrapper.decrypt_calls(), 2);

        // The same ring read as another stack's: KMS refuses the context; 503, retried.
        let other = Arc::new(KmsKeyWrapper::new(kms.clone(), &kek));
        let foreign = WrappedSigner::new(
            Arc::new(repo.clone()),
            "stack-b",
            Some(other.clone()),
            clock.clone(),
            3600,
        );
        assert!(matches!(
            foreign.sign_jwt("at+jwt", b"{}").await,
            Err(SignerError::Unavailable(_))
        ));
        assert!(foreign.sign_jwt("at+jwt", b"{}").await.is_err());
        assert_eq!(other.decrypt_calls(), 2, "each request tries again");
    }

    #[tokio::test]
    async fn an_unreachable_kms_is_unavailable_not_a_panic() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let kms = client(Some(&format!("http://127.0.0.1:{port}")), Some("us-east-1")).await;
        let signer = KmsSigner::new(kms, vec!["k".into()]).unwrap();
        assert!(matches!(
            signer.sign_jwt("at+jwt", b"{}").await,
            Err(SignerError::Unavailable(_))
        ));
        assert!(matches!(
            signer.public_keys().await,
            Err(SignerError::Unavailable(_))
        ));
    }
}
