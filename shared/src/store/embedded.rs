//! The embedded backend: every logical table in one SQLite file (WAL mode), for `bulwark serve`
//! and the CLI, which may have the same file open at once.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions that read the current row, check the condition
//! against the live (unexpired) item and write; no transaction is held across an `.await`.
//! Every call is a short synchronous SQLite call on a pooled connection.
//!
//! Errors, beyond the port's own rules:
//! - `SQLITE_BUSY` after the 5 s busy timeout, I/O errors and unreadable rows are
//!   [`StoreError::Unavailable`] (the message is for logs only);
//! - a query cursor this store did not issue (undecodable) is [`StoreError::NotFound`]: it is
//!   the caller's bug, not an outage;
//! - a transaction of more than 25 writes, or with two writes on one key, is
//!   [`StoreError::Conflict`] and writes nothing (DynamoDB rejects both);
//! - a query `limit` is clamped to `1..=1000`.
//!
//! Like a DynamoDB index, [`Index::ByParent`] holds only items with both `gpk` and `gsk`.

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Cond, Index, Item, Kv, Page, StoreError, Table, Write};
use crate::clock::Clock;

/// Idle connections kept for reuse; more are opened under load and closed when returned.
const MAX_IDLE: usize = 8;
/// How long a connection waits for another connection's (or process's) lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite-backed [`Kv`].
pub struct EmbeddedStore {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    pool: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Run `f`, retrying for up to [`BUSY_TIMEOUT`] while SQLite reports the file busy or locked.
///
/// SQLite returns `SQLITE_BUSY` at once, without calling the busy handler, where waiting could
/// deadlock — notably when two connections switch a fresh file to WAL at the same moment, which
/// is what `bulwark serve` and the CLI do when both start on a new data directory.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T, StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other.map_err(unavailable),
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    gpk TEXT,
    gsk TEXT,
    data TEXT NOT NULL,
    expires_at INTEGER,
    version INTEGER NOT NULL,
    PRIMARY KEY (tbl, pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_by_parent ON items (tbl, gpk, gsk, pk, sk) WHERE gpk IS NOT NULL;
";

impl EmbeddedStore {
    /// Open (or create) the store file at `path`, creating its directory and the schema as
    /// needed. Safe while another process opens or uses the same file.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        let store = Self {
            path: path.to_path_buf(),
            clock,
            pool: Mutex::new(Vec::new()),
        };
        let mut conn = store.connect()?;
        retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.commit()
        })?;
        store.give_back(conn);
        Ok(store)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = retry_busy(|| Connection::open(&self.path))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        // Switching to WAL needs an exclusive lock, and SQLite may refuse it without waiting.
        retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
        retry_busy(|| {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", "OFF")
        })?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < MAX_IDLE {
            pool.push(conn);
        }
    }

    /// Run `f` on a pooled connection.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.take()?;
        let out = f(&mut conn);
        // A connection that hit an I/O-level error is dropped rather than reused.
        if !matches!(out, Err(StoreError::Unavailable(_))) {
            self.give_back(conn);
        }
        out
    }

    /// Delete expired rows (housekeeping; reads never see them anyway).
    pub fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        self.with(|c| {
            c.execute(
                "DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                params![now],
            )
            .map_err(unavailable)
        })
    }
}

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Item, String)> {
    let data: String = row.get(5)?;
    Ok((
        Item {
            pk: row.get(0)?,
            sk: row.get(1)?,
            gpk: row.get(2)?,
            gsk: row.get(3)?,
            data: Map::new(),
            expires_at: row.get(6)?,
            version: row.get::<_, i64>(7)? as u64,
        },
        data,
    ))
}

fn decode(pair: (Item, String)) -> Result<Item, StoreError> {
    let (mut item, data) = pair;
    item.data = match serde_json::from_str(&data) {
        Ok(Value::Object(m)) => m,
        _ => return Err(StoreError::Unavailable("a stored item is corrupt".into())),
    };
    Ok(item)
}

fn read(conn: &Connection, table: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS_WITH_DATA} FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3"
        ))
        .map_err(unavailable)?;
    let found = stmt
        .query_row(params![table.name(), pk, sk], row_to_item)
        .optional()
        .map_err(unavailable)?;
    found.map(decode).transpose()
}

// Column order used by `row_to_item`: pk, sk, gpk, gsk, (unused), data, expires_at, version.
const COLUMNS_WITH_DATA: &str = "pk, sk, gpk, gsk, NULL, data, expires_at, version";

fn holds(cond: Cond, current: Option<&Item>, now: i64) -> bool {
    let live = current.filter(|i| i.is_live(now));
    match cond {
        Cond::None => true,
        Cond::Absent => live.is_none(),
        Cond::Exists => live.is_some(),
        Cond::Version(v) => live.is_some_and(|i| i.version == v),
    }
}

fn write_item(conn: &Connection, table: Table, item: &Item) -> Result<(), StoreError> {
    let data = serde_json::to_string(&Value::Object(item.data.clone())).map_err(unavailable)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO items (tbl, pk, sk, gpk, gsk, data, expires_at, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(unavailable)?
    .execute(params![
        table.name(),
        item.pk,
        item.sk,
        item.gpk,
        item.gsk,
        data,
        item.expires_at,
        item.version as i64
    ])
    .map_err(unavailable)?;
    Ok(())
}

fn delete_row(conn: &Connection, table: Table, pk: &str, sk: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM items WHERE tbl = ?1 AND pk = ?2 AND sk = ?3")
        .map_err(unavailable)?
        .execute(params![table.name(), pk, sk])
        .map_err(unavailable)?;
    Ok(())
}

/// The query cursor: the last key returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    g: Option<String>,
    p: String,
    s: String,
}

#[async_trait]
impl Kv for EmbeddedStore {
    async fn get(&self, table: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        self.with(|c| Ok(read(c, table, pk, sk)?.filter(|i| i.is_live(now))))
    }

    async fn put(&self, table: Table, item: Item, cond: Cond) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.with(|c| {
            if cond == Cond::None {
                return write_item(c, table, &item);
            }
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let current = read(&tx, table, &item.pk, &item.sk)?;
            if !holds(cond, current.as_ref(), now) {
                return Err(StoreError::Conflict);
            }
            write_item(&tx, table, &item)?;
            tx.commit().map_err(unavailable)
        })
    }

    async fn delete(&self, table: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let current = read(&tx, table, pk, sk)?;
            if !holds(cond, current.as_ref(), now) {
                return Err(StoreError::Conflict);
            }
            if current.is_some() {
                delete_row(&tx, table, pk, sk)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(current.filter(|i| i.is_live(now)))
        })
    }

    async fn query(
        &self,
        table: Table,
        index: Index,
        partition: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let now = self.clock.now();
        let after: Option<Cursor> = match cursor {
            Some(c) => Some(serde_json::from_str(c).map_err(|_| StoreError::NotFound)?),
            None => None,
        };
        // A cursor names a key of the partition it was issued for.
        if let Some(a) = &after
            && index != Index::ByParent
            && a.p != partition
        {
            return Err(StoreError::NotFound);
        }
        let limit = limit.clamp(1, 1000);
        self.with(|c| {
            let fetch = (limit + 1) as i64;
            let rows: Vec<(Item, String)> = match (index, &after) {
                (Index::Primary, None) => c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS_WITH_DATA} FROM items WHERE tbl = ?1 AND pk = ?2
                         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY sk LIMIT ?4"
                    ))
                    .map_err(unavailable)?
                    .query_map(params![table.name(), partition, now, fetch], row_to_item)
                    .map_err(unavailable)?
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?,
                (Index::Primary, Some(a)) => c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS_WITH_DATA} FROM items WHERE tbl = ?1 AND pk = ?2 AND sk > ?5
                         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY sk LIMIT ?4"
                    ))
                    .map_err(unavailable)?
                    .query_map(params![table.name(), partition, now, fetch, a.s], row_to_item)
                    .map_err(unavailable)?
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?,
                (Index::PrimaryDescending, None) => c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS_WITH_DATA} FROM items WHERE tbl = ?1 AND pk = ?2
                         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY sk DESC LIMIT ?4"
                    ))
                    .map_err(unavailable)?
                    .query_map(params![table.name(), partition, now, fetch], row_to_item)
                    .map_err(unavailable)?
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?,
                (Index::PrimaryDescending, Some(a)) => c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS_WITH_DATA} FROM items WHERE tbl = ?1 AND pk = ?2 AND sk < ?5
                         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY sk DESC LIMIT ?4"
                    ))
                    .map_err(unavailable)?
                    .query_map(params![table.name(), partition, now, fetch, a.s], row_to_item)
                    .map_err(unavailable)?
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?,
                (Index::ByParent, None) => c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS_WITH_DATA} FROM items WHERE tbl = ?1 AND gpk = ?2 AND gsk IS NOT NULL
                         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY gsk, pk, sk LIMIT ?4"
                    ))
                    .map_err(unavailable)?
                    .query_map(params![table.name(), partition, now, fetch], row_to_item)
                    .map_err(unavailable)?
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?,
                (Index::ByParent, Some(a)) => c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS_WITH_DATA} FROM items WHERE tbl = ?1 AND gpk = ?2
                         AND (gsk, pk, sk) > (?5, ?6, ?7)
                         AND (expires_at IS NULL OR expires_at > ?3) ORDER BY gsk, pk, sk LIMIT ?4"
                    ))
                    .map_err(unavailable)?
                    .query_map(
                        params![
                            table.name(),
                            partition,
                            now,
                            fetch,
                            a.g.clone().unwrap_or_default(),
                            a.p,
                            a.s
                        ],
                        row_to_item,
                    )
                    .map_err(unavailable)?
                    .collect::<Result<_, _>>()
                    .map_err(unavailable)?,
            };
            let more = rows.len() > limit;
            let items: Vec<Item> = rows
                .into_iter()
                .take(limit)
                .map(decode)
                .collect::<Result<_, _>>()?;
            let next = match (more, items.last()) {
                (true, Some(last)) => Some(
                    serde_json::to_string(&Cursor {
                        g: last.gsk.clone(),
                        p: last.pk.clone(),
                        s: last.sk.clone(),
                    })
                    .map_err(unavailable)?,
                ),
                _ => None,
            };
            Ok(Page { items, next })
        })
    }

    fn cursor_after(&self, _index: Index, item: &Item) -> Result<String, StoreError> {
        serde_json::to_string(&Cursor {
            g: item.gsk.clone(),
            p: item.pk.clone(),
            s: item.sk.clone(),
        })
        .map_err(unavailable)
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.len() > 25 {
            return Err(StoreError::Conflict);
        }
        let key = |w: &Write| -> (Table, String, String) {
            match w {
                Write::Put { table, item, .. } => (*table, item.pk.clone(), item.sk.clone()),
                Write::Delete { table, pk, sk, .. } | Write::Check { table, pk, sk, .. } => {
                    (*table, pk.clone(), sk.clone())
                }
            }
        };
        let mut keys: Vec<_> = writes.iter().map(key).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != writes.len() {
            return Err(StoreError::Conflict);
        }
        let now = self.clock.now();
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            for w in &writes {
                let (table, pk, sk) = key(w);
                let cond = match w {
                    Write::Put { cond, .. } | Write::Delete { cond, .. } | Write::Check { cond, .. } => *cond,
                };
                if cond != Cond::None && !holds(cond, read(&tx, table, &pk, &sk)?.as_ref(), now) {
                    return Err(StoreError::Conflict);
                }
            }
            for w in &writes {
                match w {
                    Write::Put { table, item, .. } => write_item(&tx, *table, item)?,
                    Write::Delete { table, pk, sk, .. } => delete_row(&tx, *table, pk, sk)?,
                    Write::Check { .. } => {}
                }
            }
            tx.commit().map_err(unavailable)
        })
    }
}

#[cfg(test)]
mod contract_tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A store in a temporary directory that is removed with the store.
    struct TempStore {
        store: EmbeddedStore,
        _dir: tempfile::TempDir,
    }

    #[async_trait]
    impl Kv for TempStore {
        async fn get(&self, t: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
            self.store.get(t, pk, sk).await
        }
        async fn put(&self, t: Table, item: Item, cond: Cond) -> Result<(), StoreError> {
            self.store.put(t, item, cond).await
        }
        async fn delete(&self, t: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError> {
            self.store.delete(t, pk, sk, cond).await
        }
        async fn query(
            &self,
            t: Table,
            index: Index,
            partition: &str,
            cursor: Option<&str>,
            limit: usize,
        ) -> Result<Page, StoreError> {
            self.store.query(t, index, partition, cursor, limit).await
        }
        async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
            self.store.transact(writes).await
        }
        fn cursor_after(&self, index: Index, item: &Item) -> Result<String, StoreError> {
            self.store.cursor_after(index, item)
        }
    }

    crate::kv_contract_tests!(embedded, async {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::at(1_700_000_000);
        let store = EmbeddedStore::open(&dir.path().join("bulwark.db"), clock.clone()).expect("open");
        (Arc::new(TempStore { store, _dir: dir }) as Arc<dyn Kv>, clock)
    });

    /// `bulwark serve` and the CLI starting at once on a new data directory: every open succeeds
    /// (SQLite refuses a concurrent switch to WAL without waiting; `open` must retry it).
    #[test]
    fn concurrent_opens_of_a_new_file_all_succeed() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data/bulwark.db");
            let barrier = Arc::new(std::sync::Barrier::new(6));
            let opens: Vec<_> = (0..6)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        EmbeddedStore::open(&path, ManualClock::at(0)).map(|_| ())
                    })
                })
                .collect();
            for open in opens {
                assert_eq!(open.join().unwrap(), Ok(()));
            }
        }
    }

    #[tokio::test]
    async fn two_handles_on_one_file_see_each_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::at(1_700_000_000);
        let path = dir.path().join("bulwark.db");
        let a = EmbeddedStore::open(&path, clock.clone()).unwrap();
        let b = EmbeddedStore::open(&path, clock.clone()).unwrap();
        a.put(Table::Clients, Item::new("k", "s", Map::new()), Cond::Absent)
            .await
            .unwrap();
        assert!(b.get(Table::Clients, "k", "s").await.unwrap().is_some());
        assert_eq!(
            b.put(Table::Clients, Item::new("k", "s", Map::new()), Cond::Absent)
                .await,
            Err(StoreError::Conflict)
        );
    }
}
