//! The DynamoDB backend: each logical [`Table`] is one DynamoDB table with key `pk`/`sk` (both
//! strings), a global secondary index `by_parent` on `gpk`/`gsk`, the document as a JSON
//! string in `data`, the optimistic-concurrency `version`, and `expires_at` as the table's TTL
//! attribute. The schema lives in `template.yaml` only; tests create their tables from it.
//!
//! Only this module knows `AttributeValue` and the SDK's errors: conditional failures become
//! [`StoreError::Conflict`], throttling, timeouts and service errors [`StoreError::Unavailable`].
//! Because DynamoDB deletes expired items lazily (and moto never does), every read and every
//! condition checks `expires_at` itself.

use async_trait::async_trait;
pub use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

use super::{Cond, Index, Item, Kv, Page, StoreError, Table, Write};
use crate::clock::Clock;

/// The name of the secondary index every table has.
pub const INDEX_NAME: &str = "by_parent";

/// Physical table names, one per logical table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableNames {
    pub tenants: String,
    pub clients: String,
    pub tokens: String,
    pub audit: String,
    pub users: String,
    pub grants: String,
    pub keys: String,
}

impl TableNames {
    /// `<prefix>tenants`, `<prefix>clients`, ... (tests and local setups).
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            tenants: format!("{prefix}tenants"),
            clients: format!("{prefix}clients"),
            tokens: format!("{prefix}tokens"),
            audit: format!("{prefix}audit"),
            users: format!("{prefix}users"),
            grants: format!("{prefix}grants"),
            keys: format!("{prefix}keys"),
        }
    }

    pub fn name(&self, t: Table) -> &str {
        match t {
            Table::Tenants => &self.tenants,
            Table::Clients => &self.clients,
            Table::Tokens => &self.tokens,
            Table::Audit => &self.audit,
            Table::Users => &self.users,
            Table::Grants => &self.grants,
            Table::Keys => &self.keys,
        }
    }
}

/// DynamoDB-backed [`Kv`].
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Map an SDK error to the port's error, at the edge.
fn map_err<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(e: SdkError<E, R>) -> StoreError {
    let code = e.code().unwrap_or("").to_string();
    match code.as_str() {
        "ConditionalCheckFailedException" | "TransactionConflictException" => StoreError::Conflict,
        "TransactionCanceledException" => {
            // Cancelled for a failed condition or a conflicting transaction: a lost race.
            let msg = e.message().unwrap_or("");
            if msg.contains("ThrottlingError") || msg.contains("ProvisionedThroughputExceeded") {
                StoreError::Unavailable(format!("dynamodb: {code}: {msg}"))
            } else {
                StoreError::Conflict
            }
        }
        "" => StoreError::Unavailable(format!("dynamodb: {}", error_kind(&e))),
        other => StoreError::Unavailable(format!("dynamodb: {other}: {}", e.message().unwrap_or(""))),
    }
}

fn error_kind<E, R>(e: &SdkError<E, R>) -> &'static str {
    match e {
        SdkError::ConstructionFailure(_) => "request construction failed",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure (connection)",
        SdkError::ResponseError(_) => "malformed response",
        SdkError::ServiceError(_) => "service error",
        _ => "unknown error",
    }
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            tables,
            clock,
        }
    }

    fn item_to_attrs(item: &Item) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let data = serde_json::to_string(&Value::Object(item.data.clone()))
            .map_err(|_| StoreError::Unavailable("could not encode an item".into()))?;
        let mut m = HashMap::with_capacity(7);
        m.insert("pk".into(), s(&item.pk));
        m.insert("sk".into(), s(&item.sk));
        if let (Some(g), Some(gs)) = (&item.gpk, &item.gsk) {
            m.insert("gpk".into(), s(g));
            m.insert("gsk".into(), s(gs));
        }
        m.insert("data".into(), s(data));
        if let Some(at) = item.expires_at {
            m.insert("expires_at".into(), n(at));
        }
        m.insert("version".into(), n(item.version as i64));
        Ok(m)
    }

    fn attrs_to_item(m: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
        let corrupt = || StoreError::Unavailable("a stored item is corrupt".into());
        let get_s = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
        let get_n = |k: &str| {
            m.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let data = match serde_json::from_str(&get_s("data").ok_or_else(corrupt)?) {
            Ok(Value::Object(o)) => o,
            _ => return Err(corrupt()),
        };
        Ok(Item {
            pk: get_s("pk").ok_or_else(corrupt)?,
            sk: get_s("sk").ok_or_else(corrupt)?,
            gpk: get_s("gpk"),
            gsk: get_s("gsk"),
            data,
            expires_at: get_n("expires_at"),
            version: get_n("version").ok_or_else(corrupt)? as u64,
        })
    }

    fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
    }

    /// The condition expression and its values for `cond`, evaluated at `now`.
    fn condition(cond: Cond, now: i64) -> Option<(String, HashMap<String, AttributeValue>)> {
        let live = "attribute_exists(pk) AND (attribute_not_exists(expires_at) OR expires_at > :now)";
        match cond {
            Cond::None => None,
            Cond::Absent => Some((
                "attribute_not_exists(pk) OR expires_at <= :now".into(),
                HashMap::from([(":now".to_string(), n(now))]),
            )),
            Cond::Exists => Some((live.into(), HashMap::from([(":now".to_string(), n(now))]))),
            Cond::Version(v) => Some((
                format!("{live} AND version = :v"),
                HashMap::from([(":now".to_string(), n(now)), (":v".to_string(), n(v as i64))]),
            )),
        }
    }
}

/// Query cursor: the key attributes of the last item returned.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    pk: String,
    sk: String,
    #[serde(default)]
    gpk: Option<String>,
    #[serde(default)]
    gsk: Option<String>,
}

#[async_trait]
impl Kv for DynamoStore {
    async fn get(&self, table: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        let out = self
            .client
            .get_item()
            .table_name(self.tables.name(table))
            .set_key(Some(Self::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(map_err)?;
        match out.item() {
            Some(m) => Ok(Some(Self::attrs_to_item(m)?).filter(|i| i.is_live(now))),
            None => Ok(None),
        }
    }

    async fn put(&self, table: Table, item: Item, cond: Cond) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut req = self
            .client
            .put_item()
            .table_name(self.tables.name(table))
            .set_item(Some(Self::item_to_attrs(&item)?));
        if let Some((expr, values)) = Self::condition(cond, now) {
            req = req
                .condition_expression(expr)
                .set_expression_attribute_values(Some(values));
        }
        req.send().await.map_err(map_err)?;
        Ok(())
    }

    async fn delete(&self, table: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        let mut req = self
            .client
            .delete_item()
            .table_name(self.tables.name(table))
            .set_key(Some(Self::key(pk, sk)))
            .return_values(ReturnValue::AllOld);
        if let Some((expr, values)) = Self::condition(cond, now) {
            req = req
                .condition_expression(expr)
                .set_expression_attribute_values(Some(values));
        }
        let out = req.send().await.map_err(map_err)?;
        match out.attributes() {
            Some(m) if !m.is_empty() => Ok(Some(Self::attrs_to_item(m)?).filter(|i| i.is_live(now))),
            _ => Ok(None),
        }
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
        let limit = limit.clamp(1, 1000);
        let mut start: Option<HashMap<String, AttributeValue>> = match cursor {
            Some(c) => {
                let c: Cursor = serde_json::from_str(c).map_err(|_| StoreError::NotFound)?;
                // A cursor names a key of this partition (DynamoDB refuses any other start key
                // with a validation error, which must not become a 503).
                // DynamoDB refuses empty or over-long key values in a start key too.
                let key_ok = |k: &str| !k.is_empty() && k.len() <= 1024;
                let ours = key_ok(&c.pk)
                    && key_ok(&c.sk)
                    && match index {
                        Index::ByParent => {
                            c.gpk.as_deref() == Some(partition) && c.gsk.as_deref().is_some_and(key_ok)
                        }
                        Index::Primary | Index::PrimaryDescending => c.pk == partition,
                    };
                if !ours {
                    return Err(StoreError::NotFound);
                }
                let mut k = Self::key(&c.pk, &c.sk);
                if index == Index::ByParent {
                    k.insert("gpk".into(), s(c.gpk.unwrap_or_default()));
                    k.insert("gsk".into(), s(c.gsk.unwrap_or_default()));
                }
                Some(k)
            }
            None => None,
        };
        let key_attr = match index {
            Index::Primary | Index::PrimaryDescending => "pk",
            Index::ByParent => "gpk",
        };
        let mut items = Vec::with_capacity(limit);
        let mut more = false;
        // DynamoDB applies `Limit` before the expiry filter: keep reading until the page is
        // full or the partition is exhausted.
        for _ in 0..100 {
            let mut req = self
                .client
                .query()
                .table_name(self.tables.name(table))
                .key_condition_expression(format!("{key_attr} = :p"))
                .filter_expression("attribute_not_exists(expires_at) OR expires_at > :now")
                .expression_attribute_values(":p", s(partition))
                .expression_attribute_values(":now", n(now))
                .limit((limit - items.len()) as i32)
                .set_exclusive_start_key(start.take());
            match index {
                Index::ByParent => req = req.index_name(INDEX_NAME),
                Index::Primary => req = req.consistent_read(true),
                Index::PrimaryDescending => req = req.consistent_read(true).scan_index_forward(false),
            }
            let out = req.send().await.map_err(map_err)?;
            for m in out.items() {
                let item = Self::attrs_to_item(m)?;
                if item.is_live(now) {
                    items.push(item);
                }
            }
            more = out.last_evaluated_key().is_some_and(|k| !k.is_empty());
            if items.len() >= limit || !more {
                break;
            }
            start = out.last_evaluated_key().cloned();
        }
        let next = match (more, items.last()) {
            (true, Some(last)) => Some(
                serde_json::to_string(&Cursor {
                    pk: last.pk.clone(),
                    sk: last.sk.clone(),
                    gpk: last.gpk.clone(),
                    gsk: last.gsk.clone(),
                })
                .map_err(|_| StoreError::Unavailable("could not encode a cursor".into()))?,
            ),
            _ => None,
        };
        Ok(Page { items, next })
    }

    fn cursor_after(&self, _index: Index, item: &Item) -> Result<String, StoreError> {
        serde_json::to_string(&Cursor {
            pk: item.pk.clone(),
            sk: item.sk.clone(),
            gpk: item.gpk.clone(),
            gsk: item.gsk.clone(),
        })
        .map_err(|_| StoreError::Unavailable("could not encode a cursor".into()))
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        if writes.len() > 25 {
            return Err(StoreError::Conflict);
        }
        let now = self.clock.now();
        let mut keys = Vec::with_capacity(writes.len());
        let mut ops = Vec::with_capacity(writes.len());
        for w in &writes {
            let built = match w {
                Write::Put { table, item, cond } => {
                    keys.push((*table, item.pk.clone(), item.sk.clone()));
                    let mut b = Put::builder()
                        .table_name(self.tables.name(*table))
                        .set_item(Some(Self::item_to_attrs(item)?));
                    if let Some((expr, values)) = Self::condition(*cond, now) {
                        b = b
                            .condition_expression(expr)
                            .set_expression_attribute_values(Some(values));
                    }
                    TransactWriteItem::builder()
                        .put(b.build().map_err(|e| StoreError::Unavailable(e.to_string()))?)
                }
                Write::Delete { table, pk, sk, cond } => {
                    keys.push((*table, pk.clone(), sk.clone()));
                    let mut b = Delete::builder()
                        .table_name(self.tables.name(*table))
                        .set_key(Some(Self::key(pk, sk)));
                    if let Some((expr, values)) = Self::condition(*cond, now) {
                        b = b
                            .condition_expression(expr)
                            .set_expression_attribute_values(Some(values));
                    }
                    TransactWriteItem::builder()
                        .delete(b.build().map_err(|e| StoreError::Unavailable(e.to_string()))?)
                }
                Write::Check { table, pk, sk, cond } => {
                    keys.push((*table, pk.clone(), sk.clone()));
                    let (expr, values) = Self::condition(*cond, now).unwrap_or_else(|| {
                        (
                            "attribute_exists(pk) OR attribute_not_exists(pk)".into(),
                            HashMap::new(),
                        )
                    });
                    let mut b = ConditionCheck::builder()
                        .table_name(self.tables.name(*table))
                        .set_key(Some(Self::key(pk, sk)))
                        .condition_expression(expr);
                    if !values.is_empty() {
                        b = b.set_expression_attribute_values(Some(values));
                    }
                    TransactWriteItem::builder()
                        .condition_check(b.build().map_err(|e| StoreError::Unavailable(e.to_string()))?)
                }
            };
            ops.push(built.build());
        }
        keys.sort();
        let before = keys.len();
        keys.dedup();
        if keys.len() != before {
            return Err(StoreError::Conflict);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

/// An SDK client for DynamoDB, with bounded retries and timeouts. `endpoint` points it at a
/// local API (moto) instead of AWS.
pub async fn client(endpoint: Option<&str>, region: Option<&str>) -> Client {
    let config = crate::aws::sdk_config(endpoint, region).await;
    Client::new(&config)
}

#[cfg(test)]
mod contract_tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::Map;

    /// The DynamoDB API the test script started (moto on loopback), with the tables it created
    /// from `template.yaml`. Without it these tests fail: they never pass by absence.
    #[cfg(feature = "test-services")]
    pub async fn store() -> (Arc<dyn Kv>, Arc<ManualClock>) {
        let endpoint = std::env::var("BULWARK_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
            panic!("BULWARK_TEST_AWS_ENDPOINT is not set: run `bash infra/test.sh`, which starts moto and creates the tables")
        });
        let prefix = std::env::var("BULWARK_TEST_TABLE_PREFIX").unwrap_or_else(|_| "bulwark-test-".into());
        let clock = ManualClock::at(1_700_000_000);
        let client = client(Some(&endpoint), Some("us-east-1")).await;
        let store = DynamoStore::new(client, TableNames::with_prefix(&prefix), clock.clone());
        (Arc::new(store) as Arc<dyn Kv>, clock)
    }

    #[cfg(feature = "test-services")]
    crate::kv_contract_tests!(dynamodb, store());

    #[cfg(not(feature = "test-services"))]
    #[test]
    #[ignore = "the DynamoDB contract suite needs moto: run `bash infra/test.sh` (it starts moto and enables feature test-services)"]
    fn dynamodb_contract_suite() {}

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable_not_a_panic() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = client(Some(&format!("http://127.0.0.1:{port}")), Some("us-east-1")).await;
        let store = DynamoStore::new(client, TableNames::with_prefix("x-"), ManualClock::at(0));
        assert!(matches!(
            store.get(Table::Clients, "a", "b").await,
            Err(StoreError::Unavailable(_))
        ));
        let put = store
            .put(Table::Clients, Item::new("a", "b", Map::new()), Cond::Absent)
            .await;
        assert!(matches!(put, Err(StoreError::Unavailable(_))));
        let tx = store.transact(vec![Write::Check {
            table: Table::Clients,
            pk: "a".into(),
            sk: "b".into(),
            cond: Cond::Exists,
        }]);
        assert!(matches!(tx.await, Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn attributes_round_trip() {
        let mut item = Item::new(
            "p",
            "s",
            serde_json::json!({"a": [1, "ü"]}).as_object().cloned().unwrap(),
        )
        .with_index("g", "h")
        .expiring_at(5);
        item.version = 3;
        let attrs = DynamoStore::item_to_attrs(&item).unwrap();
        assert_eq!(DynamoStore::attrs_to_item(&attrs).unwrap(), item);
        let bare = Item::new("p", "s", Map::new());
        let attrs = DynamoStore::item_to_attrs(&bare).unwrap();
        assert!(!attrs.contains_key("gpk") && !attrs.contains_key("expires_at"));
        assert_eq!(DynamoStore::attrs_to_item(&attrs).unwrap(), bare);
    }
}
