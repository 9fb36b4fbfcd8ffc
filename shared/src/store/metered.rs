//! Any [`Kv`] backend, timed: every call's latency and whether the backend was unavailable go
//! to the metrics port (`StoreLatency`, `StoreErrors`), inside a `store` tracing span (debug
//! level: free unless `RUST_LOG` asks for it) naming the operation and table, with a debug
//! line per call. A failed condition is an answer, not an error.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

use super::{Cond, Index, Item, Kv, Page, StoreError, Table, Write};
use crate::metrics::{Event, Metrics};

pub struct Metered {
    inner: Arc<dyn Kv>,
    metrics: Arc<dyn Metrics>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Kv>, metrics: Arc<dyn Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        table: Option<Table>,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let span = tracing::debug_span!("store", op, table = table.map(Table::name));
        async {
            let started = Instant::now();
            let out = call.await;
            let latency = started.elapsed();
            let ok = !matches!(out, Err(StoreError::Unavailable(_)));
            self.metrics.record(Event::StoreCall { ok, latency });
            tracing::debug!(micros = latency.as_micros() as u64, ok, "store call");
            out
        }
        .instrument(span)
        .await
    }
}

#[async_trait]
impl Kv for Metered {
    async fn get(&self, table: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.timed("get", Some(table), self.inner.get(table, pk, sk))
            .await
    }

    async fn put(&self, table: Table, item: Item, cond: Cond) -> Result<(), StoreError> {
        self.timed("put", Some(table), self.inner.put(table, item, cond))
            .await
    }

    async fn delete(&self, table: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError> {
        self.timed("delete", Some(table), self.inner.delete(table, pk, sk, cond))
            .await
    }

    async fn query(
        &self,
        table: Table,
        index: Index,
        partition: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.timed(
            "query",
            Some(table),
            self.inner.query(table, index, partition, cursor, limit),
        )
        .await
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.timed("transact", None, self.inner.transact(writes)).await
    }

    fn cursor_after(&self, index: Index, item: &Item) -> Result<String, StoreError> {
        self.inner.cursor_after(index, item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metric, Recording};

    /// Unavailable on `get`, a failed condition on `put`, empty otherwise.
    struct Flaky;

    #[async_trait]
    impl Kv for Flaky {
        async fn get(&self, _: Table, _: &str, _: &str) -> Result<Option<Item>, StoreError> {
            Err(StoreError::Unavailable("throttled".into()))
        }
        async fn put(&self, _: Table, _: Item, _: Cond) -> Result<(), StoreError> {
            Err(StoreError::Conflict)
        }
        async fn delete(&self, _: Table, _: &str, _: &str, _: Cond) -> Result<Option<Item>, StoreError> {
            Ok(None)
        }
        async fn query(
            &self,
            _: Table,
            _: Index,
            _: &str,
            _: Option<&str>,
            _: usize,
        ) -> Result<Page, StoreError> {
            Err(StoreError::NotFound)
        }
        async fn transact(&self, _: Vec<Write>) -> Result<(), StoreError> {
            Ok(())
        }
        fn cursor_after(&self, _: Index, _: &Item) -> Result<String, StoreError> {
            Ok(String::new())
        }
    }

    #[tokio::test]
    async fn every_call_is_timed_and_only_unavailability_is_an_error() {
        let rec = Arc::new(Recording::default());
        let m = Metered::new(Arc::new(Flaky), rec.clone());
        assert!(m.get(Table::Clients, "a", "b").await.is_err());
        let item = Item::new("a", "b", serde_json::Map::new());
        assert_eq!(
            m.put(Table::Clients, item, Cond::Absent).await,
            Err(StoreError::Conflict)
        );
        assert_eq!(m.delete(Table::Clients, "a", "b", Cond::None).await, Ok(None));
        assert!(
            m.query(Table::Clients, Index::Primary, "a", None, 1)
                .await
                .is_err()
        );
        assert_eq!(m.transact(Vec::new()).await, Ok(()));
        let calls = rec
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| *m == Metric::StoreLatency)
            .count();
        assert_eq!(calls, 5);
        assert_eq!(
            rec.sum(Metric::StoreErrors, |_| true),
            1.0,
            "only the unavailable get; a conflict or a miss is an answer"
        );
    }
}
