//! The store's schema version and its migrations (`bulwark migrate`).
//!
//! **The version item.** One item, `tenants` / `schema` / `version`, holds the layout version
//! the store is in ([`SchemaStamp`]). A store without it is at version 1, today's layout: every
//! store written before versions existed is one, and so is a fresh, empty one (`bulwark
//! migrate` stamps it; nothing else writes the item). [`CURRENT_SCHEMA`] is the version this
//! code writes and reads.
//!
//! **Migrations.** [`MIGRATIONS`] lists the steps from version N to N+1, in order. A step is a
//! function over the store through [`Repo`]; it must be idempotent (a crash after it ran but
//! before the stamp runs it again). [`migrate`] applies the pending steps one at a time: it
//! claims the step with a conditional put on the version item (so of two concurrent migrates
//! only one runs a step; the other is told it is busy), runs it, and stamps N+1 with a put
//! conditioned on its own claim. A claim older than [`MIGRATION_LEASE_SECS`] is taken to be a
//! crashed run and may be taken over.
//!
//! **Serving.** Code never serves a store newer than it understands ([`Serving::TooNew`]). It
//! serves an older one only if every pending step says the code of its target version still
//! reads the layout before it ([`Migration::new_code_reads_old`]); otherwise requests wait for
//! `bulwark migrate` ([`Serving::NeedsMigration`]).

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

use super::repo::{Repo, Versioned, from_item, to_map};
use super::{Cond, Item, StoreError, Table};

/// The layout version this code reads and writes. Bump it with a step in [`MIGRATIONS`].
pub const CURRENT_SCHEMA: u32 = 1;

/// How long a claimed step may run before another `migrate` may take it over (seconds).
pub const MIGRATION_LEASE_SECS: i64 = 900;

const SCHEMA_PK: &str = "schema";
const SCHEMA_SK: &str = "version";

/// The version item's document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaStamp {
    /// The layout the store is in.
    pub version: u32,
    /// While a step runs: the version it migrates to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrating_to: Option<u32>,
    /// While a step runs: when it was claimed (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<i64>,
}

impl SchemaStamp {
    fn at(version: u32) -> Self {
        Self {
            version,
            migrating_to: None,
            claimed_at: None,
        }
    }
}

/// What a step returns: a future over the repo it was given.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// One step from version `from` to `from + 1`.
pub struct Migration {
    pub from: u32,
    /// What it does, for the operator.
    pub name: &'static str,
    /// Whether code at `from + 1` still serves a store at `from` (it reads both layouts). If
    /// not, between the deploy of the new code and the end of `bulwark migrate` every request
    /// answers 503.
    pub new_code_reads_old: bool,
    /// The change itself; idempotent.
    pub run: for<'a> fn(&'a Repo) -> StepFuture<'a>,
}

/// Every step, in order (`from` = 1, 2, ...). Today's layout is version 1: none yet.
pub const MIGRATIONS: &[Migration] = &[];

impl Repo {
    /// The version item, if the store has one.
    pub async fn schema_stamp(&self) -> Result<Option<Versioned<SchemaStamp>>, StoreError> {
        match self.kv().get(Table::Tenants, SCHEMA_PK, SCHEMA_SK).await? {
            Some(item) => Ok(Some(from_item(item)?)),
            None => Ok(None),
        }
    }

    /// Write the version item: the first one if `version` is `None`, else over the one read at
    /// `version`; `Conflict` if it moved. Returns the new item's version.
    pub async fn put_schema_stamp(
        &self,
        stamp: &SchemaStamp,
        version: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut item = Item::new(SCHEMA_PK, SCHEMA_SK, to_map(stamp)?);
        let cond = match version {
            None => Cond::Absent,
            Some(v) => {
                item.version = v + 1;
                Cond::Version(v)
            }
        };
        let written = item.version;
        self.kv().put(Table::Tenants, item, cond).await?;
        Ok(written)
    }

    /// The layout version the store is in (1 without a version item).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.schema_stamp().await?.map_or(1, |s| s.value.version))
    }
}

/// Whether code at `current` may serve a store at `stored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    Ready,
    /// The store was migrated by newer code: never served.
    TooNew {
        stored: u32,
        current: u32,
    },
    /// Older, and some pending step is not readable by this code: served after `migrate`.
    NeedsMigration {
        stored: u32,
        current: u32,
    },
}

/// The rule of the module doc, over a registry.
pub fn serving(stored: u32, current: u32, registry: &[Migration]) -> Serving {
    if stored > current {
        return Serving::TooNew { stored, current };
    }
    let all_readable = (stored..current).all(|from| {
        registry
            .iter()
            .find(|m| m.from == from)
            .is_some_and(|m| m.new_code_reads_old)
    });
    if all_readable {
        Serving::Ready
    } else {
        Serving::NeedsMigration { stored, current }
    }
}

/// What [`migrate`] did (or, dry, would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateReport {
    pub from: u32,
    pub to: u32,
    /// The steps run (dry: that would run), by name.
    pub steps: Vec<&'static str>,
    /// Whether the version item was (dry: would be) written for the first time.
    pub stamped: bool,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MigrateError {
    #[error("{0}")]
    Store(StoreError),
    #[error(
        "the store is at schema version {stored}, newer than this code ({current}): deploy the newer code, do not migrate back"
    )]
    TooNew { stored: u32, current: u32 },
    #[error("no migration from schema version {0}")]
    Missing(u32),
    #[error(
        "another migrate is running the step to version {to} (claimed at {claimed_at}); rerun once it ended, or after {MIGRATION_LEASE_SECS}s if it crashed"
    )]
    Busy { to: u32, claimed_at: i64 },
    #[error("the step to version {to} ({name}) failed: {error}; the store stays at {from}, rerun migrate")]
    Step {
        from: u32,
        to: u32,
        name: &'static str,
        error: StoreError,
    },
}

impl From<StoreError> for MigrateError {
    fn from(e: StoreError) -> Self {
        MigrateError::Store(e)
    }
}

/// Bring the store to `target` with the steps of `registry` (see the module doc). `dry_run`:
/// read only, and say what would run.
pub async fn migrate(
    repo: &Repo,
    registry: &[Migration],
    target: u32,
    dry_run: bool,
) -> Result<MigrateReport, MigrateError> {
    let first = repo.schema_stamp().await?;
    let from = first.as_ref().map_or(1, |s| s.value.version);
    let mut report = MigrateReport {
        from,
        to: from,
        steps: Vec::new(),
        stamped: false,
        dry_run,
    };
    if from > target {
        return Err(MigrateError::TooNew {
            stored: from,
            current: target,
        });
    }
    if dry_run {
        for v in from..target {
            let step = registry
                .iter()
                .find(|m| m.from == v)
                .ok_or(MigrateError::Missing(v))?;
            report.steps.push(step.name);
        }
        report.to = target;
        report.stamped = first.is_none();
        return Ok(report);
    }
    let mut read = first;
    loop {
        let (version, item_version) = match &read {
            Some(s) => (s.value.version, Some(s.version)),
            None => (1, None),
        };
        report.to = version;
        if version > target {
            return Err(MigrateError::TooNew {
                stored: version,
                current: target,
            });
        }
        if version == target {
            if item_version.is_none() {
                match repo.put_schema_stamp(&SchemaStamp::at(version), None).await {
                    Ok(_) => report.stamped = true,
                    Err(StoreError::Conflict) => {} // another migrate stamped it
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(report);
        }
        let step = registry
            .iter()
            .find(|m| m.from == version)
            .ok_or(MigrateError::Missing(version))?;
        if let Some(s) = &read
            && let (Some(to), Some(at)) = (s.value.migrating_to, s.value.claimed_at)
            && repo.now() < at.saturating_add(MIGRATION_LEASE_SECS)
        {
            return Err(MigrateError::Busy { to, claimed_at: at });
        }
        let claim = SchemaStamp {
            version,
            migrating_to: Some(version + 1),
            claimed_at: Some(repo.now()),
        };
        let claimed = match repo.put_schema_stamp(&claim, item_version).await {
            Ok(v) => v,
            Err(StoreError::Conflict) => {
                // Another migrate moved the item: look again.
                read = repo.schema_stamp().await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(error) = (step.run)(repo).await {
            // Give the claim back so that a rerun need not wait out the lease.
            let _ = repo
                .put_schema_stamp(&SchemaStamp::at(version), Some(claimed))
                .await;
            return Err(MigrateError::Step {
                from: version,
                to: version + 1,
                name: step.name,
                error,
            });
        }
        match repo
            .put_schema_stamp(&SchemaStamp::at(version + 1), Some(claimed))
            .await
        {
            Ok(_) => {}
            // Our lease ran out and another migrate took the step over: it stamps.
            Err(StoreError::Conflict) => {
                return Err(MigrateError::Busy {
                    to: version + 1,
                    claimed_at: claim.claimed_at.unwrap_or_default(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        report.steps.push(step.name);
        read = repo.schema_stamp().await?;
    }
}

#[cfg(test)]
#[cfg(feature = "embedded")]
#[path = "schema_tests.rs"]
mod tests;
