//! A per-process cache of tenants' config items for the token path, so that no one DynamoDB
//! item is read on every token request of a tenant (one busy tenant would otherwise meet the
//! per-partition read limit of its config item long before Lambda runs out).
//!
//! **The bound.** An entry is served for at most `ttl` seconds (`Config::tenant_cache_secs`, at
//! most [`MAX_TTL`] = 60, default 60) after the read that filled it *began*, so a change to a
//! tenant's config reaches the token path of every instance within `ttl` seconds of landing.
//! The process that makes a change forgets its own entry at once ([`Cache::forget`]), so in
//! `bulwark serve` (every endpoint in one process) an admin-API change applies at once.
//!
//! What is cached is the tenant's *policy* (scope catalog, restricted scopes, resources,
//! lifetimes, app allowlist, password-grant and CIMD policies, trusted issuers). Nothing that
//! says whether a credential is still good is cached: clients and their secrets, the `jti` deny
//! list, grants, refresh tokens, codes, users and delegations are read through on every use.
//!
//! **Bounded.** At most [`MAX_ENTRIES`] tenants; when full, stale entries are dropped, and if
//! none is, all are (the next requests read again, as without a cache). Only tenants that exist
//! are kept (an unknown id costs a read each time, as before, and cannot fill the cache).
//! Concurrent misses for one tenant wait for one read (one slot per tenant, locked while it
//! loads); a failed read is not kept, so the next waiter tries once itself.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::clock::Clock;

/// The longest a tenant's config may be served from a process's cache, seconds (a setting's
/// bound, so it lives with the settings).
pub use crate::config::MAX_TENANT_CACHE_SECS as MAX_TTL;

/// The most tenants one process keeps.
pub const MAX_ENTRIES: usize = 1024;

/// A per-process, time-bounded cache of values by key, filled by the caller's read.
pub struct Cache<V> {
    ttl: i64,
    max: usize,
    clock: Arc<dyn Clock>,
    slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot<V>>>>>,
}

struct Slot<V> {
    /// The value and when the read that got it began.
    held: Option<(Arc<V>, i64)>,
}

impl<V> Slot<V> {
    fn fresh(&self, now: i64, ttl: i64) -> Option<Arc<V>> {
        match &self.held {
            Some((v, at)) if now - at < ttl && now >= *at => Some(v.clone()),
            _ => None,
        }
    }
}

impl<V: Send + Sync + 'static> Cache<V> {
    /// `ttl` seconds (0: no caching, every call reads), at most `max` keys.
    pub fn new(ttl: i64, max: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            ttl: ttl.clamp(0, MAX_TTL),
            max: max.max(1),
            clock,
            slots: Default::default(),
        }
    }

    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// The value at `key`: from the cache while fresh, else from `read` (once for all callers
    /// waiting on the same key). `Ok(None)` is not cached.
    pub async fn get<E, F, Fut>(&self, key: &str, read: F) -> Result<Option<Arc<V>>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if self.ttl == 0 {
            return Ok(read().await?.map(Arc::new));
        }
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let Some(v) = slot.fresh(self.clock.now(), self.ttl) {
            return Ok(Some(v));
        }
        // The time before the read: the entry's age counts from the moment the store could
        // have answered with a value that was already about to change.
        let began = self.clock.now();
        let found = read().await?.map(Arc::new);
        slot.held = found.clone().map(|v| (v, began));
        Ok(found)
    }

    /// Drop `key`'s entry (after this process changed it). A read in flight for it keeps its
    /// answer for its own callers but fills nothing later callers see.
    pub fn forget(&self, key: &str) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(key);
        }
    }

    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Slot<V>>> {
        let Ok(mut slots) = self.slots.lock() else {
            // A poisoned map: serve this call uncached.
            return Arc::new(tokio::sync::Mutex::new(Slot { held: None }));
        };
        if let Some(s) = slots.get(key) {
            return s.clone();
        }
        if slots.len() >= self.max {
            let (now, ttl) = (self.clock.now(), self.ttl);
            // Keep what is fresh (or loading right now); drop the rest, and everything if that
            // is not enough.
            slots.retain(|_, s| s.try_lock().map_or(true, |s| s.fresh(now, ttl).is_some()));
            if slots.len() >= self.max {
                slots.clear();
            }
        }
        let s = Arc::new(tokio::sync::Mutex::new(Slot { held: None }));
        slots.insert(key.to_string(), s.clone());
        s
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// Tenants' config items, as the token path reads them.
pub type TenantCache = Cache<crate::domain::tenant::Tenant>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type R = Result<Option<u32>, ()>;

    fn cache(ttl: i64, max: usize) -> (Arc<ManualClock>, Arc<Cache<u32>>) {
        let clock = ManualClock::at(1_000);
        (clock.clone(), Arc::new(Cache::new(ttl, max, clock)))
    }

    async fn get(c: &Cache<u32>, key: &str, reads: &AtomicUsize, value: u32) -> Option<u32> {
        c.get(key, || async {
            reads.fetch_add(1, Ordering::SeqCst);
            R::Ok(Some(value))
        })
        .await
        .expect("read")
        .map(|v| *v)
    }

    #[tokio::test]
    async fn a_value_is_served_for_less_than_the_ttl_then_read_again() {
        let (clock, c) = cache(60, 10);
        let reads = AtomicUsize::new(0);
        assert_eq!(get(&c, "t", &reads, 1).await, Some(1));
        // The store changes; within the bound the old value is served, without a read.
        clock.advance(59);
        assert_eq!(get(&c, "t", &reads, 2).await, Some(1));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // At the bound it is read again.
        clock.advance(1);
        assert_eq!(get(&c, "t", &reads, 2).await, Some(2));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // A clock that went back does not make an entry live longer.
        clock.advance(-5);
        assert_eq!(get(&c, "t", &reads, 3).await, Some(3));
    }

    #[tokio::test]
    async fn the_ttl_is_at_most_sixty_seconds_and_zero_reads_every_time() {
        let (clock, c) = cache(3600, 10);
        assert_eq!(c.ttl(), MAX_TTL);
        let reads = AtomicUsize::new(0);
        get(&c, "t", &reads, 1).await;
        clock.advance(MAX_TTL);
        get(&c, "t", &reads, 1).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2);

        let (_, none) = cache(0, 10);
        let reads = AtomicUsize::new(0);
        for _ in 0..5 {
            get(&none, "t", &reads, 1).await;
        }
        assert_eq!(reads.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn forget_makes_the_next_call_read() {
        let (_, c) = cache(60, 10);
        let reads = AtomicUsize::new(0);
        assert_eq!(get(&c, "t", &reads, 1).await, Some(1));
        c.forget("t");
        assert_eq!(get(&c, "t", &reads, 2).await, Some(2));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // Other keys are untouched.
        get(&c, "u", &reads, 7).await;
        c.forget("t");
        assert_eq!(get(&c, "u", &reads, 8).await, Some(7));
    }

    #[tokio::test]
    async fn absent_values_and_failures_are_not_kept() {
        let (_, c) = cache(60, 10);
        let reads = AtomicUsize::new(0);
        let none = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            R::Ok(None)
        };
        assert_eq!(c.get("t", none).await, Ok(None));
        let failing = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            R::Err(())
        };
        assert!(c.get("t", failing).await.is_err());
        assert_eq!(get(&c, "t", &reads, 4).await, Some(4));
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_for_one_key_read_once() {
        let (_, c) = cache(60, 10);
        let reads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, reads, gate) = (c.clone(), reads.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                c.get("t", || async move {
                    reads.fetch_add(1, Ordering::SeqCst);
                    // A slow store: every other caller arrives while this read is in flight.
                    tokio::time::timeout(std::time::Duration::from_millis(200), gate.notified())
                        .await
                        .ok();
                    R::Ok(Some(9))
                })
                .await
                .expect("read")
                .map(|v| *v)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Some(9));
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "fifty concurrent misses, one read"
        );
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_bound() {
        let (clock, c) = cache(60, 4);
        let reads = AtomicUsize::new(0);
        for i in 0..4 {
            get(&c, &format!("t{i}"), &reads, i).await;
        }
        assert_eq!(c.len(), 4);
        // Full of fresh entries: a fifth empties it rather than grow.
        get(&c, "t4", &reads, 4).await;
        assert!(c.len() <= 4);
        // Full with stale entries: those go, the fresh stay.
        for i in 5..8 {
            get(&c, &format!("t{i}"), &reads, i).await;
        }
        clock.advance(30);
        let before = reads.load(Ordering::SeqCst);
        for i in 0..100 {
            get(&c, &format!("x{i}"), &reads, i).await;
            assert!(c.len() <= 4);
        }
        assert_eq!(reads.load(Ordering::SeqCst), before + 100);
    }
}
