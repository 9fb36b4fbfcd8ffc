//! Typed access for end users and what they grant: users, sessions, pending authorization
//! requests, codes, consents, grants and refresh tokens. Key layouts (continuing [`super::repo`]):
//!
//! | table  | pk                          | sk         | index (gpk / gsk)                     | expires     |
//! |--------|-----------------------------|------------|---------------------------------------|-------------|
//! | users  | `user#<sub>`                | `user`     | `tenant#<t>#users` / `<username>`     | never       |
//! | users  | `username#<t>#<username>`   | `username` | —                                     | never       |
//! | tokens | `session#<sha256>`          | `session`  | `sessions#<sub>` / `<created>#<h>`    | session end |
//! | tokens | `authreq#<id>`              | `authreq`  | —                                     | 10 min      |
//! | tokens | `code#<sha256>`             | `code`     | —                                     | 60 s        |
//! | tokens | `usedcode#<sha256>`         | `used`     | —                                     | 1 day       |
//! | tokens | `throttle#<t>#<username>`   | `login`    | —                                     | window end  |
//! | grants | `consent#<t>#<sub>`         | `<client>` | —                                     | never       |
//! | grants | `grant#<gid>`               | `grant`    | `grants#<sub>` / `<client>#<gid>`     | absolute    |
//! | grants | `rt#<sha256>`               | `rt`       | —                                     | idle/abs.   |

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::repo::{Repo, Versioned, from_item, to_map};
use super::{Cond, Index, Item, StoreError, Table, Write};
use crate::domain::authorize::AuthRequest;
use crate::domain::user::{LoginFailures, User};

/// A logged-in browser, bound to one tenant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub tenant: String,
    pub sub: String,
    pub auth_time: i64,
    /// The CSRF token of the account page's forms.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization request between the redirect to us and the redirect back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingAuth {
    pub tenant: String,
    pub request: AuthRequest,
    /// SHA-256 of the browser-binding cookie that started it.
    pub browser: String,
    /// The user logged in during this request (satisfies `prompt=login` and `max_age`).
    #[serde(default)]
    pub login_done: bool,
    /// The user shown the consent page (the consent answer must come from the same user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_for: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An authorization code, stored under its hash until redeemed (or 60 s pass).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthCode {
    pub tenant: String,
    pub sub: String,
    pub auth_time: i64,
    pub request: AuthRequest,
    pub issued_at: i64,
}

/// What a redeemed code issued, kept so that a replay can revoke it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsedCode {
    pub tenant: String,
    pub gid: String,
}

/// The scopes a user granted a client.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Consent {
    pub tenant: String,
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
    pub updated_at: i64,
}

/// One authorization: what a code exchange created. Its access tokens carry `gid`; its refresh
/// tokens form one rotation family. Deleting it ends all of them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub gid: String,
    pub tenant: String,
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub last_used: i64,
    /// The absolute end of the family.
    pub expires_at: i64,
}

/// A refresh token, stored under its hash. Once used it stays, `rotated`, until it would have
/// expired, so that a second use is recognised as reuse.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshToken {
    pub gid: String,
    pub tenant: String,
    pub client_id: String,
    pub sub: String,
    pub scope: String,
    pub rotated: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

fn put(table: Table, item: Item, cond: Cond) -> Write {
    Write::Put { table, item, cond }
}

fn user_pk(sub: &str) -> String {
    format!("user#{sub}")
}
fn username_pk(tenant: &str, username: &str) -> String {
    format!("username#{tenant}#{username}")
}
fn session_pk(hash: &str) -> String {
    format!("session#{hash}")
}
fn grant_pk(gid: &str) -> String {
    format!("grant#{gid}")
}
fn consent_pk(tenant: &str, sub: &str) -> String {
    format!("consent#{tenant}#{sub}")
}

impl Repo {
    async fn get_as<T: DeserializeOwned>(
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

    async fn query_all<T: DeserializeOwned>(
        &self,
        table: Table,
        index: Index,
        partition: &str,
        max: usize,
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
                Some(n) if out.len() < max => cursor = Some(n),
                _ => return Ok(out),
            }
        }
    }

    // ---- users ------------------------------------------------------------------------------

    fn user_item(u: &User) -> Result<Item, StoreError> {
        Ok(Item::new(user_pk(&u.sub), "user", to_map(u)?)
            .with_index(format!("tenant#{}#users", u.tenant.as_str()), u.username.clone()))
    }

    /// Create a user; `Conflict` if the username is taken in the tenant.
    pub async fn create_user(&self, u: &User) -> Result<(), StoreError> {
        let mut name = Map::new();
        name.insert("sub".into(), Value::String(u.sub.clone()));
        let writes = vec![
            put(
                Table::Users,
                Item::new(username_pk(u.tenant.as_str(), &u.username), "username", name),
                Cond::Absent,
            ),
            put(Table::Users, Self::user_item(u)?, Cond::Absent),
            self.audit_write(u.tenant.as_str(), "user.created", "cli", &u.sub)?,
        ];
        self.kv().transact(writes).await
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

    /// The write that replaces a user read at `version`.
    pub fn replace_user_write(&self, u: &User, version: u64) -> Result<Write, StoreError> {
        let mut item = Self::user_item(u)?;
        item.version = version + 1;
        Ok(put(Table::Users, item, Cond::Version(version)))
    }

    // ---- login throttle ---------------------------------------------------------------------

    fn throttle_pk(tenant: &str, username: &str) -> String {
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

    /// Count one more failed login for (tenant, username), atomically across instances.
    pub async fn record_login_failure(
        &self,
        tenant: &str,
        username: &str,
        window: i64,
    ) -> Result<(), StoreError> {
        let pk = Self::throttle_pk(tenant, username);
        for _ in 0..8 {
            let now = self.now();
            let (value, cond, version) = match self.login_failures(tenant, username).await? {
                Some(v) => (
                    LoginFailures {
                        count: v.value.count + 1,
                        first_at: v.value.first_at,
                    },
                    Cond::Version(v.version),
                    v.version + 1,
                ),
                None => (
                    LoginFailures {
                        count: 1,
                        first_at: now,
                    },
                    Cond::Absent,
                    1,
                ),
            };
            let mut item =
                Item::new(pk.clone(), "login", to_map(&value)?).expiring_at(value.first_at + window);
            item.version = version;
            match self.kv().put(Table::Tokens, item, cond).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable("login-failure counter contended".into()))
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

    pub async fn create_session(&self, hash: &str, s: &Session) -> Result<(), StoreError> {
        let item = Item::new(session_pk(hash), "session", to_map(s)?)
            .with_index(format!("sessions#{}", s.sub), format!("{}#{hash}", s.created_at))
            .expiring_at(s.expires_at);
        self.kv().put(Table::Tokens, item, Cond::Absent).await
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

    // ---- codes ------------------------------------------------------------------------------

    pub fn create_code_write(&self, hash: &str, c: &AuthCode, expires_at: i64) -> Result<Write, StoreError> {
        Ok(put(
            Table::Tokens,
            Item::new(format!("code#{hash}"), "code", to_map(c)?).expiring_at(expires_at),
            Cond::Absent,
        ))
    }

    /// Take the code: of several concurrent callers exactly one gets it.
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

    // ---- consents ---------------------------------------------------------------------------

    pub async fn consent(
        &self,
        tenant: &str,
        sub: &str,
        client_id: &str,
    ) -> Result<Option<Versioned<Consent>>, StoreError> {
        self.get_as(Table::Grants, &consent_pk(tenant, sub), client_id)
            .await
    }

    /// The write that stores `c`: created if `version` is `None`, else replacing that version.
    pub fn put_consent_write(&self, c: &Consent, version: Option<u64>) -> Result<Write, StoreError> {
        let mut item = Item::new(consent_pk(&c.tenant, &c.sub), c.client_id.clone(), to_map(c)?);
        let cond = match version {
            Some(v) => {
                item.version = v + 1;
                Cond::Version(v)
            }
            None => Cond::Absent,
        };
        Ok(put(Table::Grants, item, cond))
    }

    pub fn delete_consent_write(&self, tenant: &str, sub: &str, client_id: &str) -> Write {
        Write::Delete {
            table: Table::Grants,
            pk: consent_pk(tenant, sub),
            sk: client_id.into(),
            cond: Cond::None,
        }
    }

    /// Every consent of a user (one per client).
    pub async fn consents_of(&self, tenant: &str, sub: &str) -> Result<Vec<Consent>, StoreError> {
        Ok(self
            .query_all::<Consent>(Table::Grants, Index::Primary, &consent_pk(tenant, sub), 1000)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    // ---- grants -----------------------------------------------------------------------------

    fn grant_item(g: &Grant) -> Result<Item, StoreError> {
        Ok(Item::new(grant_pk(&g.gid), "grant", to_map(g)?)
            .with_index(format!("grants#{}", g.sub), format!("{}#{}", g.client_id, g.gid))
            .expiring_at(g.expires_at))
    }

    pub fn create_grant_write(&self, g: &Grant) -> Result<Write, StoreError> {
        Ok(put(Table::Grants, Self::grant_item(g)?, Cond::Absent))
    }

    /// The write that replaces a grant read at `version` (e.g. its `last_used`); fails if the
    /// grant was revoked meanwhile.
    pub fn touch_grant_write(&self, g: &Grant, version: u64) -> Result<Write, StoreError> {
        let mut item = Self::grant_item(g)?;
        item.version = version + 1;
        Ok(put(Table::Grants, item, Cond::Version(version)))
    }

    pub async fn grant(&self, gid: &str) -> Result<Option<Versioned<Grant>>, StoreError> {
        if gid.is_empty() || gid.len() > 64 {
            return Ok(None);
        }
        self.get_as(Table::Grants, &grant_pk(gid), "grant").await
    }

    pub fn delete_grant_write(&self, gid: &str) -> Write {
        Write::Delete {
            table: Table::Grants,
            pk: grant_pk(gid),
            sk: "grant".into(),
            cond: Cond::None,
        }
    }

    /// A user's grants (all clients).
    pub async fn grants_of(&self, sub: &str) -> Result<Vec<Grant>, StoreError> {
        Ok(self
            .query_all::<Grant>(Table::Grants, Index::ByParent, &format!("grants#{sub}"), 10_000)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    // ---- refresh tokens ---------------------------------------------------------------------

    fn rt_item(hash: &str, rt: &RefreshToken) -> Result<Item, StoreError> {
        Ok(Item::new(format!("rt#{hash}"), "rt", to_map(rt)?).expiring_at(rt.expires_at))
    }

    pub fn create_refresh_write(&self, hash: &str, rt: &RefreshToken) -> Result<Write, StoreError> {
        Ok(put(Table::Grants, Self::rt_item(hash, rt)?, Cond::Absent))
    }

    /// The write that marks a refresh token read at `version` as used.
    pub fn rotate_refresh_write(
        &self,
        hash: &str,
        rt: &RefreshToken,
        version: u64,
    ) -> Result<Write, StoreError> {
        let mut used = rt.clone();
        used.rotated = true;
        let mut item = Self::rt_item(hash, &used)?;
        item.version = version + 1;
        Ok(put(Table::Grants, item, Cond::Version(version)))
    }

    pub async fn refresh_token(&self, hash: &str) -> Result<Option<Versioned<RefreshToken>>, StoreError> {
        self.get_as(Table::Grants, &format!("rt#{hash}"), "rt").await
    }
}
