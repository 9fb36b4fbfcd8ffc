//! The storage contract suite: the invariants every [`Kv`] backend must keep, one named test
//! each. A backend is plugged in with one line:
//!
//! ```ignore
//! shared::kv_contract_tests!(embedded, async { /* -> (Arc<dyn Kv>, Arc<ManualClock>) */ });
//! ```
//!
//! which expands to `mod embedded { #[tokio::test] fn put_if_absent_loses_to_an_existing_item() ... }`.
//! Each function panics when the backend breaks the invariant, so every test can fail.
//!
//! What a backend that passes is proven to do (the DynamoDB semantics the rest of Bulwark is
//! written against):
//! - **Round trip:** `get` returns exactly what `put` wrote (keys, index keys, expiry, version,
//!   any JSON document), and a `put` replaces the whole item rather than merging into it.
//! - **Expiry:** an item is gone at `expires_at == now` for `get`, `query`, `delete` and every
//!   condition, in single writes and in transactions, whatever the physical TTL does.
//! - **Conditions:** `Absent`, `Exists` and `Version` are checked against the live item, and a
//!   failed condition is `Conflict` with nothing changed.
//! - **Atomicity under contention:** of 32 concurrent put-if-absent, version-conditioned
//!   updates, deletes or transactions on one key, exactly one wins and the rest are `Conflict`
//!   (a code or an initial access token is used once).
//! - **Queries:** paging visits every live item of one partition exactly once, in UTF-8 byte
//!   order of the key, never items of other partitions or tables; an unknown cursor is
//!   `NotFound`.
//! - **Transactions:** all writes land or none; a failed `Check` cancels; more than 25 writes
//!   or two writes on one key are refused (`Conflict`) without writing.
//! - **Isolation:** the same key in two tables is two items.
//!
//! Every function uses fresh random keys, so the suite can run in parallel against one shared
//! store (the DynamoDB run shares its tables across tests) and times are relative to the clock.

// A test suite, compiled into the library so that every backend's tests can run it: its
// assertions unwrap and panic as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Map, Value, json};
use std::sync::Arc;

use super::{Cond, Index, Item, Kv, StoreError, Table, Write};
use crate::clock::{Clock, ManualClock};

fn doc(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}#{}", crate::secret::random_id(8))
}

/// Conditional put with `Absent` fails against a live item and leaves it unchanged.
pub async fn put_if_absent_loses_to_an_existing_item(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("client");
    store
        .put(
            Table::Clients,
            Item::new(&pk, "client", doc(json!({"n": 1}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    let second = store
        .put(
            Table::Clients,
            Item::new(&pk, "client", doc(json!({"n": 2}))),
            Cond::Absent,
        )
        .await;
    assert_eq!(second, Err(StoreError::Conflict));
    let got = store
        .get(Table::Clients, &pk, "client")
        .await
        .unwrap()
        .expect("item");
    assert_eq!(
        got.data["n"],
        json!(1),
        "the losing write must not change the item"
    );
}

/// An expired item counts as absent for `Absent`.
pub async fn put_if_absent_wins_over_an_expired_item(store: Arc<dyn Kv>, clock: Arc<ManualClock>) {
    let pk = unique("iat");
    let now = clock.now();
    store
        .put(
            Table::Tokens,
            Item::new(&pk, "iat", doc(json!({"n": 1}))).expiring_at(now + 10),
            Cond::Absent,
        )
        .await
        .unwrap();
    clock.advance(11);
    store
        .put(
            Table::Tokens,
            Item::new(&pk, "iat", doc(json!({"n": 2}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    let got = store.get(Table::Tokens, &pk, "iat").await.unwrap().expect("item");
    assert_eq!(got.data["n"], json!(2));
}

/// Everything `put` writes comes back from `get`, exactly.
pub async fn get_returns_what_put_wrote(store: Arc<dyn Kv>, clock: Arc<ManualClock>) {
    let pk = unique("client:ünïcødé");
    let mut item = Item::new(
        &pk,
        "sk#1:x",
        doc(json!({
            "name": "Zoë's app ✓", "n": 42, "f": 1.5, "b": true, "null": null,
            "list": ["a", {"nested": [1, 2, 3]}], "obj": {"k": "v"}, "empty": ""
        })),
    )
    .with_index("tenant#acme", "gsk#ü")
    .expiring_at(clock.now() + 3600);
    item.version = 7;
    store.put(Table::Clients, item.clone(), Cond::None).await.unwrap();
    assert_eq!(
        store.get(Table::Clients, &pk, "sk#1:x").await.unwrap(),
        Some(item)
    );
    assert_eq!(store.get(Table::Clients, &pk, "other").await.unwrap(), None);
    assert_eq!(
        store.get(Table::Clients, "missing", "sk#1:x").await.unwrap(),
        None
    );
}

/// Past `expires_at`, an item is gone for `get`, `query` and conditions.
pub async fn expired_items_are_invisible(store: Arc<dyn Kv>, clock: Arc<ManualClock>) {
    let pk = unique("jti");
    let now = clock.now();
    let item = Item::new(&pk, "deny", Map::new())
        .with_index(format!("{pk}#g"), "1")
        .expiring_at(now + 5);
    store.put(Table::Tokens, item, Cond::None).await.unwrap();
    assert!(store.get(Table::Tokens, &pk, "deny").await.unwrap().is_some());
    clock.advance(4);
    assert!(
        store.get(Table::Tokens, &pk, "deny").await.unwrap().is_some(),
        "live until the last second"
    );
    clock.advance(1);
    assert_eq!(
        store.get(Table::Tokens, &pk, "deny").await.unwrap(),
        None,
        "expires_at == now is expired"
    );
    let page = store
        .query(Table::Tokens, Index::Primary, &pk, None, 10)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let page = store
        .query(Table::Tokens, Index::ByParent, &format!("{pk}#g"), None, 10)
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let exists = store
        .put(Table::Tokens, Item::new(&pk, "deny", Map::new()), Cond::Exists)
        .await;
    assert_eq!(exists, Err(StoreError::Conflict));
    assert_eq!(
        store.delete(Table::Tokens, &pk, "deny", Cond::Exists).await,
        Err(StoreError::Conflict)
    );
    let version = store
        .put(
            Table::Tokens,
            Item::new(&pk, "deny", Map::new()),
            Cond::Version(1),
        )
        .await;
    assert_eq!(
        version,
        Err(StoreError::Conflict),
        "a version condition needs a live item"
    );
    assert_eq!(
        store.delete(Table::Tokens, &pk, "deny", Cond::None).await,
        Ok(None),
        "deleting an expired item returns nothing"
    );
}

/// `Version(v)` succeeds only against version `v`.
pub async fn conditional_update_on_version(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("tenant");
    store
        .put(
            Table::Tenants,
            Item::new(&pk, "config", doc(json!({"v": 1}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    let mut next = Item::new(&pk, "config", doc(json!({"v": 2})));
    next.version = 2;
    store
        .put(Table::Tenants, next.clone(), Cond::Version(1))
        .await
        .unwrap();
    let mut stale = Item::new(&pk, "config", doc(json!({"v": 3})));
    stale.version = 2;
    assert_eq!(
        store.put(Table::Tenants, stale, Cond::Version(1)).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        store.get(Table::Tenants, &pk, "config").await.unwrap(),
        Some(next)
    );
    let missing = store
        .put(
            Table::Tenants,
            Item::new(unique("none"), "config", Map::new()),
            Cond::Version(1),
        )
        .await;
    assert_eq!(
        missing,
        Err(StoreError::Conflict),
        "a version condition needs an item"
    );
}

/// `put` replaces the whole item: fields the new item lacks (index keys, expiry, document keys)
/// are gone, and the item leaves the index partition it was in.
pub async fn put_replaces_the_whole_item(store: Arc<dyn Kv>, clock: Arc<ManualClock>) {
    let pk = unique("client");
    let (t1, t2) = (unique("tenant"), unique("tenant"));
    let mut first = Item::new(&pk, "client", doc(json!({"a": 1, "b": {"c": 2}})))
        .with_index(&t1, "c1")
        .expiring_at(clock.now() + 100);
    first.version = 3;
    store.put(Table::Clients, first, Cond::Absent).await.unwrap();

    let mut moved = Item::new(&pk, "client", doc(json!({"b": "x"}))).with_index(&t2, "c1");
    moved.version = 4;
    store
        .put(Table::Clients, moved.clone(), Cond::Version(3))
        .await
        .unwrap();
    assert_eq!(
        store.get(Table::Clients, &pk, "client").await.unwrap(),
        Some(moved)
    );
    let old = store
        .query(Table::Clients, Index::ByParent, &t1, None, 10)
        .await
        .unwrap();
    assert!(old.items.is_empty(), "the item left its old index partition");
    let new = store
        .query(Table::Clients, Index::ByParent, &t2, None, 10)
        .await
        .unwrap();
    assert_eq!(new.items.len(), 1);

    let bare = Item::new(&pk, "client", doc(json!({"z": null})));
    store.put(Table::Clients, bare.clone(), Cond::None).await.unwrap();
    assert_eq!(
        store.get(Table::Clients, &pk, "client").await.unwrap(),
        Some(bare)
    );
    let indexed = store
        .query(Table::Clients, Index::ByParent, &t2, None, 10)
        .await
        .unwrap();
    assert!(
        indexed.items.is_empty(),
        "an item without index keys is in no index partition"
    );
    clock.advance(1000);
    assert!(
        store.get(Table::Clients, &pk, "client").await.unwrap().is_some(),
        "the old expiry went with the old item"
    );
}

/// A delete conditioned on a version removes only that version.
pub async fn conditional_delete_on_version(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("client");
    let mut item = Item::new(&pk, "client", doc(json!({"v": 4})));
    item.version = 4;
    store
        .put(Table::Clients, item.clone(), Cond::Absent)
        .await
        .unwrap();
    assert_eq!(
        store
            .delete(Table::Clients, &pk, "client", Cond::Version(3))
            .await,
        Err(StoreError::Conflict)
    );
    let stale = store
        .transact(vec![Write::Delete {
            table: Table::Clients,
            pk: pk.clone(),
            sk: "client".into(),
            cond: Cond::Version(5),
        }])
        .await;
    assert_eq!(stale, Err(StoreError::Conflict));
    assert_eq!(
        store.get(Table::Clients, &pk, "client").await.unwrap(),
        Some(item.clone()),
        "a stale delete leaves the item"
    );
    assert_eq!(
        store
            .delete(Table::Clients, &pk, "client", Cond::Version(4))
            .await,
        Ok(Some(item))
    );
    assert_eq!(store.get(Table::Clients, &pk, "client").await.unwrap(), None);
}

/// Of 32 concurrent read-modify-writes of one version, exactly one lands.
pub async fn exactly_one_of_32_concurrent_conditional_updates_wins(
    store: Arc<dyn Kv>,
    _clock: Arc<ManualClock>,
) {
    let pk = unique("iat");
    store
        .put(
            Table::Tokens,
            Item::new(&pk, "iat", doc(json!({"uses": 0}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let (store, pk, barrier) = (store.clone(), pk.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let current = store.get(Table::Tokens, &pk, "iat").await.unwrap().expect("item");
            barrier.wait().await;
            let mut next = Item::new(&pk, "iat", doc(json!({"uses": 1, "winner": i})));
            next.version = current.version + 1;
            store
                .put(Table::Tokens, next, Cond::Version(current.version))
                .await
                .map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(e) => assert_eq!(e, StoreError::Conflict),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one conditional update must win, got {winners:?}"
    );
    let got = store.get(Table::Tokens, &pk, "iat").await.unwrap().expect("item");
    assert_eq!(got.data["winner"], json!(winners[0]));
    assert_eq!(got.version, 2);
}

/// Of 32 concurrent put-if-absent on one key, exactly one lands.
pub async fn exactly_one_of_32_concurrent_put_if_absent_wins(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("client");
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let (store, pk) = (store.clone(), pk.clone());
        tasks.push(tokio::spawn(async move {
            store
                .put(
                    Table::Clients,
                    Item::new(&pk, "client", doc(json!({"i": i}))),
                    Cond::Absent,
                )
                .await
                .map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(e) => assert_eq!(e, StoreError::Conflict),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let got = store
        .get(Table::Clients, &pk, "client")
        .await
        .unwrap()
        .expect("item");
    assert_eq!(got.data["i"], json!(winners[0]));
}

/// `delete` hands back the old item once; a second conditional delete conflicts.
pub async fn delete_returns_the_old_item_once(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("code");
    let item = Item::new(&pk, "code", doc(json!({"client": "c1"})));
    store
        .put(Table::Tokens, item.clone(), Cond::Absent)
        .await
        .unwrap();
    assert_eq!(
        store
            .delete(Table::Tokens, &pk, "code", Cond::Exists)
            .await
            .unwrap(),
        Some(item)
    );
    assert_eq!(
        store.delete(Table::Tokens, &pk, "code", Cond::Exists).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        store.delete(Table::Tokens, &pk, "code", Cond::None).await,
        Ok(None)
    );
    assert_eq!(store.get(Table::Tokens, &pk, "code").await.unwrap(), None);
}

/// Of 32 concurrent deletes, exactly one gets the item (a code redeems once).
pub async fn exactly_one_of_32_concurrent_deletes_gets_the_item(
    store: Arc<dyn Kv>,
    _clock: Arc<ManualClock>,
) {
    let pk = unique("code");
    store
        .put(
            Table::Tokens,
            Item::new(&pk, "code", doc(json!({"x": 1}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (store, pk) = (store.clone(), pk.clone());
        tasks.push(tokio::spawn(async move {
            store.delete(Table::Tokens, &pk, "code", Cond::Exists).await
        }));
    }
    let mut got = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Some(_)) => got += 1,
            Ok(None) => panic!("Cond::Exists must not succeed without an item"),
            Err(e) => assert_eq!(e, StoreError::Conflict),
        }
    }
    assert_eq!(got, 1);
}

async fn collect_pages(
    store: &Arc<dyn Kv>,
    table: Table,
    index: Index,
    partition: &str,
    limit: usize,
) -> Vec<Item> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let page = store
            .query(table, index, partition, cursor.as_deref(), limit)
            .await
            .unwrap();
        assert!(page.items.len() <= limit, "a page holds at most `limit` items");
        all.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return all,
        }
    }
    panic!("pagination did not terminate");
}

/// Paging through a partition yields every item exactly once, in sort-key order, and nothing
/// from other partitions or tables.
pub async fn query_pages_through_a_partition_in_order(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("tenant");
    let other = unique("tenant");
    for i in 0..53 {
        let sk = format!("{:012}#ev:{i}", 1000 + i);
        store
            .put(
                Table::Audit,
                Item::new(&pk, &sk, doc(json!({"i": i}))),
                Cond::None,
            )
            .await
            .unwrap();
        store
            .put(Table::Audit, Item::new(&other, &sk, Map::new()), Cond::None)
            .await
            .unwrap();
    }
    store
        .put(
            Table::Clients,
            Item::new(&pk, "000000000000#x", Map::new()),
            Cond::None,
        )
        .await
        .unwrap();
    let all = collect_pages(&store, Table::Audit, Index::Primary, &pk, 10).await;
    assert_eq!(all.len(), 53);
    let order: Vec<i64> = all.iter().map(|i| i.data["i"].as_i64().unwrap()).collect();
    assert_eq!(order, (0..53).collect::<Vec<_>>());
    assert!(all.iter().all(|i| i.pk == pk));
    let single = collect_pages(&store, Table::Audit, Index::Primary, &pk, 100).await;
    assert_eq!(single.len(), 53);
    // Newest first: the same items, greatest sort key first, paged the same way.
    let back = collect_pages(&store, Table::Audit, Index::PrimaryDescending, &pk, 10).await;
    let order: Vec<i64> = back.iter().map(|i| i.data["i"].as_i64().unwrap()).collect();
    assert_eq!(order, (0..53).rev().collect::<Vec<_>>());
    assert!(back.iter().all(|i| i.pk == pk));
    // Continuing right after an item in the middle of a page (a reader that filters stops
    // there), both ways.
    for index in [Index::Primary, Index::PrimaryDescending] {
        let page = store.query(Table::Audit, index, &pk, None, 10).await.unwrap();
        let c = store.cursor_after(index, &page.items[3]).unwrap();
        let rest = store.query(Table::Audit, index, &pk, Some(&c), 3).await.unwrap();
        let got: Vec<&str> = rest.items.iter().map(|i| i.sk.as_str()).collect();
        let want: Vec<&str> = page.items[4..7].iter().map(|i| i.sk.as_str()).collect();
        assert_eq!(got, want, "{index:?}");
    }
    // A cursor of one partition is refused on another (never a page of either).
    let first = store
        .query(Table::Audit, Index::Primary, &pk, None, 5)
        .await
        .unwrap();
    let cursor = first.next.expect("more pages");
    for index in [Index::Primary, Index::PrimaryDescending] {
        assert_eq!(
            store
                .query(Table::Audit, index, &other, Some(&cursor), 5)
                .await
                .map(|p| p.items.len()),
            Err(StoreError::NotFound),
            "{index:?}"
        );
    }
}

/// The secondary index pages the same way, ordered by `gsk`.
pub async fn query_by_parent_index_pages_correctly(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let tenant = unique("tenant");
    let mut expected = Vec::new();
    for i in 0..27 {
        let id = format!("c{:03}", (i * 7) % 27);
        let item = Item::new(format!("client#{id}#{tenant}"), "client", doc(json!({"id": id})))
            .with_index(&tenant, &id);
        store.put(Table::Clients, item, Cond::None).await.unwrap();
        expected.push(id);
    }
    let foreign = Item::new(unique("client"), "client", Map::new()).with_index(unique("tenant"), "c000");
    store.put(Table::Clients, foreign, Cond::None).await.unwrap();
    expected.sort();
    let all = collect_pages(&store, Table::Clients, Index::ByParent, &tenant, 4).await;
    let got: Vec<String> = all
        .iter()
        .map(|i| i.data["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
}

/// Expired items are skipped by queries, and paging still terminates and is complete.
pub async fn query_skips_expired_items(store: Arc<dyn Kv>, clock: Arc<ManualClock>) {
    let pk = unique("tenant");
    let now = clock.now();
    for i in 0..20 {
        let mut item = Item::new(&pk, format!("{i:03}"), doc(json!({"i": i})));
        if i % 2 == 0 {
            item = item.expiring_at(now + 1);
        }
        store.put(Table::Tokens, item, Cond::None).await.unwrap();
    }
    clock.advance(1);
    let all = collect_pages(&store, Table::Tokens, Index::Primary, &pk, 3).await;
    let got: Vec<i64> = all.iter().map(|i| i.data["i"].as_i64().unwrap()).collect();
    assert_eq!(got, (0..20).filter(|i| i % 2 == 1).collect::<Vec<_>>());
}

/// Key order is the byte order of the UTF-8 keys (DynamoDB's order for string keys), on both
/// indexes: not case-insensitive, not locale-aware, not UTF-16.
pub async fn query_orders_keys_by_utf8_bytes(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("tenant:ü");
    let keys = [
        "b", "B", "a", "a#1", "a:1", "a1", "Z", "z", "é", "e", "ü", "中", "ｚ", "😀", "~", " x", "0",
    ];
    for (i, k) in keys.iter().enumerate() {
        let item = Item::new(&pk, *k, doc(json!({"i": i}))).with_index(format!("{pk}#g"), *k);
        store.put(Table::Audit, item, Cond::Absent).await.unwrap();
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_unstable();
    let by_sk = collect_pages(&store, Table::Audit, Index::Primary, &pk, 3).await;
    let got: Vec<&str> = by_sk.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(got, expected);
    let by_gsk = collect_pages(&store, Table::Audit, Index::ByParent, &format!("{pk}#g"), 5).await;
    let got: Vec<&str> = by_gsk.iter().filter_map(|i| i.gsk.as_deref()).collect();
    assert_eq!(got, expected);
}

/// A cursor the store did not issue is `NotFound` (a caller's bug), never a fresh first page.
pub async fn query_rejects_a_foreign_cursor(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("tenant");
    store
        .put(Table::Audit, Item::new(&pk, "1", Map::new()), Cond::None)
        .await
        .unwrap();
    for cursor in ["not a cursor", "", "%%%", "[1,2]"] {
        for index in [Index::Primary, Index::PrimaryDescending, Index::ByParent] {
            let page = store.query(Table::Audit, index, &pk, Some(cursor), 10).await;
            assert_eq!(
                page.map(|p| p.items.len()),
                Err(StoreError::NotFound),
                "cursor {cursor:?} on {index:?}"
            );
        }
    }
    let missing = store
        .query(Table::Audit, Index::Primary, &unique("nobody"), None, 10)
        .await
        .unwrap();
    assert!(
        missing.items.is_empty() && missing.next.is_none(),
        "an empty partition has one empty page"
    );
}

/// A transaction applies every write.
pub async fn transaction_applies_all_writes(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let a = unique("iat");
    let b = unique("client");
    let c = unique("tenant");
    store
        .put(
            Table::Tokens,
            Item::new(&a, "iat", doc(json!({"uses": 0}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    store
        .put(Table::Audit, Item::new(&c, "old", Map::new()), Cond::Absent)
        .await
        .unwrap();
    let mut used = Item::new(&a, "iat", doc(json!({"uses": 1})));
    used.version = 2;
    store
        .transact(vec![
            Write::Put {
                table: Table::Tokens,
                item: used,
                cond: Cond::Version(1),
            },
            Write::Put {
                table: Table::Clients,
                item: Item::new(&b, "client", Map::new()),
                cond: Cond::Absent,
            },
            Write::Delete {
                table: Table::Audit,
                pk: c.clone(),
                sk: "old".into(),
                cond: Cond::Exists,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get(Table::Tokens, &a, "iat").await.unwrap().unwrap().data["uses"],
        json!(1)
    );
    assert!(store.get(Table::Clients, &b, "client").await.unwrap().is_some());
    assert!(store.get(Table::Audit, &c, "old").await.unwrap().is_none());
}

/// One failed condition (including a `Check`) cancels the whole transaction.
pub async fn transaction_with_a_failed_condition_writes_nothing(
    store: Arc<dyn Kv>,
    _clock: Arc<ManualClock>,
) {
    let a = unique("iat");
    let b = unique("client");
    let d = unique("tenant");
    store
        .put(
            Table::Tokens,
            Item::new(&a, "iat", doc(json!({"uses": 0}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    let mut used = Item::new(&a, "iat", doc(json!({"uses": 1})));
    used.version = 6;
    let stale = store
        .transact(vec![
            Write::Put {
                table: Table::Clients,
                item: Item::new(&b, "client", Map::new()),
                cond: Cond::Absent,
            },
            Write::Put {
                table: Table::Tokens,
                item: used,
                cond: Cond::Version(5),
            },
        ])
        .await;
    assert_eq!(stale, Err(StoreError::Conflict));
    assert!(
        store.get(Table::Clients, &b, "client").await.unwrap().is_none(),
        "first write rolled back"
    );
    assert_eq!(
        store.get(Table::Tokens, &a, "iat").await.unwrap().unwrap().data["uses"],
        json!(0)
    );

    let check = store
        .transact(vec![
            Write::Put {
                table: Table::Clients,
                item: Item::new(&b, "client", Map::new()),
                cond: Cond::Absent,
            },
            Write::Check {
                table: Table::Tenants,
                pk: d.clone(),
                sk: "config".into(),
                cond: Cond::Exists,
            },
        ])
        .await;
    assert_eq!(check, Err(StoreError::Conflict));
    assert!(
        store.get(Table::Clients, &b, "client").await.unwrap().is_none(),
        "a failed Check cancels"
    );
}

/// Transaction conditions, like single ones, see expired items as absent.
pub async fn transaction_conditions_see_expired_items_as_absent(store: Arc<dyn Kv>, clock: Arc<ManualClock>) {
    let (a, c) = (unique("iat"), unique("jti"));
    let now = clock.now();
    for pk in [&a, &c] {
        let item = Item::new(pk, "x", doc(json!({"old": true}))).expiring_at(now + 5);
        store.put(Table::Tokens, item, Cond::Absent).await.unwrap();
    }
    clock.advance(5);
    store
        .transact(vec![
            Write::Put {
                table: Table::Tokens,
                item: Item::new(&a, "x", doc(json!({"old": false}))),
                cond: Cond::Absent,
            },
            Write::Check {
                table: Table::Tokens,
                pk: c.clone(),
                sk: "x".into(),
                cond: Cond::Absent,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.get(Table::Tokens, &a, "x").await.unwrap().unwrap().data["old"],
        json!(false)
    );
    for cond in [Cond::Exists, Cond::Version(1)] {
        let check = store
            .transact(vec![Write::Check {
                table: Table::Tokens,
                pk: c.clone(),
                sk: "x".into(),
                cond,
            }])
            .await;
        assert_eq!(check, Err(StoreError::Conflict), "{cond:?} on an expired item");
        let delete = store
            .transact(vec![Write::Delete {
                table: Table::Tokens,
                pk: c.clone(),
                sk: "x".into(),
                cond,
            }])
            .await;
        assert_eq!(delete, Err(StoreError::Conflict), "{cond:?} on an expired item");
    }
}

/// Of 32 concurrent transactions that each consume one token (version condition) and create
/// their own item, exactly one commits, and none of the losers' writes is visible.
pub async fn exactly_one_of_32_concurrent_transactions_wins(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let iat = unique("iat");
    let clients = unique("client");
    store
        .put(
            Table::Tokens,
            Item::new(&iat, "iat", doc(json!({"used": false}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let (store, iat, clients, barrier) = (store.clone(), iat.clone(), clients.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let current = store
                .get(Table::Tokens, &iat, "iat")
                .await
                .unwrap()
                .expect("item");
            barrier.wait().await;
            let mut used = Item::new(&iat, "iat", doc(json!({"used": true, "by": i})));
            used.version = current.version + 1;
            store
                .transact(vec![
                    Write::Put {
                        table: Table::Tokens,
                        item: used,
                        cond: Cond::Version(current.version),
                    },
                    Write::Put {
                        table: Table::Clients,
                        item: Item::new(&clients, format!("c{i:02}"), Map::new()),
                        cond: Cond::Absent,
                    },
                ])
                .await
                .map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(e) => assert_eq!(e, StoreError::Conflict),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one transaction must commit, got {winners:?}"
    );
    let got = store
        .get(Table::Tokens, &iat, "iat")
        .await
        .unwrap()
        .expect("item");
    assert_eq!(got.data["by"], json!(winners[0]));
    let created = collect_pages(&store, Table::Clients, Index::Primary, &clients, 100).await;
    let created: Vec<&str> = created.iter().map(|i| i.sk.as_str()).collect();
    assert_eq!(
        created,
        vec![format!("c{:02}", winners[0])],
        "losers wrote nothing"
    );
}

/// More than 25 writes, or two writes on one key, are refused with `Conflict` and write
/// nothing; 25 writes on distinct keys (the same key in two tables is two keys) commit.
pub async fn transaction_limits_are_enforced(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("tenant");
    let put = |table: Table, sk: String| Write::Put {
        table,
        item: Item::new(&pk, sk, Map::new()),
        cond: Cond::Absent,
    };
    let too_many: Vec<Write> = (0..26)
        .map(|i| put(Table::Audit, format!("big#{i:02}")))
        .collect();
    assert_eq!(store.transact(too_many).await, Err(StoreError::Conflict));
    let page = store
        .query(Table::Audit, Index::Primary, &pk, None, 100)
        .await
        .unwrap();
    assert!(page.items.is_empty(), "a refused transaction writes nothing");

    let duplicate = vec![
        put(Table::Audit, "other".into()),
        put(Table::Clients, "dup".into()),
        Write::Check {
            table: Table::Clients,
            pk: pk.clone(),
            sk: "dup".into(),
            cond: Cond::None,
        },
    ];
    assert_eq!(store.transact(duplicate).await, Err(StoreError::Conflict));
    assert_eq!(store.get(Table::Audit, &pk, "other").await.unwrap(), None);
    assert_eq!(store.get(Table::Clients, &pk, "dup").await.unwrap(), None);

    let mut max: Vec<Write> = (0..24)
        .map(|i| put(Table::Audit, format!("max#{i:02}")))
        .collect();
    max.push(put(Table::Clients, "max#00".into()));
    store.transact(max).await.unwrap();
    let all = collect_pages(&store, Table::Audit, Index::Primary, &pk, 100).await;
    assert_eq!(all.len(), 24);
    assert!(store.get(Table::Clients, &pk, "max#00").await.unwrap().is_some());
}

/// The same key in two tables is two items.
pub async fn tables_are_isolated(store: Arc<dyn Kv>, _clock: Arc<ManualClock>) {
    let pk = unique("same");
    store
        .put(
            Table::Clients,
            Item::new(&pk, "x", doc(json!({"t": "clients"}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    store
        .put(
            Table::Tenants,
            Item::new(&pk, "x", doc(json!({"t": "tenants"}))),
            Cond::Absent,
        )
        .await
        .unwrap();
    assert_eq!(
        store.get(Table::Clients, &pk, "x").await.unwrap().unwrap().data["t"],
        json!("clients")
    );
    assert_eq!(
        store.get(Table::Tenants, &pk, "x").await.unwrap().unwrap().data["t"],
        json!("tenants")
    );
    store
        .delete(Table::Clients, &pk, "x", Cond::Exists)
        .await
        .unwrap();
    assert!(store.get(Table::Tenants, &pk, "x").await.unwrap().is_some());
}

/// The open-registration list (`Repo::open_registrations_due`): every entry due by now (at
/// `now` exactly too) comes back once, across partitions and pages, soonest first within a
/// partition; none due later; an entry taken off or moved to a later time is no longer due;
/// taking one off twice loses the second time (of two sweeps, one handles an entry).
pub async fn open_registrations_come_due_in_order(store: Arc<dyn Kv>, clock: Arc<ManualClock>) {
    use super::repo::{OPEN_REGISTRATION_SHARDS, Repo};
    let repo = Repo::new(store, clock.clone());
    let now = clock.now();
    let tenant = unique("t").replace('#', "-");
    let mut mine = Vec::new();
    for i in 0..40i64 {
        let id = format!("{}{i}", crate::secret::random_id(8));
        let due = now - 1000 + i * 50; // i = 20 is due at `now` exactly
        repo.commit(vec![repo.open_registration_write(&id, &tenant, due).unwrap()])
            .await
            .unwrap();
        mine.push((id, due));
    }
    let due_at = |repo: Repo, now: i64| {
        let tenant = tenant.clone();
        async move {
            let mut got = Vec::new();
            for shard in 0..OPEN_REGISTRATION_SHARDS {
                let mut cursor: Option<String> = None;
                let mut last_due = i64::MIN;
                loop {
                    let (entries, next) = repo
                        .open_registrations_due(shard, now, cursor.as_deref(), 3)
                        .await
                        .unwrap();
                    for e in entries {
                        assert!(e.due <= now, "{e:?} is not due");
                        assert!(e.due >= last_due, "shard {shard}: out of order at {e:?}");
                        last_due = e.due;
                        if e.tenant == tenant {
                            got.push(e);
                        }
                    }
                    match next {
                        Some(n) => cursor = Some(n),
                        None => break,
                    }
                }
            }
            got
        }
    };
    let got = due_at(repo.clone(), now).await;
    let mut ids: Vec<&str> = got.iter().map(|e| e.client_id.as_str()).collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = mine
        .iter()
        .filter(|(_, due)| *due <= now)
        .map(|(id, _)| id.as_str())
        .collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(expected.len(), 21);
    for e in &got {
        assert!(mine.contains(&(e.client_id.clone(), e.due)), "{e:?}");
    }

    // Take one off (twice: the second loses), move another past now.
    let (gone, moved) = (&got[0], &got[1]);
    repo.commit(vec![repo.delete_open_registration_write(gone)])
        .await
        .unwrap();
    assert_eq!(
        repo.commit(vec![repo.delete_open_registration_write(gone)]).await,
        Err(StoreError::Conflict)
    );
    repo.commit(vec![
        repo.delete_open_registration_write(moved),
        repo.open_registration_write(&moved.client_id, &tenant, now + 1)
            .unwrap(),
    ])
    .await
    .unwrap();
    let after: Vec<String> = due_at(repo.clone(), now)
        .await
        .into_iter()
        .map(|e| e.client_id)
        .collect();
    assert_eq!(after.len(), 19);
    assert!(!after.contains(&gone.client_id) && !after.contains(&moved.client_id));
    // A second later, the moved one is due again, under its new time.
    let later = due_at(repo.clone(), now + 1).await;
    assert_eq!(later.len(), 20);
    assert!(
        later
            .iter()
            .any(|e| e.client_id == moved.client_id && e.due == now + 1)
    );
}

/// Expand one `#[tokio::test]` per invariant for a backend: `kv_contract_tests!(name, make)`,
/// where `make` is a future of `(Arc<dyn Kv>, Arc<ManualClock>)`.
#[macro_export]
macro_rules! kv_contract_tests {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $crate::kv_contract_tests!(@tests $make;
                put_if_absent_loses_to_an_existing_item,
                put_if_absent_wins_over_an_expired_item,
                get_returns_what_put_wrote,
                expired_items_are_invisible,
                conditional_update_on_version,
                exactly_one_of_32_concurrent_conditional_updates_wins,
                exactly_one_of_32_concurrent_put_if_absent_wins,
                delete_returns_the_old_item_once,
                exactly_one_of_32_concurrent_deletes_gets_the_item,
                query_pages_through_a_partition_in_order,
                query_by_parent_index_pages_correctly,
                query_skips_expired_items,
                transaction_applies_all_writes,
                transaction_with_a_failed_condition_writes_nothing,
                tables_are_isolated,
                put_replaces_the_whole_item,
                conditional_delete_on_version,
                query_orders_keys_by_utf8_bytes,
                query_rejects_a_foreign_cursor,
                transaction_conditions_see_expired_items_as_absent,
                exactly_one_of_32_concurrent_transactions_wins,
                transaction_limits_are_enforced,
                open_registrations_come_due_in_order
            );
        }
    };
    (@tests $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, clock) = $make.await;
                $crate::store::contract::$name(store, clock).await;
            }
        )+
    };
}
