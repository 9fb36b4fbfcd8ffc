//! The embedded backend: every logical table in one SQLite file (WAL mode), for `bulwark serve`
//! and the CLI, which may have the same file open at once.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions that read the current row, check the condition
//! against the live (unexpired) item and write.
//!
//! **No SQLite call runs on an async worker.** SQLite blocks: on I/O, and for up to the busy
//! timeout (5 s) while another connection or process holds the write lock. Each store call is
//! a job for the store's own threads, each owning one connection, and the caller awaits its
//! answer: one writer thread takes every write in turn (SQLite has one writer per file anyway;
//! queued here, our writes never race each other through SQLite's sleeping busy handler), and
//! one reader thread per core (2–8) takes reads, which WAL lets run beside a writer. A job runs
//! whole on its thread, so a caller dropped midway (a request timeout, a client gone) cannot
//! leave a transaction half-applied: it commits or rolls back entirely, and a job whose caller
//! is gone before it starts does not run. A connection left inside a transaction after a job
//! is rolled back (or dropped), and one whose job panicked is dropped.
//!
//! Errors, beyond the port's own rules:
//! - `SQLITE_BUSY` after the 5 s busy timeout, I/O errors, unreadable rows and a job that
//!   panicked are [`StoreError::Unavailable`] (the message is for logs only);
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
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use super::{Cond, Index, Item, Kv, Page, StoreError, Table, Write};
use crate::clock::Clock;

/// How long a store call waits in all, from the call, for its turn and for another
/// connection's (or process's) lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite-backed [`Kv`].
pub struct EmbeddedStore {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    reads: Lane,
    writes: Lane,
    busy_timeout: Duration,
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

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = retry_busy(|| Connection::open(path))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    // Switching to WAL needs an exclusive lock, and SQLite may refuse it without waiting.
    retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
    retry_busy(|| {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")
    })?;
    Ok(conn)
}

/// Whether `conn` is outside any transaction (so fit to reuse), rolling back one that a job
/// left open.
fn settled(conn: &Connection) -> bool {
    conn.is_autocommit() || (conn.execute_batch("ROLLBACK").is_ok() && conn.is_autocommit())
}

/// A store call as its thread sees it: run on the thread's connection, then answered, once
/// the connection is settled (so a caller never hears back while its transaction is open).
trait Job: Send {
    /// Whether the caller still waits for the answer.
    fn wanted(&self) -> bool;
    /// Run on the thread's connection (or learn why there is none); false if the connection
    /// is not fit to keep.
    fn run(&mut self, conn: Result<&mut Connection, StoreError>) -> bool;
    /// Send the outcome; `Unavailable` if the call never finished (it panicked).
    fn answer(self: Box<Self>);
}

struct Call<T, F> {
    f: Option<F>,
    deadline: Instant,
    outcome: Option<Result<T, StoreError>>,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send,
{
    fn wanted(&self) -> bool {
        !self.answer.is_closed()
    }

    fn run(&mut self, conn: Result<&mut Connection, StoreError>) -> bool {
        let Some(f) = self.f.take() else {
            return true;
        };
        let (outcome, fit) = match conn {
            Ok(c) => run_by(c, self.deadline, f),
            Err(e) => (Err(e), true),
        };
        self.outcome = Some(outcome);
        fit
    }

    fn answer(self: Box<Self>) {
        let outcome = self
            .outcome
            .unwrap_or_else(|| Err(StoreError::Unavailable("a store call failed".into())));
        let _ = self.answer.send(outcome);
    }
}

/// A queue of jobs and the threads that take them from it, each with its own connection.
/// An idle thread waits on the condition variable; a job wakes one only if one is idle (a
/// notification is a system call even when nobody waits, and the token path makes one call
/// per request).
struct Lane {
    queue: Arc<Queue>,
}

struct Queue {
    state: Mutex<Jobs>,
    ready: Condvar,
}

struct Jobs {
    waiting: VecDeque<Box<dyn Job>>,
    /// Threads waiting for a job.
    idle: usize,
    /// False once the store is dropped: the threads finish what is queued and end.
    open: bool,
}

impl Lane {
    /// `threads` threads named `name-<i>`; the first starts with `first` as its connection,
    /// the others connect on their first job.
    fn start(
        name: &str,
        threads: usize,
        path: &Path,
        mut first: Option<Connection>,
    ) -> Result<Self, StoreError> {
        let queue = Arc::new(Queue {
            state: Mutex::new(Jobs {
                waiting: VecDeque::new(),
                idle: 0,
                open: true,
            }),
            ready: Condvar::new(),
        });
        let lane = Self { queue };
        for i in 0..threads {
            let (queue, path, conn) = (lane.queue.clone(), path.to_path_buf(), first.take());
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || run_jobs(&path, &queue, conn))
                .map_err(unavailable)?;
        }
        Ok(lane)
    }

    fn push(&self, job: Box<dyn Job>) {
        let mut jobs = self.queue.state.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.waiting.push_back(job);
        let wake = jobs.idle > 0;
        drop(jobs);
        if wake {
            self.queue.ready.notify_one();
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.queue
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open = false;
        self.queue.ready.notify_all();
    }
}

impl Queue {
    /// The next job, waiting for one; `None` once the store is gone and nothing is queued.
    fn next(&self) -> Option<Box<dyn Job>> {
        let mut jobs = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(job) = jobs.waiting.pop_front() {
                return Some(job);
            }
            if !jobs.open {
                return None;
            }
            jobs.idle += 1;
            jobs = self.ready.wait(jobs).unwrap_or_else(PoisonError::into_inner);
            jobs.idle -= 1;
        }
    }
}

/// Run `f` on `conn`, waiting for locks no later than `deadline` (the time spent in the queue
/// counts: a write behind one that waits for another process's lock does not wait again from
/// the start). Also says whether the connection is fit to keep: not after an error below the
/// port's rules (I/O, corruption), which [`StoreError::Unavailable`] stands for.
fn run_by<T>(
    conn: &mut Connection,
    deadline: Instant,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> (Result<T, StoreError>, bool) {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return (Err(StoreError::Unavailable("the store stayed busy".into())), true);
    }
    if let Err(e) = conn.busy_timeout(left) {
        return (Err(unavailable(e)), false);
    }
    let out = f(conn);
    let fit = !matches!(out, Err(StoreError::Unavailable(_)));
    (out, fit)
}

/// A store thread: take the next job, run it on this thread's connection (connecting first if
/// there is none), keep the connection only if the job left it fit, then answer.
fn run_jobs(path: &Path, queue: &Queue, mut conn: Option<Connection>) {
    while let Some(mut job) = queue.next() {
        // The caller gave up before its turn (a request timeout, a client gone): skip it.
        if !job.wanted() {
            continue;
        }
        match conn.take().map_or_else(|| connect(path), Ok) {
            Ok(mut c) => {
                // A job that panics is `Unavailable` to its caller, and its connection is not
                // trusted again: dropped here, SQLite rolls back what it left open.
                let fit = catch_unwind(AssertUnwindSafe(|| job.run(Ok(&mut c)))).unwrap_or(false);
                if fit && settled(&c) {
                    conn = Some(c);
                }
            }
            Err(e) => {
                job.run(Err(e));
            }
        }
        job.answer();
    }
}

impl EmbeddedStore {
    /// Open (or create) the store file at `path`, creating its directory and the schema as
    /// needed, and start the store's threads. Safe while another process opens or uses the same
    /// file. This blocks (up to the busy timeout): call it off the async workers.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        let mut conn = connect(path)?;
        retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.commit()
        })?;
        let readers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
        Ok(Self {
            path: path.to_path_buf(),
            clock,
            writes: Lane::start("bulwark-store-w", 1, path, Some(conn))?,
            reads: Lane::start("bulwark-store-r", readers, path, None)?,
            busy_timeout: BUSY_TIMEOUT,
        })
    }

    #[cfg(test)]
    fn with_busy_timeout(mut self, wait: Duration) -> Self {
        self.busy_timeout = wait;
        self
    }

    /// Run `f` on a connection of one of the store's threads (the writer's if `write`) and
    /// await its answer.
    async fn call<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let lane = if write { &self.writes } else { &self.reads };
        let deadline = Instant::now() + self.busy_timeout;
        let (answer, answered) = oneshot::channel();
        lane.push(Box::new(Call {
            f: Some(f),
            deadline,
            outcome: None,
            answer,
        }));
        answered
            .await
            .map_err(|_| StoreError::Unavailable("a store call failed".into()))?
    }

    /// Delete expired rows (housekeeping; reads never see them anyway).
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        self.call(true, move |c| {
            c.execute(
                "DELETE FROM items WHERE expires_at IS NOT NULL AND expires_at <= ?1",
                params![now],
            )
            .map_err(unavailable)
        })
        .await
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
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.call(false, move |c| {
            Ok(read(c, table, &pk, &sk)?.filter(|i| i.is_live(now)))
        })
        .await
    }

    async fn put(&self, table: Table, item: Item, cond: Cond) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.call(true, move |c| {
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
        .await
    }

    async fn delete(&self, table: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        self.call(true, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let current = read(&tx, table, &pk, &sk)?;
            if !holds(cond, current.as_ref(), now) {
                return Err(StoreError::Conflict);
            }
            if current.is_some() {
                delete_row(&tx, table, &pk, &sk)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(current.filter(|i| i.is_live(now)))
        })
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
        let partition = partition.to_owned();
        self.call(false, move |c| {
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
        .await
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
        let mut keys: Vec<_> = writes.iter().map(write_key).collect();
        keys.sort();
        keys.dedup();
        if keys.len() != writes.len() {
            return Err(StoreError::Conflict);
        }
        let now = self.clock.now();
        self.call(true, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            for w in &writes {
                let (table, pk, sk) = write_key(w);
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
        .await
    }
}

/// The key a transaction's write is on.
fn write_key(w: &Write) -> (Table, String, String) {
    match w {
        Write::Put { table, item, .. } => (*table, item.pk.clone(), item.sk.clone()),
        Write::Delete { table, pk, sk, .. } | Write::Check { table, pk, sk, .. } => {
            (*table, pk.clone(), sk.clone())
        }
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

    /// A store call that must wait for SQLite's write lock (another process holds it) leaves the
    /// async worker free: on a runtime with one thread, a timer and a read complete while the
    /// write is still waiting, and the write lands once the lock is released. (When store calls
    /// ran on the worker, the write held the only thread for the whole busy timeout, 5 s, and
    /// had failed before the timer could fire.)
    #[test]
    fn a_write_waiting_for_the_lock_leaves_the_async_worker_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulwark.db");
        let store = Arc::new(EmbeddedStore::open(&path, ManualClock::at(1_700_000_000)).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let seeded = Item::new("read", "s", Map::new());
            store.put(Table::Clients, seeded, Cond::None).await.unwrap();
            let other = other_process(&path);
            let write = tokio::spawn({
                let store = store.clone();
                async move {
                    let item = Item::new("write", "s", Map::new());
                    store.put(Table::Clients, item, Cond::Absent).await
                }
            });
            // Meanwhile, on the runtime's only thread: a timer, then a read (WAL: readers do
            // not wait for a writer).
            tokio::time::sleep(Duration::from_millis(50)).await;
            let read = store.get(Table::Clients, "read", "s").await;
            assert!(
                !write.is_finished(),
                "the write ended before the lock was released: it ran on the async worker \
                 ({:?})",
                write.await
            );
            assert!(read.unwrap().is_some());
            other.execute_batch("COMMIT").unwrap();
            assert_eq!(write.await.unwrap(), Ok(()));
            assert!(store.get(Table::Clients, "write", "s").await.unwrap().is_some());
        });
    }

    /// Another process's write transaction on the store's file, open until it is dropped or
    /// committed; and a way to ask, without waiting, whether the write lock is free.
    fn other_process(path: &Path) -> Connection {
        let other = Connection::open(path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        other
    }

    fn write_lock_is_free(path: &Path) -> bool {
        let probe = Connection::open(path).unwrap();
        probe.busy_timeout(Duration::ZERO).unwrap();
        probe.execute_batch("BEGIN IMMEDIATE; COMMIT").is_ok()
    }

    fn put(pk: &str) -> Write {
        Write::Put {
            table: Table::Clients,
            item: Item::new(pk, "s", Map::new()),
            cond: Cond::Absent,
        }
    }

    /// A caller that gives up (a request timeout, a client gone) while its transaction waits
    /// for the lock leaves nothing half-applied and no transaction open: its writes land
    /// together or not at all, one whose turn had not yet come does not run, and the write
    /// lock is free again once the store is idle.
    #[tokio::test]
    async fn a_transaction_whose_caller_gives_up_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulwark.db");
        let store = Arc::new(EmbeddedStore::open(&path, ManualClock::at(1_700_000_000)).unwrap());
        let other = other_process(&path);
        let started = tokio::spawn({
            let store = store.clone();
            async move { store.transact(vec![put("a1"), put("a2")]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await; // its job now waits for the lock
        let queued = tokio::spawn({
            let store = store.clone();
            async move { store.transact(vec![put("b1"), put("b2")]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await; // queued behind it
        started.abort();
        queued.abort();
        assert!(started.await.unwrap_err().is_cancelled());
        assert!(queued.await.unwrap_err().is_cancelled());
        other.execute_batch("COMMIT").unwrap();
        // The next write runs after both abandoned jobs on the one writer thread.
        store.transact(vec![put("c")]).await.unwrap();
        let here = async |pk: &str| store.get(Table::Clients, pk, "s").await.unwrap().is_some();
        assert_eq!(here("a1").await, here("a2").await, "half a transaction landed");
        assert!(
            !here("b1").await && !here("b2").await,
            "a job whose caller had gone ran"
        );
        assert!(write_lock_is_free(&path), "the store kept a transaction open");
    }

    /// A job that leaves its connection inside a transaction, or panics in one, does not keep
    /// the write lock; a panic is `Unavailable` to its caller, and the store goes on working.
    #[tokio::test]
    async fn a_job_that_leaves_a_transaction_open_or_panics_does_not_keep_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulwark.db");
        let store = EmbeddedStore::open(&path, ManualClock::at(1_700_000_000)).unwrap();
        let left_open = store
            .call(true, |c| c.execute_batch("BEGIN IMMEDIATE").map_err(unavailable))
            .await;
        assert_eq!(left_open, Ok(()));
        assert!(write_lock_is_free(&path));
        let panicked: Result<(), _> = store
            .call(true, |c| {
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                panic!("a bug in a store job")
            })
            .await;
        assert!(
            matches!(panicked, Err(StoreError::Unavailable(_))),
            "{panicked:?}"
        );
        assert!(write_lock_is_free(&path));
        store.transact(vec![put("after")]).await.unwrap();
        assert!(store.get(Table::Clients, "after", "s").await.unwrap().is_some());
    }

    /// The busy timeout counts from the call: writes queued behind one that waits for another
    /// process's lock give up with it, not one busy timeout after another.
    #[tokio::test]
    async fn queued_writes_give_up_a_busy_timeout_after_their_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulwark.db");
        let wait = Duration::from_secs(1);
        let store = Arc::new(
            EmbeddedStore::open(&path, ManualClock::at(1_700_000_000))
                .unwrap()
                .with_busy_timeout(wait),
        );
        let _other = other_process(&path);
        let start = Instant::now();
        let writes: Vec<_> = (0..4)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.transact(vec![put(&format!("w{i}"))]).await })
            })
            .collect();
        for w in writes {
            assert!(matches!(w.await.unwrap(), Err(StoreError::Unavailable(_))));
        }
        let took = start.elapsed();
        // One after another, they would take at least 4 s.
        assert!(took >= wait && took < 3 * wait, "{took:?}");
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
