//! The local signer: ES256 keys in `<data dir>/keys.json` (mode 0600), for `bulwark serve` and
//! tests. The file is re-read whenever it changes on disk, so `bulwark keys rotate` takes effect
//! in a running server without a restart.
//!
//! File format: `{"keys": [{"d": <base64url private scalar>, "created_at": .., "retired_at": ..}]}`.
//! The last key with no `retired_at` signs. A retired key is published until
//! `retired_at + retention`, so that every token it signed can still be verified.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::SigningKey;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{KeySet, PublicKey, Rotation, Signer, SignerError, jws};
use crate::clock::Clock;

#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    d: String,
    created_at: i64,
    #[serde(default)]
    retired_at: Option<i64>,
}

#[derive(Clone, Serialize, Deserialize, Default)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

struct Loaded {
    stamp: Stamp,
    /// `ring`'s key pair: several times faster than a pure-Rust P-256 on the token hot path.
    signing: EcdsaKeyPair,
    kid: String,
    keys: Arc<KeySet>,
}

/// ES256 signer backed by a key file.
pub struct LocalSigner {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    retention: i64,
    cache: Mutex<Option<Arc<Loaded>>>,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LocalSigner {
    /// Open the key file in `dir`, creating it with a fresh key (mode 0600) if there is none.
    /// `retention` is how long a retired key stays published (the longest token lifetime).
    pub fn open(dir: &Path, clock: Arc<dyn Clock>, retention: i64) -> Result<Self, SignerError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SignerError::Unavailable(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join("keys.json");
        if !path.exists() {
            let file = KeyFile {
                keys: vec![new_key(clock.now())],
            };
            // create_new: if another process created it meanwhile, keep theirs.
            match write_file(&path, &file, true) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(SignerError::Unavailable(format!(
                        "writing {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        let signer = Self {
            path,
            clock,
            retention,
            cache: Mutex::new(None),
        };
        signer.current()?;
        Ok(signer)
    }

    /// Retire the active key and make a new one active. Retired keys older than the retention
    /// period are dropped from the file.
    pub fn rotate(&self) -> Result<Rotation, SignerError> {
        let now = self.clock.now();
        let mut file = read_file(&self.path)?;
        for k in file.keys.iter_mut() {
            if k.retired_at.is_none() {
                k.retired_at = Some(now);
            }
        }
        file.keys
            .retain(|k| k.retired_at.is_none_or(|r| r + self.retention > now));
        file.keys.push(new_key(now));
        write_file(&self.path, &file, false)
            .map_err(|e| SignerError::Unavailable(format!("writing {}: {e}", self.path.display())))?;
        let loaded = self.current()?;
        Ok(Rotation {
            active_kid: loaded.kid.clone(),
            published_kids: loaded.keys.keys.iter().map(|k| k.kid.clone()).collect(),
        })
    }

    /// The loaded keys, re-read if the file changed.
    fn current(&self) -> Result<Arc<Loaded>, SignerError> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| SignerError::Unavailable(format!("reading {}: {e}", self.path.display())))?;
        let stamp = stamp_of(&meta);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(loaded) = cache.as_ref()
            && loaded.stamp == stamp
        {
            return Ok(loaded.clone());
        }
        let file = read_file(&self.path)?;
        let now = self.clock.now();
        let mut published = Vec::new();
        let mut active: Option<SigningKey> = None;
        for k in &file.keys {
            let sk = decode_key(&k.d)?;
            match k.retired_at {
                None => {
                    if let Some(prev) = active.replace(sk.clone()) {
                        published.push(PublicKey::new(*prev.verifying_key()));
                    }
                }
                Some(r) if r + self.retention > now => published.push(PublicKey::new(*sk.verifying_key())),
                Some(_) => {}
            }
        }
        let active = active.ok_or_else(|| SignerError::Invalid("the key file has no active key".into()))?;
        let active_pub = PublicKey::new(*active.verifying_key());
        let signing = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &active.to_bytes(),
            &active_pub.uncompressed,
            &SystemRandom::new(),
        )
        .map_err(|_| SignerError::Invalid("the active key is not a P-256 key".into()))?;
        let kid = active_pub.kid.clone();
        published.reverse();
        let mut keys = vec![active_pub];
        keys.extend(published);
        let loaded = Arc::new(Loaded {
            stamp,
            signing,
            kid,
            keys: Arc::new(KeySet { keys }),
        });
        *cache = Some(loaded.clone());
        Ok(loaded)
    }
}

#[async_trait]
impl Signer for LocalSigner {
    async fn sign_jwt(&self, typ: &str, claims: &[u8]) -> Result<String, SignerError> {
        let loaded = self.current()?;
        let input = jws::signing_input(&loaded.kid, typ, claims);
        let sig = loaded
            .signing
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| SignerError::Unavailable("signing failed".into()))?;
        let sig: [u8; 64] = sig
            .as_ref()
            .try_into()
            .map_err(|_| SignerError::Invalid("unexpected signature length".into()))?;
        Ok(jws::assemble(input, &sig))
    }

    async fn public_keys(&self) -> Result<Arc<KeySet>, SignerError> {
        Ok(self.current()?.keys.clone())
    }
}

/// What identifies one version of the key file: a rotation replaces the file (new inode) and
/// changes its modification time.
type Stamp = (SystemTime, u64, u64);

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    (
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
        inode,
    )
}

fn new_key(now: i64) -> StoredKey {
    let sk = SigningKey::random(&mut rand::rngs::OsRng);
    StoredKey {
        d: URL_SAFE_NO_PAD.encode(sk.to_bytes()),
        created_at: now,
        retired_at: None,
    }
}

fn decode_key(d: &str) -> Result<SigningKey, SignerError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(d)
        .map_err(|_| SignerError::Invalid("a key in the key file is corrupt".into()))?;
    SigningKey::from_slice(&bytes)
        .map_err(|_| SignerError::Invalid("a key in the key file is corrupt".into()))
}

fn read_file(path: &Path) -> Result<KeyFile, SignerError> {
    let bytes = std::fs::read(path)
        .map_err(|e| SignerError::Unavailable(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| SignerError::Invalid(format!("{} is not a key file", path.display())))
}

/// Write the key file atomically (temp file + rename), readable by the owner only.
fn write_file(path: &Path, file: &KeyFile, create_new: bool) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
    }
    if create_new {
        // hard_link fails if the target exists: first writer wins.
        let r = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        r
    } else {
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn signs_verifies_rotates_and_retires() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_000_000);
        let signer = LocalSigner::open(dir.path(), clock.clone(), 3600).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let t1 = signer.sign_jwt("at+jwt", br#"{"n":1}"#).await.unwrap();
        let keys = signer.public_keys().await.unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert_eq!(jws::verify(&t1, &keys, "at+jwt").unwrap(), br#"{"n":1}"#);

        // A second handle on the same directory (the CLI while serve runs) rotates.
        let other = LocalSigner::open(dir.path(), clock.clone(), 3600).unwrap();
        let r = other.rotate().unwrap();
        assert_eq!(r.published_kids.len(), 2);
        let keys = signer.public_keys().await.unwrap();
        assert_eq!(
            keys.keys[0].kid, r.active_kid,
            "the first handle sees the rotation"
        );
        let t2 = signer.sign_jwt("at+jwt", b"{}").await.unwrap();
        assert!(
            jws::verify(&t1, &keys, "at+jwt").is_ok(),
            "old tokens still verify"
        );
        assert!(jws::verify(&t2, &keys, "at+jwt").is_ok());

        // After the retention period the old key is no longer published.
        clock.advance(3601);
        other.rotate().unwrap();
        let keys = signer.public_keys().await.unwrap();
        assert_eq!(
            keys.keys.len(),
            2,
            "the key retired just now stays, the old one is gone"
        );
        assert!(jws::verify(&t1, &keys, "at+jwt").is_err());
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys.json"), b"not json").unwrap();
        let clock = ManualClock::at(0);
        assert!(matches!(
            LocalSigner::open(dir.path(), clock, 60),
            Err(SignerError::Invalid(_))
        ));
    }
}
