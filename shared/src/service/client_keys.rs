//! A client's public keys for `private_key_jwt`: its registered `jwks`, or the JWK Set at its
//! `jwks_uri`, fetched through the SSRF-guarded [`Fetcher`] and cached per process.
//!
//! The cache bounds what strangers can make us fetch (anyone can send an assertion naming a
//! client, and anyone may register a `jwks_uri` where DCR is open):
//! - a key set is reused for 5 minutes; an assertion naming a `kid` the set lacks fetches again,
//!   but **any attempt** — failed or not — is the last for a minute (a failure is remembered and
//!   answered from the cache: a stale set while it is young enough, else the failure);
//! - one fetch per URL at a time: concurrent requests wait for it and share its result;
//! - at most [`MAX_FETCHES`] outbound fetches at once in the process;
//! - beyond `MAX_ENTRIES` URLs the least recently used entry goes (not the whole cache).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

use crate::domain::client::Client;
use crate::fetch::{FetchError, Fetcher};
use crate::keys::external::check_jwks;

/// How long a fetched key set is used without asking again.
pub const FRESH: Duration = Duration::from_secs(300);
/// The soonest a URL is fetched again after any attempt (for an unknown `kid`, or after a failure).
pub const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Most URLs cached at once.
const MAX_ENTRIES: usize = 1000;
/// Most outbound key fetches at once in the process.
pub const MAX_FETCHES: usize = 8;

#[derive(Clone)]
struct Entry {
    /// The last key set that fetched and checked well, and when.
    keys: Option<(Arc<JwkSet>, Instant)>,
    /// The last attempt, and its failure if it failed.
    attempted: Instant,
    failure: Option<String>,
    used: Instant,
}

pub struct KeyCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// One lock per URL being fetched (single flight).
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fetches: tokio::sync::Semaphore,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            inflight: Mutex::default(),
            fetches: tokio::sync::Semaphore::new(MAX_FETCHES),
        }
    }
}

/// What the cache can answer without fetching, if anything.
fn answer(e: &Entry, kid: Option<&str>) -> Option<Result<Arc<JwkSet>, FetchError>> {
    let since_attempt = e.attempted.elapsed();
    if let Some((keys, fetched)) = &e.keys {
        let has_kid = kid.is_none_or(|k| keys.keys.iter().any(|j| j.common.key_id.as_deref() == Some(k)));
        if fetched.elapsed() < FRESH && (has_kid || since_attempt < REFETCH_AFTER) {
            return Some(Ok(keys.clone()));
        }
    }
    if since_attempt < REFETCH_AFTER
        && let Some(why) = &e.failure
    {
        // The last attempt failed a moment ago: a set fetched a little while ago still serves
        // while the host is down; otherwise the same failure, without asking again.
        return Some(match &e.keys {
            Some((keys, fetched)) if fetched.elapsed() < FRESH * 2 => Ok(keys.clone()),
            _ => Err(FetchError::Failed(why.clone())),
        });
    }
    None
}

impl KeyCache {
    fn entry(&self, url: &str) -> Option<Entry> {
        let mut m = self.entries.lock().ok()?;
        let e = m.get_mut(url)?;
        e.used = Instant::now();
        Some(e.clone())
    }

    fn record(&self, url: &str, result: &Result<Arc<JwkSet>, FetchError>) {
        let Ok(mut m) = self.entries.lock() else {
            return;
        };
        if !m.contains_key(url)
            && m.len() >= MAX_ENTRIES
            && let Some(oldest) = m.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
        {
            m.remove(&oldest);
        }
        let now = Instant::now();
        let e = m.entry(url.to_string()).or_insert(Entry {
            keys: None,
            attempted: now,
            failure: None,
            used: now,
        });
        e.attempted = now;
        e.used = now;
        match result {
            Ok(keys) => {
                e.keys = Some((keys.clone(), now));
                e.failure = None;
            }
            Err(err) => e.failure = Some(err.to_string()),
        }
    }

    fn url_lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = match self.inflight.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if m.len() >= MAX_ENTRIES {
            // Forget the locks nobody holds or waits on.
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(url.to_string()).or_default().clone()
    }

    /// The key set at `url`, for an assertion naming `kid`.
    pub async fn keys_at(
        &self,
        fetcher: &dyn Fetcher,
        url: &str,
        kid: Option<&str>,
    ) -> Result<Arc<JwkSet>, FetchError> {
        if let Some(a) = self.entry(url).as_ref().and_then(|e| answer(e, kid)) {
            return a;
        }
        let lock = self.url_lock(url);
        let _only_fetch = lock.lock().await;
        // Someone may have fetched it while we waited: their attempt counts as ours.
        let cached = self.entry(url);
        if let Some(a) = cached.as_ref().and_then(|e| answer(e, kid)) {
            return a;
        }
        let result = {
            let Ok(_slot) = self.fetches.acquire().await else {
                return Err(FetchError::Failed("key fetching is shut down".into()));
            };
            match fetcher.get_json(url).await {
                Ok(v) => crate::keys::external::published_signing_keys(&v)
                    .map(Arc::new)
                    .map_err(FetchError::Failed),
                Err(e) => Err(e),
            }
        };
        self.record(url, &result);
        match result {
            Ok(keys) => Ok(keys),
            // A key set we fetched a little while ago still serves while the host is down.
            Err(e) => match cached.and_then(|c| c.keys) {
                Some((keys, fetched)) if fetched.elapsed() < FRESH * 2 => Ok(keys),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fetcher that counts its calls and gives one answer after a delay.
    struct Counting {
        calls: AtomicUsize,
        answer: Result<serde_json::Value, String>,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl Fetcher for Counting {
        async fn get_json(&self, _url: &str) -> Result<serde_json::Value, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.answer.clone().map_err(FetchError::Failed)
        }
    }

    fn counting(answer: Result<serde_json::Value, String>, delay: Duration) -> Counting {
        Counting {
            calls: AtomicUsize::new(0),
            answer,
            delay,
        }
    }

    fn ec_jwk(kid: &str) -> serde_json::Value {
        use p256::ecdsa::SigningKey;
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let mut jwk: serde_json::Value =
            serde_json::from_str(&p256::PublicKey::from(sk.verifying_key()).to_jwk_string()).unwrap();
        jwk["kid"] = serde_json::json!(kid);
        jwk
    }

    const URL: &str = "https://victim.example/anything";

    /// A failing `jwks_uri` (an error, or something that is not a key set) is asked once, not on
    /// every request that names the client.
    #[tokio::test]
    async fn a_failing_jwks_uri_is_fetched_once_a_minute_not_per_request() {
        for answer in [
            Err("status 404".to_string()),
            Ok(serde_json::json!({"not": "a jwk set"})),
        ] {
            let f = counting(answer, Duration::ZERO);
            let cache = KeyCache::default();
            for _ in 0..50 {
                assert!(cache.keys_at(&f, URL, Some("k")).await.is_err());
            }
            assert_eq!(f.calls.load(Ordering::SeqCst), 1);
        }
    }

    /// Unknown `kid`s refetch at most once a minute, even when the refetch fails (the stale set
    /// keeps serving meanwhile).
    #[tokio::test]
    async fn unknown_kids_refetch_at_most_once_a_minute_even_when_it_fails() {
        let f = counting(Err("timed out".to_string()), Duration::ZERO);
        let cache = KeyCache::default();
        let set = check_jwks(&serde_json::json!({"keys": [ec_jwk("a")]})).unwrap();
        let long_ago = Instant::now() - Duration::from_secs(90);
        cache.entries.lock().unwrap().insert(
            URL.into(),
            Entry {
                keys: Some((Arc::new(set), long_ago)),
                attempted: long_ago,
                failure: None,
                used: long_ago,
            },
        );
        for i in 0..50 {
            assert!(
                cache
                    .keys_at(&f, URL, Some(&format!("unknown-{i}")))
                    .await
                    .is_ok()
            );
        }
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    /// Concurrent requests for one URL share one fetch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_share_one_fetch() {
        let f = Arc::new(counting(
            Ok(serde_json::json!({"keys": [ec_jwk("a")]})),
            Duration::from_millis(200),
        ));
        let cache = Arc::new(KeyCache::default());
        let mut tasks = Vec::new();
        for i in 0..32 {
            let (f, cache) = (f.clone(), cache.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .keys_at(f.as_ref(), URL, Some(&format!("u{i}")))
                    .await
                    .is_ok()
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    /// Past the size bound the least recently used URL goes, not every entry.
    #[tokio::test]
    async fn the_cache_evicts_the_least_recently_used_url() {
        let f = counting(Ok(serde_json::json!({"keys": [ec_jwk("a")]})), Duration::ZERO);
        let cache = KeyCache::default();
        cache
            .keys_at(&f, "https://keep.example/jwks", None)
            .await
            .unwrap();
        for i in 0..MAX_ENTRIES + 5 {
            cache
                .keys_at(&f, &format!("https://h{i}.example/jwks"), None)
                .await
                .unwrap();
            // The first URL stays in use.
            cache
                .keys_at(&f, "https://keep.example/jwks", None)
                .await
                .unwrap();
        }
        let calls = f.calls.load(Ordering::SeqCst);
        assert_eq!(
            calls,
            MAX_ENTRIES + 5 + 1,
            "the URL in use was never fetched again"
        );
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
