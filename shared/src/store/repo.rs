//! Typed access to the store: the only place that knows key layouts and item shapes.
//!
//! | table   | pk                  | sk       | index (gpk / gsk)                  | expires |
//! |---------|---------------------|----------|------------------------------------|---------|
//! | tenants | `tenant#<id>`       | `config` | —                                  | never   |
//! | tenants | `schema`            | `version` | — (the layout version: `schema.rs`) | never   |
//! | clients | `client#<id>`       | `client` | `tenant#<id>` / `<client id>`      | never   |
//! | clients | `client#<id>`       | `disabled` | `tenant#<id>` / `<client id>`    | never   |
//! | clients | `agents#<app id>`   | `<agent id>` | —                              | never   |
//! | clients | `openreg#<shard>`   | `<due>#<client id>` | —                       | never   |
//! | tokens  | `iat#<sha256>`      | `iat`    | `tenant#<id>#iat` / `<created>#<h>`| IAT exp |
//! | tokens  | `jti#<jti>`         | `deny`   | —                                  | tok exp |
//! | tokens  | `jwtid#<sha256>`    | `jti`    | — (an assertion or DPoP proof `jti`) | asn exp |
//! | audit   | `tenant#<id>`       | `<ts>#<rand>` | —                             | never   |
//! | keys    | `signing`           | `ring`   | —                                  | never   |

use crate::domain::audit::{AuditKind, Noted};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

use super::{Cond, Index, Item, Kv, StoreError, Table, Write};
use crate::clock::Clock;
use crate::domain::cimd::is_url_id;
use crate::domain::client::Client;
use crate::domain::tenant::Tenant;

pub use crate::domain::audit::AuditEvent;
pub use crate::domain::tenant::InitialAccessToken;
use crate::keys::wrapped::{KeyRing, RingError, RingStore};

/// A value read together with the version to condition a later write on.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

pub(super) fn to_map<T: Serialize>(v: &T) -> Result<Map<String, Value>, StoreError> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Unavailable("could not encode an item".into())),
    }
}

pub(super) fn from_item<T: DeserializeOwned>(item: Item) -> Result<Versioned<T>, StoreError> {
    let version = item.version;
    let value = serde_json::from_value(Value::Object(item.data))
        .map_err(|e| StoreError::Unavailable(format!("could not decode an item: {e}")))?;
    Ok(Versioned { value, version })
}

fn tenant_pk(t: &str) -> String {
    format!("tenant#{t}")
}
fn agents_pk(app: &str) -> String {
    format!("agents#{app}")
}

fn client_pk(id: &str) -> String {
    format!("client#{id}")
}
/// The partition key of `tenant`'s client `id`. A metadata-document client's id (a URL) is the
/// same in every tenant that meets it, so its record (a per-tenant cache of its document) is
/// keyed by tenant too.
fn client_key(tenant: &str, id: &str) -> String {
    if is_url_id(id) {
        format!("cimd#{tenant}#{id}")
    } else {
        client_pk(id)
    }
}
/// Where a client's last use is noted: per tenant for a metadata-document client (its URL id
/// is shared by every tenant that met it; one tenant's use is not another's).
fn client_use_pk(tenant: &str, id: &str) -> String {
    if is_url_id(id) {
        format!("clientuse#{tenant}#{id}")
    } else {
        format!("clientuse#{id}")
    }
}
fn client_sk(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "client" }
}
fn iat_pk(hash_hex: &str) -> String {
    format!("iat#{hash_hex}")
}
fn jti_pk(jti: &str) -> String {
    format!("jti#{jti}")
}

/// The open-registration list is spread over this many partitions (`openreg#0`..`openreg#f`,
/// by the client id's hash), so that no one DynamoDB partition takes every registration.
pub const OPEN_REGISTRATION_SHARDS: usize = 16;

/// The client an open-registration entry names: its id, or for a metadata-document client
/// (whose URL every tenant that met it shares) `<tenant>#<url>`.
fn open_reg_client(tenant: &str, client_id: &str) -> String {
    if is_url_id(client_id) {
        format!("{tenant}#{client_id}")
    } else {
        client_id.to_string()
    }
}
fn open_reg_pk(tenant: &str, client_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let key = open_reg_client(tenant, client_id);
    let shard = Sha256::digest(key.as_bytes())[0] as usize % OPEN_REGISTRATION_SHARDS;
    format!("openreg#{shard:x}")
}
/// Due time first (zero-padded: key order is time order), then the client.
fn open_reg_sk(due: i64, tenant: &str, client_id: &str) -> String {
    format!(
        "{:012}#{}",
        due.clamp(0, 999_999_999_999),
        open_reg_client(tenant, client_id)
    )
}

/// An openly registered client listed for an expiry check from `due` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRegistration {
    pub client_id: String,
    pub tenant: String,
    pub due: i64,
}

#[derive(Deserialize)]
struct OpenRegistrationDoc {
    client_id: String,
    tenant: String,
}

/// Whether a write changes something administrators manage, and so must come with an audit
/// event ([`Repo::commit`]): a tenant's config, a client (live or disabled; not a metadata
/// document's cached copy, refreshed as it is fetched), a user, a group or a membership.
fn must_be_audited(w: &Write) -> bool {
    let (table, pk) = match w {
        Write::Put { table, item, .. } => (*table, item.pk.as_str()),
        Write::Delete { table, pk, .. } => (*table, pk.as_str()),
        Write::Check { .. } => return false,
    };
    match table {
        Table::Tenants => true,
        Table::Clients => pk.starts_with("client#"),
        Table::Users => ["user#", "group#", "groupmembers#"]
            .iter()
            .any(|p| pk.starts_with(p)),
        Table::Tokens | Table::Audit | Table::Grants | Table::Keys => false,
    }
}

fn is_audit(w: &Write) -> bool {
    matches!(
        w,
        Write::Put {
            table: Table::Audit,
            ..
        }
    )
}

/// Typed repository over a [`Kv`] backend.
#[derive(Clone)]
pub struct Repo {
    kv: Arc<dyn Kv>,
    clock: Arc<dyn Clock>,
}

impl Repo {
    pub fn new(kv: Arc<dyn Kv>, clock: Arc<dyn Clock>) -> Self {
        Self { kv, clock }
    }
    pub fn kv(&self) -> &Arc<dyn Kv> {
        &self.kv
    }
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    // ---- signing keys (SigningMode=kms-wrapped) ------------------------------------------------

    /// The signing key ring: public keys, and the active private key as KMS ciphertext only.
    pub async fn key_ring(&self) -> Result<Option<Versioned<KeyRing>>, StoreError> {
        match self.kv.get(Table::Keys, "signing", "ring").await? {
            Some(item) => Ok(Some(from_item(item)?)),
            None => Ok(None),
        }
    }

    /// Write the key ring: the first one if `version` is `None`, else over the one read at
    /// `version`; `Conflict` if another rotation won.
    pub async fn put_key_ring(&self, ring: &KeyRing, version: Option<u64>) -> Result<(), StoreError> {
        let mut item = Item::new("signing", "ring", to_map(ring)?);
        let cond = match version {
            None => Cond::Absent,
            Some(v) => {
                item.version = v + 1;
                Cond::Version(v)
            }
        };
        self.kv.put(Table::Keys, item, cond).await
    }

    // ---- tenants ----------------------------------------------------------------------------

    pub async fn tenant(&self, id: &str) -> Result<Option<Versioned<Tenant>>, StoreError> {
        match self.kv.get(Table::Tenants, &tenant_pk(id), "config").await? {
            Some(item) => Ok(Some(from_item(item)?)),
            None => Ok(None),
        }
    }

    /// Create a tenant; `Conflict` if it exists.
    pub async fn create_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        let item = Item::new(tenant_pk(t.id.as_str()), "config", to_map(t)?);
        let audit = self.audit_write(t.id.as_str(), AuditKind::TenantCreated, "cli", t.id.as_str())?;
        self.commit(vec![
            Write::Put {
                table: Table::Tenants,
                item,
                cond: Cond::Absent,
            },
            audit,
        ])
        .await
    }

    /// The write that replaces a tenant read at `version` (for a transaction).
    pub fn replace_tenant_write(&self, t: &Tenant, version: u64) -> Result<Write, StoreError> {
        let mut item = Item::new(tenant_pk(t.id.as_str()), "config", to_map(t)?);
        item.version = version + 1;
        Ok(Write::Put {
            table: Table::Tenants,
            item,
            cond: Cond::Version(version),
        })
    }

    // ---- clients ----------------------------------------------------------------------------

    /// A live client by the id this server issued it. A metadata-document client (whose id is
    /// a URL) is found only by [`Repo::client_in`], which knows the tenant.
    pub async fn client(&self, client_id: &str) -> Result<Option<Versioned<Client>>, StoreError> {
        if client_id.is_empty() || client_id.len() > 256 || is_url_id(client_id) {
            return Ok(None);
        }
        self.client_at(&client_pk(client_id), false).await
    }

    /// `tenant`'s live client `client_id` (one of another tenant is not found).
    pub async fn client_in(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Versioned<Client>>, StoreError> {
        if client_id.is_empty() || client_id.len() > 256 {
            return Ok(None);
        }
        Ok(self
            .client_at(&client_key(tenant, client_id), false)
            .await?
            .filter(|c| c.value.tenant.as_str() == tenant))
    }

    /// Like [`Repo::client_in`], live or disabled (the admin API's view).
    pub async fn client_any_in(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<Versioned<Client>>, StoreError> {
        if let Some(c) = self.client_in(tenant, client_id).await? {
            return Ok(Some(c));
        }
        if client_id.is_empty() || client_id.len() > 256 {
            return Ok(None);
        }
        Ok(self
            .client_at(&client_key(tenant, client_id), true)
            .await?
            .filter(|c| c.value.tenant.as_str() == tenant))
    }

    async fn client_at(&self, pk: &str, disabled: bool) -> Result<Option<Versioned<Client>>, StoreError> {
        match self.kv.get(Table::Clients, pk, client_sk(disabled)).await? {
            Some(item) => Ok(Some(from_item(item)?)),
            None => Ok(None),
        }
    }

    fn client_item(c: &Client) -> Result<Item, StoreError> {
        Ok(Item::new(
            client_key(c.tenant.as_str(), &c.client_id),
            client_sk(c.disabled),
            to_map(c)?,
        )
        .with_index(tenant_pk(c.tenant.as_str()), c.client_id.clone()))
    }

    /// The write that stores a metadata-document client's record: a new one (`version` `None`,
    /// only if absent) or a refetched one replacing what was read at `version`.
    pub fn document_client_write(&self, c: &Client, version: Option<u64>) -> Result<Write, StoreError> {
        match version {
            None => self.create_client_write(c),
            Some(v) => self.replace_client_write(c, v),
        }
    }

    /// A client whether live or disabled (the admin API's view). Every other reader uses
    /// [`Repo::client`], which does not see disabled clients.
    pub async fn client_any(&self, client_id: &str) -> Result<Option<Versioned<Client>>, StoreError> {
        if let Some(c) = self.client(client_id).await? {
            return Ok(Some(c));
        }
        if client_id.is_empty() || client_id.len() > 256 || is_url_id(client_id) {
            return Ok(None);
        }
        self.client_at(&client_pk(client_id), true).await
    }

    /// The writes that disable or enable `c` (read at `version`, `c.disabled` its new state): a
    /// disabled client lives under another sort key, so that lookups and the existence checks
    /// of code redemption and refresh transactions do not find it.
    pub fn move_client_writes(&self, c: &Client, version: u64) -> Result<[Write; 2], StoreError> {
        let mut item = Self::client_item(c)?;
        item.version = version + 1;
        Ok([
            Write::Delete {
                table: Table::Clients,
                pk: client_key(c.tenant.as_str(), &c.client_id),
                sk: client_sk(!c.disabled).into(),
                cond: Cond::Version(version),
            },
            Write::Put {
                table: Table::Clients,
                item,
                cond: Cond::Absent,
            },
        ])
    }

    /// The write that creates `c` (for a transaction).
    pub fn create_client_write(&self, c: &Client) -> Result<Write, StoreError> {
        Ok(Write::Put {
            table: Table::Clients,
            item: Self::client_item(c)?,
            cond: Cond::Absent,
        })
    }

    /// The write that replaces `c`, read at `version`.
    pub fn replace_client_write(&self, c: &Client, version: u64) -> Result<Write, StoreError> {
        let mut item = Self::client_item(c)?;
        item.version = version + 1;
        Ok(Write::Put {
            table: Table::Clients,
            item,
            cond: Cond::Version(version),
        })
    }

    /// The write that deletes the client read at `version` (live or disabled).
    pub fn delete_client_write(&self, c: &Client, version: u64) -> Write {
        Write::Delete {
            table: Table::Clients,
            pk: client_key(c.tenant.as_str(), &c.client_id),
            sk: client_sk(c.disabled).into(),
            cond: Cond::Version(version),
        }
    }

    /// A transaction step that fails unless the client still exists (nothing may be issued
    /// to a client deleted meanwhile).
    pub fn client_exists_check(&self, c: &Client) -> Write {
        Write::Check {
            table: Table::Clients,
            pk: client_key(c.tenant.as_str(), &c.client_id),
            sk: "client".into(),
            cond: Cond::Exists,
        }
    }

    /// The write that lists `agent` under the app it acts for.
    pub fn agent_pointer_write(&self, app: &str, agent: &str) -> Result<Write, StoreError> {
        Ok(Write::Put {
            table: Table::Clients,
            item: Item::new(
                agents_pk(app),
                agent.to_string(),
                to_map(&serde_json::json!({"agent": agent}))?,
            ),
            cond: Cond::None,
        })
    }

    /// The write that takes `agent` off its app's list.
    pub fn delete_agent_pointer_write(&self, app: &str, agent: &str) -> Write {
        Write::Delete {
            table: Table::Clients,
            pk: agents_pk(app),
            sk: agent.to_string(),
            cond: Cond::None,
        }
    }

    /// The client ids of an app's agents (strongly consistent).
    pub async fn agents_of(&self, app: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .kv
                .query(
                    Table::Clients,
                    Index::Primary,
                    &agents_pk(app),
                    cursor.as_deref(),
                    100,
                )
                .await?;
            out.extend(page.items.into_iter().map(|i| i.sk));
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// One page of a tenant's clients, in client-id order.
    pub async fn clients_of(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Client>, Option<String>), StoreError> {
        let page = self
            .kv
            .query(Table::Clients, Index::ByParent, &tenant_pk(tenant), cursor, limit)
            .await?;
        let clients = page
            .items
            .into_iter()
            .map(|i| from_item(i).map(|v| v.value))
            .collect::<Result<_, _>>()?;
        Ok((clients, page.next))
    }

    // ---- open registrations, by when they come due ------------------------------------------

    /// The write that lists an openly registered client as due for an expiry check at `due`
    /// (in the same transaction as its registration; again, later, with a new `due`).
    pub fn open_registration_write(
        &self,
        client_id: &str,
        tenant: &str,
        due: i64,
    ) -> Result<Write, StoreError> {
        Ok(Write::Put {
            table: Table::Clients,
            item: Item::new(
                open_reg_pk(tenant, client_id),
                open_reg_sk(due, tenant, client_id),
                to_map(&serde_json::json!({"client_id": client_id, "tenant": tenant}))?,
            ),
            cond: Cond::None,
        })
    }

    /// The write that takes an entry off the list; it must still be there (of two sweeps
    /// handling one entry at once, one loses with `Conflict`).
    pub fn delete_open_registration_write(&self, entry: &OpenRegistration) -> Write {
        Write::Delete {
            table: Table::Clients,
            pk: open_reg_pk(&entry.tenant, &entry.client_id),
            sk: open_reg_sk(entry.due, &entry.tenant, &entry.client_id),
            cond: Cond::Exists,
        }
    }

    /// One page of the open registrations of one shard (`0..OPEN_REGISTRATION_SHARDS`) that
    /// are due at `now`, soonest first (primary-key queries: strongly consistent). `next` is
    /// `None` once the shard has nothing more due, so a sweep reads only what is due, plus at
    /// most one page boundary, however many registrations are not.
    pub async fn open_registrations_due(
        &self,
        shard: usize,
        now: i64,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<OpenRegistration>, Option<String>), StoreError> {
        let page = self
            .kv
            .query(
                Table::Clients,
                Index::Primary,
                &format!("openreg#{shard:x}"),
                cursor,
                limit,
            )
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items {
            let due = item
                .sk
                .split_once('#')
                .and_then(|(d, _)| d.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Unavailable("a malformed open-registration entry".into()))?;
            if due > now {
                return Ok((out, None));
            }
            let v: OpenRegistration = serde_json::from_value(Value::Object(item.data))
                .map(|e: OpenRegistrationDoc| OpenRegistration {
                    client_id: e.client_id,
                    tenant: e.tenant,
                    due,
                })
                .map_err(|e| StoreError::Unavailable(format!("could not decode an item: {e}")))?;
            out.push(v);
        }
        Ok((out, page.next))
    }

    // ---- client assertions (private_key_jwt) --------------------------------------------------

    /// Record that `client_id` used the assertion `jti` (until `expires_at`): `false` if it
    /// had been used already (a replay). A conditional put, so of concurrent uses exactly one
    /// wins, on every backend.
    pub async fn use_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(client_id.as_bytes());
        h.update([0]);
        h.update(jti.as_bytes());
        let key = h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let item = Item::new(
            format!("jwtid#{key}"),
            "jti",
            to_map(&serde_json::json!({"client_id": client_id}))?,
        )
        .expiring_at(expires_at);
        match self.kv.put(Table::Tokens, item, Cond::Absent).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---- initial access tokens --------------------------------------------------------------

    pub async fn create_iat(
        &self,
        hash_hex: &str,
        iat: &InitialAccessToken,
        actor: &str,
    ) -> Result<(), StoreError> {
        let item = Item::new(iat_pk(hash_hex), "iat", to_map(iat)?)
            .with_index(
                format!("{}#iat", tenant_pk(iat.tenant.as_str())),
                format!("{}#{hash_hex}", iat.created_at),
            )
            .expiring_at(iat.expires_at);
        let audit = self.audit_write(iat.tenant.as_str(), AuditKind::IatCreated, actor, hash_hex)?;
        self.commit(vec![
            Write::Put {
                table: Table::Tokens,
                item,
                cond: Cond::Absent,
            },
            audit,
        ])
        .await
    }

    /// One page of a tenant's live initial access tokens (by their hash), oldest first.
    pub async fn iats_of(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, InitialAccessToken)>, Option<String>), StoreError> {
        let page = self
            .kv
            .query(
                Table::Tokens,
                Index::ByParent,
                &format!("{}#iat", tenant_pk(tenant)),
                cursor,
                limit,
            )
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items {
            let hash = item.pk.strip_prefix("iat#").unwrap_or_default().to_string();
            out.push((hash, from_item::<InitialAccessToken>(item)?.value));
        }
        Ok((out, page.next))
    }

    /// The write that deletes an initial access token (it must exist).
    pub fn delete_iat_write(&self, hash_hex: &str) -> Write {
        Write::Delete {
            table: Table::Tokens,
            pk: iat_pk(hash_hex),
            sk: "iat".into(),
            cond: Cond::Exists,
        }
    }

    pub async fn iat(&self, hash_hex: &str) -> Result<Option<Versioned<InitialAccessToken>>, StoreError> {
        match self.kv.get(Table::Tokens, &iat_pk(hash_hex), "iat").await? {
            Some(item) => Ok(Some(from_item(item)?)),
            None => Ok(None),
        }
    }

    /// The write that records one more use of an IAT read at `version`.
    pub fn consume_iat_write(
        &self,
        hash_hex: &str,
        iat: &InitialAccessToken,
        version: u64,
    ) -> Result<Write, StoreError> {
        let mut used = iat.clone();
        used.uses += 1;
        let mut item = Item::new(iat_pk(hash_hex), "iat", to_map(&used)?)
            .with_index(
                format!("{}#iat", tenant_pk(iat.tenant.as_str())),
                format!("{}#{hash_hex}", iat.created_at),
            )
            .expiring_at(iat.expires_at);
        item.version = version + 1;
        Ok(Write::Put {
            table: Table::Tokens,
            item,
            cond: Cond::Version(version),
        })
    }

    // ---- when a client last got a token ----------------------------------------------------

    /// Record that `tenant`'s client `client_id` got a token at `at` (the console's "last
    /// used"). Kept beside the tokens, not on the client item, so that the token function
    /// writes nothing a client is made of; forgotten a year after the last use.
    pub async fn note_client_used(&self, tenant: &str, client_id: &str, at: i64) -> Result<(), StoreError> {
        let mut data = Map::new();
        data.insert("at".into(), Value::from(at));
        let item = Item::new(client_use_pk(tenant, client_id), "last", data).expiring_at(at + 366 * 86_400);
        self.kv.put(Table::Tokens, item, Cond::None).await
    }

    /// When `tenant`'s client `client_id` last got a token (to within the hour: see
    /// `service::token_endpoint`).
    pub async fn client_last_used(&self, tenant: &str, client_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .kv
            .get(Table::Tokens, &client_use_pk(tenant, client_id), "last")
            .await?
            .and_then(|i| i.data.get("at").and_then(Value::as_i64)))
    }

    // ---- access-token deny list -------------------------------------------------------------

    /// The write that puts `jti` on the deny list until `exp` (idempotent).
    pub fn deny_jti_write(&self, jti: &str, tenant: &str, exp: i64) -> Write {
        let mut data = Map::new();
        data.insert("tenant".into(), Value::String(tenant.into()));
        Write::Put {
            table: Table::Tokens,
            item: Item::new(jti_pk(jti), "deny", data).expiring_at(exp),
            cond: Cond::None,
        }
    }

    pub async fn is_denied(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self.kv.get(Table::Tokens, &jti_pk(jti), "deny").await?.is_some())
    }

    // ---- audit ------------------------------------------------------------------------------

    /// The write that records an audit event (to go into the same transaction as the change).
    /// [`Repo::commit`] logs it on target `audit` once the transaction has landed.
    pub fn audit_write(
        &self,
        tenant: &str,
        kind: AuditKind,
        actor: &str,
        subject: &str,
    ) -> Result<Write, StoreError> {
        self.audit_write_detail(tenant, kind, actor, subject, None)
    }

    /// [`Repo::audit_write`] with a `detail`.
    pub fn audit_write_detail(
        &self,
        tenant: &str,
        kind: AuditKind,
        actor: &str,
        subject: &str,
        detail: Option<String>,
    ) -> Result<Write, StoreError> {
        self.event_write(tenant, kind.as_str(), actor, subject, detail)
    }

    /// The one way an event is made: actor, subject and detail rendered safe
    /// ([`crate::domain::audit::safe_text`]), whoever supplied them.
    fn event_write(
        &self,
        tenant: &str,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: Option<String>,
    ) -> Result<Write, StoreError> {
        use crate::domain::audit::safe_text;
        let at = self.clock.now();
        let event = AuditEvent {
            at,
            tenant: tenant.into(),
            kind: kind.into(),
            actor: safe_text(actor),
            subject: safe_text(subject),
            detail: detail.as_deref().map(safe_text),
        };
        // Sorted by time: the injected clock's second, then the wall clock's sub-second part so
        // that events of one second keep their order, then randomness against collisions.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let sk = format!("{at:012}#{nanos:09}#{}", crate::secret::random_id(6));
        Ok(Write::Put {
            table: Table::Audit,
            item: Item::new(tenant_pk(tenant), sk, to_map(&event)?),
            cond: Cond::Absent,
        })
    }

    /// Record something that happened and changed nothing (a failed login) on its own. A
    /// change is recorded with [`Repo::audit_write`], in its own transaction.
    pub async fn note(
        &self,
        tenant: &str,
        kind: Noted,
        actor: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        self.commit(vec![self.event_write(
            tenant,
            kind.as_str(),
            actor,
            subject,
            None,
        )?])
        .await
    }

    /// Run `writes` as one transaction; once it has landed (and only then), log the audit
    /// events it recorded on target `audit`. Services commit through here, never through
    /// [`Kv::transact`] directly, so that no audit line describes a change that did not happen.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        // Every change to what administrators manage (a tenant's config, a client, a user, a
        // group) carries its audit event in the same transaction. Debug builds (every test)
        // refuse one that does not, so that no path can forget it.
        debug_assert!(
            !writes.iter().any(must_be_audited) || writes.iter().any(is_audit),
            "a change to {:?} without its audit event",
            writes.iter().find(|w| must_be_audited(w))
        );
        let events: Vec<AuditEvent> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Put {
                    table: Table::Audit,
                    item,
                    ..
                } => serde_json::from_value(Value::Object(item.data.clone())).ok(),
                _ => None,
            })
            .collect();
        // One put or delete needs no transaction (which DynamoDB bills twice): a single
        // conditional write is atomic on its own.
        match <[Write; 1]>::try_from(writes) {
            Ok([Write::Put { table, item, cond }]) => self.kv.put(table, item, cond).await?,
            Ok([Write::Delete { table, pk, sk, cond }]) => {
                self.kv.delete(table, &pk, &sk, cond).await?;
            }
            Ok([check @ Write::Check { .. }]) => self.kv.transact(vec![check]).await?,
            Err(writes) => self.kv.transact(writes).await?,
        }
        for e in events {
            tracing::info!(
                target: "audit",
                tenant = %e.tenant,
                kind = %e.kind,
                actor = %e.actor,
                subject = %e.subject,
                detail = e.detail.as_deref().unwrap_or(""),
                "audit event"
            );
        }
        Ok(())
    }

    /// One page of a tenant's audit events, oldest first (`newest_first`: the other way), each
    /// with the cursor that continues right after it (for a reader that filters and stops in
    /// the middle of a page).
    pub async fn audit_events_with_cursors(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
        newest_first: bool,
    ) -> Result<(Vec<(AuditEvent, String)>, Option<String>), StoreError> {
        let index = if newest_first {
            Index::PrimaryDescending
        } else {
            Index::Primary
        };
        let page = self
            .kv
            .query(Table::Audit, index, &tenant_pk(tenant), cursor, limit)
            .await?;
        let mut out = Vec::with_capacity(page.items.len());
        for item in page.items {
            let after = self.kv.cursor_after(index, &item)?;
            out.push((from_item::<AuditEvent>(item)?.value, after));
        }
        Ok((out, page.next))
    }
}

/// The store side of the key ring port (`keys::wrapped::RingStore`).
#[async_trait::async_trait]
impl RingStore for Repo {
    async fn load(&self) -> Result<Option<(KeyRing, u64)>, RingError> {
        self.key_ring()
            .await
            .map(|r| r.map(|v| (v.value, v.version)))
            .map_err(|e| RingError::Unavailable(format!("key ring: {e}")))
    }

    async fn save(&self, ring: &KeyRing, version: Option<u64>) -> Result<(), RingError> {
        self.put_key_ring(ring, version).await.map_err(|e| match e {
            StoreError::Conflict => RingError::Conflict,
            other => RingError::Unavailable(format!("key ring: {other}")),
        })
    }
}
