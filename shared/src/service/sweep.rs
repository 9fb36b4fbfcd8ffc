//! Unused open registrations expire. Anyone may register a client with a tenant whose DCR is
//! open; such a client (`Client::open_registration`) that gets no token for
//! [`OPEN_REGISTRATION_IDLE`] is deleted, with the cascade of any client delete
//! (`clients::delete_writes`, `clients::end_what_hangs_off`) and an audit event
//! `client.expired`.
//!
//! The sweep does not walk clients: each open registration is listed when it registers, under
//! the time it would expire if never used (`Repo::open_registrations_due`, 16 partitions in
//! due order). A run reads only the entries due by now; for each, the rule
//! (`domain::client::open_registration_expires_at`) and the client's last use decide: expired
//! (delete), used since (list it again under its new due time) or gone already (drop the
//! entry). So its cost follows what comes due, not how many clients there are.

use crate::domain::audit::AuditKind;
use serde::Serialize;

use crate::domain::client::open_registration_expires_at;
use crate::error::OAuthError;
use crate::service::App;
use crate::service::clients::{delete_writes, end_what_hangs_off};
use crate::store::StoreError;
use crate::store::repo::{OPEN_REGISTRATION_SHARDS, OpenRegistration};

pub use crate::domain::client::OPEN_REGISTRATION_IDLE;

/// Entries a run looks at in each partition, at most (the rest wait for the next run).
pub const DEFAULT_MAX_PER_SHARD: usize = 250;

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Entries due that it looked at.
    pub examined: usize,
    /// Clients deleted for want of use (their ids).
    pub expired: Vec<String>,
    /// Clients used since they were listed: listed again under their new due time.
    pub postponed: usize,
    /// Entries of clients deleted meanwhile (or that no longer expire): dropped.
    pub dropped: usize,
    /// Entries another sweep (or a change to the client) got to first: left for the next run.
    pub skipped: usize,
    /// Whether entries due were left for the next run (the per-partition bound was reached).
    pub more: bool,
}

/// Delete the open registrations unused for [`OPEN_REGISTRATION_IDLE`] (only `tenant`'s, when
/// given), looking at most at `max_per_shard` due entries per partition. `actor` is recorded
/// in each `client.expired` audit event.
pub async fn expire_open_registrations(
    app: &App,
    tenant: Option<&str>,
    max_per_shard: usize,
    actor: &str,
) -> Result<SweepReport, OAuthError> {
    let now = app.now();
    let mut report = SweepReport::default();
    for shard in 0..OPEN_REGISTRATION_SHARDS {
        let mut seen = 0;
        let mut cursor: Option<String> = None;
        'shard: loop {
            let (entries, next) = app
                .repo
                .open_registrations_due(shard, now, cursor.as_deref(), 100)
                .await?;
            for e in entries {
                if tenant.is_some_and(|t| t != e.tenant) {
                    continue;
                }
                if seen == max_per_shard {
                    report.more = true;
                    break 'shard;
                }
                seen += 1;
                report.examined += 1;
                examine(app, &e, now, actor, &mut report).await?;
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    if !report.expired.is_empty() || report.more {
        tracing::info!(
            expired = report.expired.len(),
            postponed = report.postponed,
            more = report.more,
            "open registrations swept"
        );
    }
    Ok(report)
}

async fn examine(
    app: &App,
    e: &OpenRegistration,
    now: i64,
    actor: &str,
    report: &mut SweepReport,
) -> Result<(), OAuthError> {
    let drop_entry = vec![app.repo.delete_open_registration_write(e)];
    let Some(current) = app.repo.client_any_in(&e.tenant, &e.client_id).await? else {
        let landed = landed(app.repo.commit(drop_entry).await)?;
        *if landed {
            &mut report.dropped
        } else {
            &mut report.skipped
        } += 1;
        return Ok(());
    };
    let last_used = app
        .repo
        .client_last_used(current.value.tenant.as_str(), &e.client_id)
        .await?;
    match open_registration_expires_at(&current.value, last_used) {
        None => {
            let landed = landed(app.repo.commit(drop_entry).await)?;
            *if landed {
                &mut report.dropped
            } else {
                &mut report.skipped
            } += 1;
            Ok(())
        }
        Some(at) if now >= at => {
            // One attempt, at the version read: if the client changed meanwhile, the next run
            // decides again. The entry goes in the same transaction, so two sweeps racing
            // delete it once.
            let detail = Some(match last_used {
                Some(t) => format!("unused since {t}"),
                None => "never used".to_string(),
            });
            let mut writes = delete_writes(app, &current, AuditKind::ClientExpired, actor, detail)?;
            writes.push(app.repo.delete_open_registration_write(e));
            match app.repo.commit(writes).await {
                Ok(()) => {
                    end_what_hangs_off(app, &current.value.tenant, &current.value.client_id).await?;
                    report.expired.push(e.client_id.clone());
                    Ok(())
                }
                Err(StoreError::Conflict) => {
                    report.skipped += 1;
                    Ok(())
                }
                Err(err) => Err(err.into()),
            }
        }
        Some(at) => {
            let mut writes = drop_entry;
            writes.push(app.repo.open_registration_write(&e.client_id, &e.tenant, at)?);
            let landed = landed(app.repo.commit(writes).await)?;
            *if landed {
                &mut report.postponed
            } else {
                &mut report.skipped
            } += 1;
            Ok(())
        }
    }
}

/// Whether a change landed; a lost condition means another sweep (or a change to the client)
/// got there first.
fn landed(r: Result<(), StoreError>) -> Result<bool, OAuthError> {
    match r {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
