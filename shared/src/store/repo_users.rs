//! Typed access for end users and what they grant: users, sessions, pending authorization
//! requests, codes, consents, grants and refresh tokens. Key layouts (continuing [`super::repo`]):
//!
//! | table  | pk                          | sk         | index (gpk / gsk)                     | expires     |
//! |--------|-----------------------------|------------|---------------------------------------|-------------|
//! | users  | `user#<sub>`                | `user`     | `tenant#<t>#users` / `<username>`     | never       |
//! | users  | `username#<t>#<username>`   | `username` | —                                     | never       |
//! | users  | `fedlink#<sha256(t,iss,sub)>` | `link`   | `fedlinks#<sub>` / `<t>#<iss>`        | never       |
//! | users  | `group#<gid>`               | `group`    | `tenant#<t>#groups` / `<gid>`         | never       |
//! | users  | `groupmembers#<gid>`        | `<sub>`    | —                                     | never       |
//! | users  | `usergroups#<sub>`          | `<gid>`    | —                                     | never       |
//! | tokens | `session#<sha256>`          | `session`  | `sessions#<sub>` / `<created>#<h>`    | session end |
//! | tokens | `authreq#<id>`              | `authreq`  | —                                     | 10 min      |
//! | tokens | `par#<sha256>`              | `par`      | — (a pushed request: its `request_uri`) | 60 s      |
//! | tokens | `code#<sha256>`             | `code`     | —                                     | 60 s        |
//! | tokens | `usedcode#<sha256>`         | `used`     | —                                     | 1 day       |
//! | tokens | `throttle#<t>#<username>`   | `login`    | —                                     | window end  |
//! | tokens | `device#<sha256>`           | `device`   | — (RFC 8628: its device code)         | expiry + 10 min |
//! | tokens | `usercode#<sha256>`         | `usercode` | — (→ the device code's hash)          | expiry      |
//! | tokens | `rate#<key>#<window start>` | `n`        | — (`take_from_window`'s counters)     | 2 windows   |
//! | tokens | `revoked#<t>#<sub>#<client>`| `revoked`  | —                                     | 10 min      |
//! | grants | `consent#<t>#<sub>`         | `<client>` | —                                     | never       |
//! | grants | `clientconsents#<client>` ¹ | `<t>#<sub>`| —                                     | never       |
//! | grants | `grants#<sub>`              | `<gid>`    | —                                     | absolute    |
//! | grants | `clientgrants#<client>` ¹   | `<sub>#<gid>` | —                                  | absolute    |
//! | grants | `rt#<sha256>`               | `rt`       | —                                     | idle/abs.   |
//! | grants | `delegations#<sub>`         | `<app>#<agent>` | —                                | never       |
//!
//! ¹ For a metadata-document client (whose id, a URL, every tenant that meets it shares):
//! `clientconsents#<t>#<url>` and `clientgrants#<t>#<url>`, so a tenant's cascade walks its own.
//!
//! A user's grants share one partition and a client's grants and consents are listed by
//! pointer items written in the same transaction, so that the listings the revocation cascades
//! walk are primary-key queries: strongly consistent on DynamoDB (a secondary index may lag, and
//! a cascade must not miss a grant that landed a moment earlier).

use crate::domain::audit::AuditKind;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::repo::{Repo, Versioned, from_item, to_map};
use super::{Cond, Index, Item, StoreError, Table, Write};
use crate::domain::user::{LoginFailures, User};

pub use crate::domain::code::{AuthCode, UsedCode};
pub use crate::domain::consent::{Consent, ConsentRef, Delegation};
pub use crate::domain::device::DeviceCode;
pub use crate::domain::grant::{AppRevoked, Grant, GrantRef, RefreshToken};
pub use crate::domain::group::{Group, Membership};
pub use crate::domain::session::{PendingAuth, PushedRequest, Session};
pub use crate::domain::user::FederatedLink;

/// The answer to [`Repo::reserve_login_attempt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Go ahead and check the password.
    Reserved,
    /// Too many attempts: seconds until the username may try again.
    Locked(i64),
}

pub(super) fn fedlink_pk(tenant: &str, issuer: &str, subject: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [tenant, issuer, subject] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("fedlink#{hex}")
}

pub(super) fn put(table: Table, item: Item, cond: Cond) -> Write {
    Write::Put { table, item, cond }
}

pub(super) fn user_pk(sub: &str) -> String {
    format!("user#{sub}")
}
pub(super) fn username_pk(tenant: &str, username: &str) -> String {
    format!("username#{tenant}#{username}")
}
pub(super) fn session_pk(hash: &str) -> String {
    format!("session#{hash}")
}
pub(super) fn grants_pk(sub: &str) -> String {
    format!("grants#{sub}")
}
/// Per client; a metadata-document client's id (a URL) is shared by every tenant that met it,
/// so its pointers are per tenant too.
pub(super) fn client_grants_pk(tenant: &str, client_id: &str) -> String {
    if crate::domain::cimd::is_url_id(client_id) {
        format!("clientgrants#{tenant}#{client_id}")
    } else {
        format!("clientgrants#{client_id}")
    }
}
pub(super) fn consent_pk(tenant: &str, sub: &str) -> String {
    format!("consent#{tenant}#{sub}")
}
pub(super) fn client_consents_pk(tenant: &str, client_id: &str) -> String {
    if crate::domain::cimd::is_url_id(client_id) {
        format!("clientconsents#{tenant}#{client_id}")
    } else {
        format!("clientconsents#{client_id}")
    }
}
pub(super) fn delegations_pk(sub: &str) -> String {
    format!("delegations#{sub}")
}
pub(super) fn app_revoked_pk(tenant: &str, sub: &str, client_id: &str) -> String {
    format!("revoked#{tenant}#{sub}#{client_id}")
}

pub(super) fn group_pk(gid: &str) -> String {
    format!("group#{gid}")
}
pub(super) fn group_members_pk(gid: &str) -> String {
    format!("groupmembers#{gid}")
}
pub(super) fn user_groups_pk(sub: &str) -> String {
    format!("usergroups#{sub}")
}

impl Repo {
    // ---- groups -----------------------------------------------------------------------------

    pub fn create_group_write(&self, g: &Group) -> Result<Write, StoreError> {
        Ok(put(
            Table::Users,
            Item::new(group_pk(&g.id), "group", to_map(g)?)
                .with_index(format!("tenant#{}#groups", g.tenant), g.id.clone()),
            Cond::Absent,
        ))
    }

    pub async fn group(&self, gid: &str) -> Result<Option<Versioned<Group>>, StoreError> {
        if gid.is_empty() || gid.len() > 128 {
            return Ok(None);
        }
        self.get_as(Table::Users, &group_pk(gid), "group").await
    }

    pub fn delete_group_write(&self, gid: &str, version: u64) -> Write {
        Write::Delete {
            table: Table::Users,
            pk: group_pk(gid),
            sk: "group".into(),
            cond: Cond::Version(version),
        }
    }

    /// One page of a tenant's groups.
    pub async fn groups_of(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Group>, Option<String>), StoreError> {
        let page = self
            .kv()
            .query(
                Table::Users,
                Index::ByParent,
                &format!("tenant#{tenant}#groups"),
                cursor,
                limit,
            )
            .await?;
        let groups = page
            .items
            .into_iter()
            .map(|i| from_item(i).map(|v| v.value))
            .collect::<Result<_, _>>()?;
        Ok((groups, page.next))
    }

    /// The writes that put `sub` in group `gid` (under both; the group must exist).
    pub fn add_member_writes(&self, m: &Membership) -> Result<[Write; 3], StoreError> {
        Ok([
            put(
                Table::Users,
                Item::new(group_members_pk(&m.group), m.sub.clone(), to_map(m)?),
                Cond::None,
            ),
            put(
                Table::Users,
                Item::new(user_groups_pk(&m.sub), m.group.clone(), to_map(m)?),
                Cond::None,
            ),
            Write::Check {
                table: Table::Users,
                pk: group_pk(&m.group),
                sk: "group".into(),
                cond: Cond::Exists,
            },
        ])
    }

    pub fn remove_member_writes(&self, gid: &str, sub: &str) -> [Write; 2] {
        [
            Write::Delete {
                table: Table::Users,
                pk: group_members_pk(gid),
                sk: sub.into(),
                cond: Cond::None,
            },
            Write::Delete {
                table: Table::Users,
                pk: user_groups_pk(sub),
                sk: gid.into(),
                cond: Cond::None,
            },
        ]
    }

    /// One page of a group's members.
    pub async fn members_of(
        &self,
        gid: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Membership>, Option<String>), StoreError> {
        let page = self
            .kv()
            .query(
                Table::Users,
                Index::Primary,
                &group_members_pk(gid),
                cursor,
                limit,
            )
            .await?;
        let members = page
            .items
            .into_iter()
            .map(|i| from_item(i).map(|v| v.value))
            .collect::<Result<_, _>>()?;
        Ok((members, page.next))
    }

    /// Every group of a user (strongly consistent: a primary-key query).
    pub async fn groups_of_user(&self, sub: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query_all::<Membership>(Table::Users, Index::Primary, &user_groups_pk(sub))
            .await?
            .into_iter()
            .map(|m| m.value.group)
            .collect())
    }

    pub(super) async fn get_as<T: DeserializeOwned>(
        &self,
        table: Table,
        pk: &str,
        sk: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match self.kv().get(table, pk, sk).await? {
            Some(item) => Ok(Some(from_item(item)?)),
            None => Ok(None),
        }
    }

    /// Every live item of a partition, page by page: never cut short (a cascade that stopped
    /// at a page limit would leave grants alive).
    pub(super) async fn query_all<T: DeserializeOwned>(
        &self,
        table: Table,
        index: Index,
        partition: &str,
    ) -> Result<Vec<Versioned<T>>, StoreError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .kv()
                .query(table, index, partition, cursor.as_deref(), 100)
                .await?;
            for item in page.items {
                out.push(from_item(item)?);
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// At most `max` items of a partition (in pages of at most 100), and whether there are more.
    pub(super) async fn query_up_to<T: DeserializeOwned>(
        &self,
        table: Table,
        partition: &str,
        max: usize,
    ) -> Result<(Vec<T>, bool), StoreError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        while out.len() < max {
            let page = self
                .kv()
                .query(
                    table,
                    Index::Primary,
                    partition,
                    cursor.as_deref(),
                    (max - out.len()).min(100),
                )
                .await?;
            for item in page.items {
                out.push(from_item::<T>(item)?.value);
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok((out, false)),
            }
        }
        Ok((out, true))
    }

    // ---- users ------------------------------------------------------------------------------

    pub(super) fn user_item(u: &User) -> Result<Item, StoreError> {
        Ok(Item::new(user_pk(&u.sub), "user", to_map(u)?)
            .with_index(format!("tenant#{}#users", u.tenant.as_str()), u.username.clone()))
    }

    /// Create a user; `Conflict` if the username is taken in the tenant.
    pub async fn create_user(&self, u: &User, actor: &str) -> Result<(), StoreError> {
        let mut name = Map::new();
        name.insert("sub".into(), Value::String(u.sub.to_string()));
        let writes = vec![
            put(
                Table::Users,
                Item::new(username_pk(u.tenant.as_str(), &u.username), "username", name),
                Cond::Absent,
            ),
            put(Table::Users, Self::user_item(u)?, Cond::Absent),
            self.audit_write(u.tenant.as_str(), AuditKind::UserCreated, actor, &u.sub)?,
        ];
        self.commit(writes).await
    }

    pub async fn user(&self, sub: &str) -> Result<Option<Versioned<User>>, StoreError> {
        if sub.is_empty() || sub.len() > 128 {
            return Ok(None);
        }
        self.get_as(Table::Users, &user_pk(sub), "user").await
    }

    pub async fn user_by_name(
        &self,
        tenant: &str,
        username: &str,
    ) -> Result<Option<Versioned<User>>, StoreError> {
        let Some(item) = self
            .kv()
            .get(Table::Users, &username_pk(tenant, username), "username")
            .await?
        else {
            return Ok(None);
        };
        let Some(sub) = item.data.get("sub").and_then(Value::as_str) else {
            return Ok(None);
        };
        Ok(self
            .user(sub)
            .await?
            .filter(|u| u.value.tenant.as_str() == tenant))
    }

    /// One page of a tenant's users, in username order (the index may lag a write by a moment).
    pub async fn users_of(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Versioned<User>>, Option<String>), StoreError> {
        let page = self
            .kv()
            .query(
                Table::Users,
                Index::ByParent,
                &format!("tenant#{tenant}#users"),
                cursor,
                limit,
            )
            .await?;
        let users = page.items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        Ok((users, page.next))
    }

    /// The writes that delete a user read at `version`, and its username.
    pub fn delete_user_writes(&self, u: &User, version: u64) -> [Write; 2] {
        [
            Write::Delete {
                table: Table::Users,
                pk: user_pk(&u.sub),
                sk: "user".into(),
                cond: Cond::Version(version),
            },
            Write::Delete {
                table: Table::Users,
                pk: username_pk(u.tenant.as_str(), &u.username),
                sk: "username".into(),
                cond: Cond::Exists,
            },
        ]
    }

    /// The write that replaces a user read at `version`.
    pub fn replace_user_write(&self, u: &User, version: u64) -> Result<Write, StoreError> {
        let mut item = Self::user_item(u)?;
        item.version = version + 1;
        Ok(put(Table::Users, item, Cond::Version(version)))
    }

    // ---- login throttle ---------------------------------------------------------------------

    pub(super) fn throttle_pk(tenant: &str, username: &str) -> String {
        format!("throttle#{tenant}#{username}")
    }

    pub async fn login_failures(
        &self,
        tenant: &str,
        username: &str,
    ) -> Result<Option<Versioned<LoginFailures>>, StoreError> {
        self.get_as(Table::Tokens, &Self::throttle_pk(tenant, username), "login")
            .await
    }

    /// Reserve one login attempt for (tenant, username) before its password is checked: the
    /// counter goes up by one with a conditional write (atomic across instances), unless the
    /// limit is already reached in the current window. Under heavy contention for one username
    /// the answer is `Locked` (fail closed), never an error.
    pub async fn reserve_login_attempt(
        &self,
        tenant: &str,
        username: &str,
    ) -> Result<LoginAttempt, StoreError> {
        use crate::domain::user::{THROTTLE_WINDOW, reserve_attempt};
        let pk = Self::throttle_pk(tenant, username);
        for attempt in 0..16u64 {
            let now = self.now();
            let current = self.login_failures(tenant, username).await?;
            let next = match reserve_attempt(current.as_ref().map(|v| &v.value), now) {
                Ok(next) => next,
                Err(wait) => return Ok(LoginAttempt::Locked(wait)),
            };
            let (cond, version) = match &current {
                Some(v) => (Cond::Version(v.version), v.version + 1),
                None => (Cond::Absent, 1),
            };
            let mut item =
                Item::new(pk.clone(), "login", to_map(&next)?).expiring_at(next.first_at + THROTTLE_WINDOW);
            item.version = version;
            match self.kv().put(Table::Tokens, item, cond).await {
                Ok(()) => return Ok(LoginAttempt::Reserved),
                Err(StoreError::Conflict) => {
                    // Back off a little (randomised) before reading the counter again.
                    let jitter = rand::random::<u64>() % (2 + attempt * 4);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(LoginAttempt::Locked(60))
    }

    /// Take one of `limit` uses of the fixed window of `window` seconds that `key` names now
    /// (a conditional counter; concurrent takers retry). `false`: none left in this window.
    pub async fn take_from_window(&self, key: &str, limit: u64, window: i64) -> Result<bool, StoreError> {
        for attempt in 0..16u64 {
            let now = self.now();
            let start = now - now.rem_euclid(window);
            let pk = format!("rate#{key}#{start}");
            let current = self.kv().get(Table::Tokens, &pk, "n").await?;
            let (used, cond, version) = match &current {
                Some(i) => (
                    i.data.get("n").and_then(serde_json::Value::as_u64).unwrap_or(0),
                    Cond::Version(i.version),
                    i.version + 1,
                ),
                None => (0, Cond::Absent, 1),
            };
            if used >= limit {
                return Ok(false);
            }
            let mut data = serde_json::Map::new();
            data.insert("n".into(), serde_json::Value::from(used + 1));
            let mut item = Item::new(pk, "n", data).expiring_at(start + 2 * window);
            item.version = version;
            match self.kv().put(Table::Tokens, item, cond).await {
                Ok(()) => return Ok(true),
                Err(StoreError::Conflict) => {
                    let jitter = rand::random::<u64>() % (2 + attempt * 4);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Give back one use taken from the current window of `key` (a conditional counter, never
    /// below zero): a taker that took first and found it should not have counted. The store has
    /// no atomic add, so take-then-give-back is how a counter is incremented before it is
    /// checked. Best effort: under sustained contention the use stays taken (fails closed).
    pub async fn give_back_to_window(&self, key: &str, window: i64) -> Result<(), StoreError> {
        for attempt in 0..16u64 {
            let now = self.now();
            let start = now - now.rem_euclid(window);
            let pk = format!("rate#{key}#{start}");
            let Some(current) = self.kv().get(Table::Tokens, &pk, "n").await? else {
                return Ok(());
            };
            let used = current
                .data
                .get("n")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            if used == 0 {
                return Ok(());
            }
            let mut data = serde_json::Map::new();
            data.insert("n".into(), serde_json::Value::from(used - 1));
            let mut item = Item::new(pk, "n", data).expiring_at(start + 2 * window);
            item.version = current.version + 1;
            match self
                .kv()
                .put(Table::Tokens, item, Cond::Version(current.version))
                .await
            {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => {
                    let jitter = rand::random::<u64>() % (2 + attempt * 4);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub async fn clear_login_failures(&self, tenant: &str, username: &str) -> Result<(), StoreError> {
        self.kv()
            .delete(
                Table::Tokens,
                &Self::throttle_pk(tenant, username),
                "login",
                Cond::None,
            )
            .await
            .map(|_| ())
    }

    // ---- sessions ---------------------------------------------------------------------------

    /// The write that creates a session (to go with its `login.succeeded` event).
    pub fn create_session_write(&self, hash: &str, s: &Session) -> Result<Write, StoreError> {
        let item = Item::new(session_pk(hash), "session", to_map(s)?)
            .with_index(format!("sessions#{}", s.sub), format!("{}#{hash}", s.created_at))
            .expiring_at(s.expires_at);
        Ok(put(Table::Tokens, item, Cond::Absent))
    }

    /// The write that ends a session (to go with its audit event).
    pub fn delete_session_write(&self, hash: &str) -> Write {
        Write::Delete {
            table: Table::Tokens,
            pk: session_pk(hash),
            sk: "session".into(),
            cond: Cond::None,
        }
    }

    pub async fn session(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        Ok(self
            .get_as::<Session>(Table::Tokens, &session_pk(hash), "session")
            .await?
            .map(|v| v.value))
    }

    pub async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        self.kv()
            .delete(Table::Tokens, &session_pk(hash), "session", Cond::None)
            .await
            .map(|_| ())
    }

    /// End every session of a user.
    pub async fn delete_sessions_of(&self, sub: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        loop {
            let page = self
                .kv()
                .query(
                    Table::Tokens,
                    Index::ByParent,
                    &format!("sessions#{sub}"),
                    None,
                    25,
                )
                .await?;
            if page.items.is_empty() {
                return Ok(n);
            }
            for item in page.items {
                self.kv()
                    .delete(Table::Tokens, &item.pk, &item.sk, Cond::None)
                    .await?;
                n += 1;
            }
        }
    }

    // ---- pending authorization requests -----------------------------------------------------

    pub async fn put_pending(&self, id: &str, p: &PendingAuth, cond: Cond) -> Result<(), StoreError> {
        let mut item = Item::new(format!("authreq#{id}"), "authreq", to_map(p)?).expiring_at(p.expires_at);
        if let Cond::Version(v) = cond {
            item.version = v + 1;
        }
        self.kv().put(Table::Tokens, item, cond).await
    }

    pub async fn pending(&self, id: &str) -> Result<Option<Versioned<PendingAuth>>, StoreError> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        self.get_as(Table::Tokens, &format!("authreq#{id}"), "authreq")
            .await
    }

    /// The write that ends a pending request read at `version` (so that it answers once).
    pub fn finish_pending_write(&self, id: &str, version: u64) -> Write {
        Write::Delete {
            table: Table::Tokens,
            pk: format!("authreq#{id}"),
            sk: "authreq".into(),
            cond: Cond::Version(version),
        }
    }

    // ---- pushed authorization requests (RFC 9126) -------------------------------------------

    /// Store a pushed request under the hash of its `request_uri`'s reference, until its expiry.
    pub async fn put_pushed(&self, hash: &str, p: &PushedRequest) -> Result<(), StoreError> {
        let item = Item::new(format!("par#{hash}"), "par", to_map(p)?).expiring_at(p.expires_at);
        self.kv().put(Table::Tokens, item, Cond::Absent).await
    }

    /// Take the pushed request: of several concurrent callers exactly one gets it (a conditional
    /// delete), and an expired one is gone.
    pub async fn take_pushed(&self, hash: &str) -> Result<Option<PushedRequest>, StoreError> {
        match self
            .kv()
            .delete(Table::Tokens, &format!("par#{hash}"), "par", Cond::Exists)
            .await
        {
            Ok(Some(item)) => Ok(Some(from_item(item)?.value)),
            Ok(None) | Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- codes ------------------------------------------------------------------------------

    pub fn create_code_write(&self, hash: &str, c: &AuthCode, expires_at: i64) -> Result<Write, StoreError> {
        Ok(put(
            Table::Tokens,
            Item::new(format!("code#{hash}"), "code", to_map(c)?).expiring_at(expires_at),
            Cond::Absent,
        ))
    }

    /// Take the code: of several concurrent callers exactly one gets it.
    /// The live code with this hash, without taking it (so that a request that would not be
    /// allowed to redeem it cannot use it up).
    pub async fn code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
        Ok(self
            .get_as::<AuthCode>(Table::Tokens, &format!("code#{hash}"), "code")
            .await?
            .map(|v| v.value))
    }

    /// Take the code: exactly one of concurrent callers gets it (a conditional delete).
    pub async fn take_code(&self, hash: &str) -> Result<Option<AuthCode>, StoreError> {
        match self
            .kv()
            .delete(Table::Tokens, &format!("code#{hash}"), "code", Cond::Exists)
            .await
        {
            Ok(Some(item)) => Ok(Some(from_item(item)?.value)),
            Ok(None) | Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn used_code_write(&self, hash: &str, u: &UsedCode, expires_at: i64) -> Result<Write, StoreError> {
        Ok(put(
            Table::Tokens,
            Item::new(format!("usedcode#{hash}"), "used", to_map(u)?).expiring_at(expires_at),
            Cond::None,
        ))
    }

    pub async fn used_code(&self, hash: &str) -> Result<Option<UsedCode>, StoreError> {
        Ok(self
            .get_as::<UsedCode>(Table::Tokens, &format!("usedcode#{hash}"), "used")
            .await?
            .map(|v| v.value))
    }

    // ---- device codes (RFC 8628) ------------------------------------------------------------

    /// How long a device code's item outlives its expiry: a device polling late is told
    /// `expired_token` rather than `invalid_grant`.
    pub const DEVICE_KEPT_AFTER_EXPIRY: i64 = 600;

    fn device_pk(hash: &str) -> String {
        format!("device#{hash}")
    }

    fn user_code_pk(hash: &str) -> String {
        format!("usercode#{hash}")
    }

    /// The writes that create a device code under `hash` and its user code's pointer (both new:
    /// a user code already live makes the transaction fail, and the caller draws another).
    pub fn create_device_writes(&self, hash: &str, d: &DeviceCode) -> Result<[Write; 2], StoreError> {
        let mut data = Map::new();
        data.insert("device".into(), Value::from(hash));
        Ok([
            put(
                Table::Tokens,
                Item::new(Self::device_pk(hash), "device", to_map(d)?)
                    .expiring_at(d.expires_at + Self::DEVICE_KEPT_AFTER_EXPIRY),
                Cond::Absent,
            ),
            put(
                Table::Tokens,
                Item::new(Self::user_code_pk(&d.user_code_hash), "usercode", data).expiring_at(d.expires_at),
                Cond::Absent,
            ),
        ])
    }

    /// The device code with this hash, at the version read.
    pub async fn device(&self, hash: &str) -> Result<Option<Versioned<DeviceCode>>, StoreError> {
        self.get_as(Table::Tokens, &Self::device_pk(hash), "device").await
    }

    /// The device code a live user code (by its hash) names: (its hash, it).
    pub async fn device_by_user_code(
        &self,
        user_code_hash: &str,
    ) -> Result<Option<(String, Versioned<DeviceCode>)>, StoreError> {
        let Some(pointer) = self
            .kv()
            .get(Table::Tokens, &Self::user_code_pk(user_code_hash), "usercode")
            .await?
        else {
            return Ok(None);
        };
        let Some(hash) = pointer.data.get("device").and_then(Value::as_str) else {
            return Ok(None);
        };
        let hash = hash.to_string();
        Ok(self
            .device(&hash)
            .await?
            // The pointer and the code it names agree (a pointer outliving its code, or
            // naming another, is nothing).
            .filter(|d| d.value.user_code_hash == user_code_hash)
            .map(|d| (hash, d)))
    }

    /// The write that replaces a device code read at `version` (a poll's time and interval, the
    /// user's decision): of concurrent changes exactly one lands.
    pub fn put_device_write(&self, hash: &str, d: &DeviceCode, version: u64) -> Result<Write, StoreError> {
        let mut item = Item::new(Self::device_pk(hash), "device", to_map(d)?)
            .expiring_at(d.expires_at + Self::DEVICE_KEPT_AFTER_EXPIRY);
        item.version = version + 1;
        Ok(put(Table::Tokens, item, Cond::Version(version)))
    }

    /// How many uses of the current fixed window of `window` seconds `key` names are taken
    /// ([`Repo::take_from_window`]'s counter, read without taking one).
    pub async fn window_count(&self, key: &str, window: i64) -> Result<u64, StoreError> {
        let now = self.now();
        let start = now - now.rem_euclid(window);
        let current = self
            .kv()
            .get(Table::Tokens, &format!("rate#{key}#{start}"), "n")
            .await?;
        Ok(current
            .and_then(|i| i.data.get("n").and_then(Value::as_u64))
            .unwrap_or(0))
    }

    /// The writes that take a device code read at `version`, with its user code: of concurrent
    /// takers exactly one transaction lands (the redemption of an approved code, the report of
    /// a denied one).
    pub fn take_device_writes(&self, hash: &str, d: &DeviceCode, version: u64) -> [Write; 2] {
        [
            Write::Delete {
                table: Table::Tokens,
                pk: Self::device_pk(hash),
                sk: "device".into(),
                cond: Cond::Version(version),
            },
            Write::Delete {
                table: Table::Tokens,
                pk: Self::user_code_pk(&d.user_code_hash),
                sk: "usercode".into(),
                cond: Cond::None,
            },
        ]
    }
}
