//! A client's public keys for `private_key_jwt`: its registered `jwks`, or the JWK Set at its
//! `jwks_uri`, fetched through the SSRF-guarded [`Fetcher`] and cached per process: reused for
//! 5 minutes, fetched again sooner only when an assertion names a `kid` the cached set lacks,
//! and then at most once a minute per URL (so a stranger's unknown `kid`s cannot make us fetch
//! in a loop).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use crate::domain::client::Client;
use crate::fetch::{FetchError, Fetcher};
use crate::keys::external::check_jwks;

/// How long a fetched key set is used without asking again.
pub const FRESH: Duration = Duration::from_secs(300);
/// The soonest a key set is fetched again for an unknown `kid`.
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Most URLs cached at once (the cache starts over beyond it).
const MAX_ENTRIES: usize = 1000;

#[derive(Clone)]
struct Cached {
    keys: Arc<JwkSet>,
    fetched: Instant,
}

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, Cached>>,
}

impl KeyCache {
    fn get(&self, url: &str) -> Option<Cached> {
        self.entries.lock().ok()?.get(url).cloned()
    }

    fn put(&self, url: &str, keys: Arc<JwkSet>) {
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(
                url.to_string(),
                Cached {
                    keys,
                    fetched: Instant::now(),
                },
            );
        }
    }

    /// The key set at `url`, for an assertion naming `kid`.
    pub async fn keys_at(
        &self,
        fetcher: &dyn Fetcher,
        url: &str,
        kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, FetchError> {
        let cached = self.get(url);
        if let Some(c) = &cached {
            let has_kid =
                kid.is_none_or(|k| c.keys.keys.iter().any(|j| j.common.key_id.as_deref() == Some(k)));
            let age = c.fetched.elapsed();
            if age < FRESH && (has_kid || age < REFETCH_AFTER) {
                return Ok(c.keys.clone());
            }
        }
        match fetcher.get_json(url).await {
            Ok(v) => {
                let set = check_jwks(&v).map_err(FetchError::Failed)?;
                let keys = Arc::new(set);
                self.put(url, keys.clone());
                Ok(keys)
            }
            Err(e) => match cached {
                // A key set we fetched a little while ago still serves while the host is down.
                Some(c) if c.fetched.elapsed() < FRESH * 2 => Ok(c.keys),
                _ => Err(e),
            },
        }
    }
}

/// The keys a `private_key_jwt` client signs with.
pub async fn client_keys(
    cache: &KeyCache,
    fetcher: &dyn Fetcher,
    client: &Client,
    kid: Option<&str>,
) -> Result<Arc<JwkSet>, FetchError> {
    if let Some(v) = &client.metadata.jwks {
        return check_jwks(v).map(Arc::new).map_err(FetchError::Failed);
    }
    match &client.metadata.jwks_uri {
        Some(u) => cache.keys_at(fetcher, u, kid).await,
        None => Err(FetchError::Failed("the client has no keys".into())),
    }
}
