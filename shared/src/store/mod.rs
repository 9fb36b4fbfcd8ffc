//! The storage port, shaped by DynamoDB rather than SQL.
//!
//! Every backend stores [`Item`]s in a handful of logical [`Table`]s. An item has a partition
//! key and a sort key, an optional entry in the table's one secondary index (`gpk`/`gsk`, for
//! "all X of tenant T" listings), a JSON document, an optional expiry and a version number for
//! optimistic concurrency. The operations are the ones DynamoDB does natively: get by key,
//! conditional put, conditional delete returning the old item, query one partition in pages,
//! and small all-or-nothing transactions.
//!
//! **Expired items are invisible.** DynamoDB's TTL deletes lazily (and moto never does), so every
//! adapter treats an item whose `expires_at <= now` as absent on every read and condition.
//!
//! Typed access (tenants, clients, tokens) lives in [`repo`]; nothing above this module builds
//! keys by hand.

use async_trait::async_trait;
use serde_json::{Map, Value};

#[doc(hidden)]
pub mod contract;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod metered;
pub mod repo;
pub mod repo_grants;
pub mod repo_users;
pub mod schema;

/// Logical tables. Each backend maps them to its own physical names (DynamoDB: one table each,
/// named in `template.yaml`; embedded: one SQLite table with a `tbl` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Tenant configuration: DCR policy, scope catalog, resources, lifetimes.
    Tenants,
    /// Clients (Connected Apps), indexed by tenant.
    Clients,
    /// Short-lived, single-purpose items: initial access tokens, the `jti` deny list, sessions,
    /// pending authorization requests, codes, login-failure counters.
    Tokens,
    /// Audit events per tenant.
    Audit,
    /// End users and the per-tenant username index.
    Users,
    /// What users granted: consents, grants (one per authorization) and refresh tokens.
    Grants,
    /// The signing key ring of `SigningMode=kms-wrapped` (one item: public keys, and the active
    /// private key only as KMS ciphertext). Written by the operator CLI alone.
    Keys,
}

impl Table {
    pub const ALL: [Table; 7] = [
        Table::Tenants,
        Table::Clients,
        Table::Tokens,
        Table::Audit,
        Table::Users,
        Table::Grants,
        Table::Keys,
    ];

    /// The stable logical name (used as the embedded store's `tbl` value and in config).
    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Clients => "clients",
            Table::Tokens => "tokens",
            Table::Audit => "audit",
            Table::Users => "users",
            Table::Grants => "grants",
            Table::Keys => "keys",
        }
    }
}

/// Which key a [`Kv::query`] walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Items whose `pk` equals the partition, ordered by `sk`.
    Primary,
    /// The same items, greatest `sk` first (newest first, for time-ordered sort keys).
    PrimaryDescending,
    /// Items whose `gpk` equals the partition, ordered by `gsk` (the order of equal `gsk`s is
    /// unspecified, as on a DynamoDB index).
    ByParent,
}

/// One stored item.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    /// Secondary-index partition key (e.g. the tenant id of a client).
    pub gpk: Option<String>,
    /// Secondary-index sort key.
    pub gsk: Option<String>,
    /// The document. Always a JSON object.
    pub data: Map<String, Value>,
    /// Unix seconds after which the item no longer exists for any reader.
    pub expires_at: Option<i64>,
    /// Optimistic-concurrency version, chosen by the writer (see [`Cond::Version`]).
    pub version: u64,
}

impl Item {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>, data: Map<String, Value>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
            gpk: None,
            gsk: None,
            data,
            expires_at: None,
            version: 1,
        }
    }
    pub fn with_index(mut self, gpk: impl Into<String>, gsk: impl Into<String>) -> Self {
        self.gpk = Some(gpk.into());
        self.gsk = Some(gsk.into());
        self
    }
    pub fn expiring_at(mut self, at: i64) -> Self {
        self.expires_at = Some(at);
        self
    }
    /// Whether the item is still visible at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// The condition a write must meet, evaluated against the live (unexpired) item at the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// No condition.
    None,
    /// No live item exists at the key (an expired one counts as absent).
    Absent,
    /// A live item exists at the key.
    Exists,
    /// A live item exists and its version equals this one.
    Version(u64),
}

/// One write of a transaction.
#[derive(Clone, Debug)]
pub enum Write {
    Put {
        table: Table,
        item: Item,
        cond: Cond,
    },
    Delete {
        table: Table,
        pk: String,
        sk: String,
        cond: Cond,
    },
    /// Write nothing, but fail the transaction unless the condition holds.
    Check {
        table: Table,
        pk: String,
        sk: String,
        cond: Cond,
    },
}

/// One page of a query. `next` is an opaque cursor: pass it back to get the following page;
/// `None` means the partition is exhausted.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A write's condition did not hold (put-if-absent lost, version moved, transaction cancelled).
    #[error("condition failed")]
    Conflict,
    /// The backend could not be reached or refused to serve (throttling, timeouts, I/O, 5xx).
    /// The detail is for logs only, never for a response body.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// The storage port. Every backend implements exactly this, and the contract suite in
/// [`contract`] proves each one keeps the same invariants.
#[async_trait]
pub trait Kv: Send + Sync + 'static {
    /// The live item at `(pk, sk)`, if any. Strongly consistent.
    async fn get(&self, table: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError>;

    /// Write `item` if `cond` holds; otherwise `Err(Conflict)` and nothing changes.
    async fn put(&self, table: Table, item: Item, cond: Cond) -> Result<(), StoreError>;

    /// Delete the item at `(pk, sk)` if `cond` holds and return the old live item (if there was
    /// one). Of several concurrent deletes with `Cond::Exists`, exactly one gets the item back.
    async fn delete(&self, table: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError>;

    /// Up to `limit` live items of one partition, in key order, starting after `cursor`.
    async fn query(
        &self,
        table: Table,
        index: Index,
        partition: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// All writes land or none does. At most 25 writes (DynamoDB's `TransactWriteItems` limit),
    /// each on a distinct key. A failed condition gives `Err(Conflict)`.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// The cursor that makes a [`Kv::query`] on `index` continue right after `item` (an item
    /// that query returned), for a caller that stops in the middle of a page.
    fn cursor_after(&self, index: Index, item: &Item) -> Result<String, StoreError>;
}
