//! `migrate` with test-only steps over the embedded store: a step runs once, a dry run writes
//! nothing, a failed or crashed step is resumable, concurrent runs apply a step once, and the
//! serving rule.

use serde_json::{Map, Value, json};
use std::sync::Arc;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::store::embedded::EmbeddedStore;
use crate::store::{Cond, Item, Table};

fn doc(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn store() -> (Repo, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_700_000_000);
    let kv = Arc::new(EmbeddedStore::open(&dir.path().join("bulwark.db"), clock.clone()).unwrap());
    (Repo::new(kv, clock.clone()), clock, dir)
}

async fn get(repo: &Repo, pk: &str) -> Option<Map<String, Value>> {
    repo.kv()
        .get(Table::Tokens, pk, "x")
        .await
        .unwrap()
        .map(|i| i.data)
}

async fn put(repo: &Repo, pk: &str, data: Value) {
    repo.kv()
        .put(Table::Tokens, Item::new(pk, "x", doc(data)), Cond::None)
        .await
        .unwrap();
}

/// Test step 1 -> 2: renames `old` to `new` in item `mig#a` (idempotent), counts its runs in
/// `mig#runs`, and fails while `mig#fail` exists (after renaming: a crash mid-way).
fn rename_step(repo: &Repo) -> StepFuture<'_> {
    Box::pin(async move {
        let runs = get(repo, "mig#runs")
            .await
            .and_then(|d| d.get("n").and_then(Value::as_u64))
            .unwrap_or(0);
        put(repo, "mig#runs", json!({"n": runs + 1})).await;
        if let Some(mut d) = get(repo, "mig#a").await
            && let Some(v) = d.remove("old")
        {
            d.insert("new".into(), v);
            put(repo, "mig#a", Value::Object(d)).await;
        }
        if get(repo, "mig#fail").await.is_some() {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        Ok(())
    })
}

fn noop_step(_: &Repo) -> StepFuture<'_> {
    Box::pin(async { Ok(()) })
}

const REGISTRY: &[Migration] = &[
    Migration {
        from: 1,
        name: "rename old to new",
        new_code_reads_old: false,
        run: rename_step,
    },
    Migration {
        from: 2,
        name: "nothing",
        new_code_reads_old: true,
        run: noop_step,
    },
];

async fn runs(repo: &Repo) -> u64 {
    get(repo, "mig#runs")
        .await
        .and_then(|d| d.get("n").and_then(Value::as_u64))
        .unwrap_or(0)
}

#[tokio::test]
async fn a_store_without_a_version_item_is_version_1_and_migrate_stamps_it() {
    let (repo, _, _dir) = store();
    assert_eq!(repo.schema_version().await.unwrap(), 1);
    assert!(repo.schema_stamp().await.unwrap().is_none());
    let r = migrate(&repo, MIGRATIONS, CURRENT_SCHEMA, false).await.unwrap();
    assert_eq!((r.from, r.to, r.stamped), (1, CURRENT_SCHEMA, true));
    assert!(r.steps.is_empty());
    let stamp = repo.schema_stamp().await.unwrap().unwrap().value;
    assert_eq!(stamp, SchemaStamp::at(CURRENT_SCHEMA));
    // Again: nothing to do, nothing written.
    let again = migrate(&repo, MIGRATIONS, CURRENT_SCHEMA, false).await.unwrap();
    assert!(!again.stamped && again.steps.is_empty());
}

#[tokio::test]
async fn migrate_runs_each_step_once_and_stamps_the_target() {
    let (repo, _, _dir) = store();
    put(&repo, "mig#a", json!({"old": 7})).await;
    let r = migrate(&repo, REGISTRY, 3, false).await.unwrap();
    assert_eq!(r.steps, vec!["rename old to new", "nothing"]);
    assert_eq!((r.from, r.to), (1, 3));
    assert_eq!(repo.schema_version().await.unwrap(), 3);
    assert_eq!(get(&repo, "mig#a").await.unwrap(), doc(json!({"new": 7})));
    assert_eq!(runs(&repo).await, 1);
    // Safe to re-run: nothing runs again.
    let again = migrate(&repo, REGISTRY, 3, false).await.unwrap();
    assert!(again.steps.is_empty());
    assert_eq!(runs(&repo).await, 1);
    // Code that knows only version 2 refuses to migrate (or serve) this store.
    assert_eq!(
        migrate(&repo, REGISTRY, 2, false).await,
        Err(MigrateError::TooNew {
            stored: 3,
            current: 2
        })
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let (repo, _, _dir) = store();
    put(&repo, "mig#a", json!({"old": 7})).await;
    let r = migrate(&repo, REGISTRY, 3, true).await.unwrap();
    assert_eq!(r.steps, vec!["rename old to new", "nothing"]);
    assert!(r.dry_run && r.stamped);
    assert!(repo.schema_stamp().await.unwrap().is_none());
    assert_eq!(get(&repo, "mig#a").await.unwrap(), doc(json!({"old": 7})));
    assert_eq!(runs(&repo).await, 0);
    // A gap in the registry is found without running anything.
    assert_eq!(
        migrate(&repo, &REGISTRY[1..], 3, true).await,
        Err(MigrateError::Missing(1))
    );
}

#[tokio::test]
async fn a_step_that_fails_mid_way_is_resumed_by_a_rerun() {
    let (repo, _, _dir) = store();
    put(&repo, "mig#a", json!({"old": 7})).await;
    put(&repo, "mig#fail", json!({})).await;
    let e = migrate(&repo, REGISTRY, 2, false).await.unwrap_err();
    assert!(matches!(e, MigrateError::Step { from: 1, to: 2, .. }), "{e:?}");
    // Half done (the item was rewritten), still at 1, and the claim was given back.
    assert_eq!(repo.schema_version().await.unwrap(), 1);
    assert_eq!(
        repo.schema_stamp().await.unwrap().unwrap().value,
        SchemaStamp::at(1)
    );
    repo.kv()
        .delete(Table::Tokens, "mig#fail", "x", Cond::None)
        .await
        .unwrap();
    let r = migrate(&repo, REGISTRY, 2, false).await.unwrap();
    assert_eq!(r.steps, vec!["rename old to new"]);
    assert_eq!(repo.schema_version().await.unwrap(), 2);
    assert_eq!(get(&repo, "mig#a").await.unwrap(), doc(json!({"new": 7})));
    assert_eq!(runs(&repo).await, 2);
}

#[tokio::test]
async fn a_crashed_run_blocks_others_until_its_lease_ends_then_is_taken_over() {
    let (repo, clock, _dir) = store();
    put(&repo, "mig#a", json!({"old": 7})).await;
    // What a migrate killed between its claim and its stamp leaves behind.
    let claim = SchemaStamp {
        version: 1,
        migrating_to: Some(2),
        claimed_at: Some(clock.now()),
    };
    repo.put_schema_stamp(&claim, None).await.unwrap();
    let e = migrate(&repo, REGISTRY, 2, false).await.unwrap_err();
    assert!(matches!(e, MigrateError::Busy { to: 2, .. }), "{e:?}");
    assert_eq!(runs(&repo).await, 0);
    clock.advance(MIGRATION_LEASE_SECS);
    let r = migrate(&repo, REGISTRY, 2, false).await.unwrap();
    assert_eq!(r.steps, vec!["rename old to new"]);
    assert_eq!(repo.schema_version().await.unwrap(), 2);
    assert_eq!(runs(&repo).await, 1);
}

#[tokio::test]
async fn of_concurrent_migrates_one_runs_the_step() {
    let (repo, _, _dir) = store();
    put(&repo, "mig#a", json!({"old": 7})).await;
    repo.put_schema_stamp(&SchemaStamp::at(1), None).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { migrate(&repo, &REGISTRY[..1], 2, false).await })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => applied += r.steps.len(),
            Err(MigrateError::Busy { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(runs(&repo).await, 1);
    assert_eq!(repo.schema_version().await.unwrap(), 2);
}

#[test]
fn the_serving_rule() {
    assert_eq!(serving(1, 1, MIGRATIONS), Serving::Ready);
    assert_eq!(
        serving(CURRENT_SCHEMA, CURRENT_SCHEMA, MIGRATIONS),
        Serving::Ready
    );
    assert_eq!(
        serving(CURRENT_SCHEMA + 1, CURRENT_SCHEMA, MIGRATIONS),
        Serving::TooNew {
            stored: CURRENT_SCHEMA + 1,
            current: CURRENT_SCHEMA
        }
    );
    // Older: served only if every pending step says the new code reads the old layout.
    assert_eq!(serving(2, 3, REGISTRY), Serving::Ready);
    assert_eq!(
        serving(1, 3, REGISTRY),
        Serving::NeedsMigration {
            stored: 1,
            current: 3
        }
    );
    assert_eq!(
        serving(1, 2, &REGISTRY[1..]),
        Serving::NeedsMigration {
            stored: 1,
            current: 2
        }
    );
}
