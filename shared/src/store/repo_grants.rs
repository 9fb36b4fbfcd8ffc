//! Typed access for what users grant: consents, grants, delegations, "took this app back"
//! markers and refresh tokens (the key layouts are in [`super::repo_users`]'s table), with the
//! condition checks that keep the revocation cascades whole.

use super::repo::{Repo, Versioned, to_map};
use super::repo_users::*;
use super::{Cond, Index, Item, StoreError, Table, Write};

impl Repo {
    // ---- consents ---------------------------------------------------------------------------

    pub async fn consent(
        &self,
        tenant: &str,
        sub: &str,
        client_id: &str,
    ) -> Result<Option<Versioned<Consent>>, StoreError> {
        // Ids are short; a stranger's kilobyte of "client id" is no key (DynamoDB would refuse it).
        if client_id.is_empty() || client_id.len() > 256 || sub.len() > 128 {
            return Ok(None);
        }
        self.get_as(Table::Grants, &consent_pk(tenant, sub), client_id)
            .await
    }

    /// The writes that store `c` (created if `version` is `None`, else replacing that version)
    /// and list it under its client.
    pub fn put_consent_writes(&self, c: &Consent, version: Option<u64>) -> Result<Vec<Write>, StoreError> {
        let mut item = Item::new(consent_pk(&c.tenant, &c.sub), c.client_id.clone(), to_map(c)?);
        let cond = match version {
            Some(v) => {
                item.version = v + 1;
                Cond::Version(v)
            }
            None => Cond::Absent,
        };
        let pointer = Item::new(
            client_consents_pk(&c.tenant, &c.client_id),
            format!("{}#{}", c.tenant, c.sub),
            to_map(&ConsentRef {
                tenant: c.tenant.clone(),
                sub: c.sub.clone(),
            })?,
        );
        Ok(vec![
            put(Table::Grants, item, cond),
            put(Table::Grants, pointer, Cond::None),
        ])
    }

    /// The writes that delete a consent and its pointer.
    pub fn delete_consent_writes(&self, tenant: &str, sub: &str, client_id: &str) -> [Write; 2] {
        [
            Write::Delete {
                table: Table::Grants,
                pk: consent_pk(tenant, sub),
                sk: client_id.into(),
                cond: Cond::None,
            },
            Write::Delete {
                table: Table::Grants,
                pk: client_consents_pk(tenant, client_id),
                sk: format!("{tenant}#{sub}"),
                cond: Cond::None,
            },
        ]
    }

    /// Every consent of a user (one per client).
    pub async fn consents_of(&self, tenant: &str, sub: &str) -> Result<Vec<Consent>, StoreError> {
        Ok(self
            .query_all::<Consent>(Table::Grants, Index::Primary, &consent_pk(tenant, sub))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Every (tenant, user) that consented to `tenant`'s client (strongly consistent).
    pub async fn consents_of_client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Vec<ConsentRef>, StoreError> {
        Ok(self
            .query_all::<ConsentRef>(
                Table::Grants,
                Index::Primary,
                &client_consents_pk(tenant, client_id),
            )
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// [`Repo::consents_of_client`], at most `max` of them, and whether there are more.
    pub async fn consents_of_client_up_to(
        &self,
        tenant: &str,
        client_id: &str,
        max: usize,
    ) -> Result<(Vec<ConsentRef>, bool), StoreError> {
        self.query_up_to(Table::Grants, &client_consents_pk(tenant, client_id), max)
            .await
    }

    // ---- grants -----------------------------------------------------------------------------

    fn grant_item(g: &Grant) -> Result<Item, StoreError> {
        Ok(Item::new(grants_pk(&g.sub), g.gid.clone(), to_map(g)?).expiring_at(g.expires_at))
    }

    /// The writes that create a grant and list it under its client.
    pub fn create_grant_writes(&self, g: &Grant) -> Result<[Write; 2], StoreError> {
        let pointer = Item::new(
            client_grants_pk(&g.tenant, &g.client_id),
            format!("{}#{}", g.sub, g.gid),
            to_map(&g.reference())?,
        )
        .expiring_at(g.expires_at);
        Ok([
            put(Table::Grants, Self::grant_item(g)?, Cond::Absent),
            put(Table::Grants, pointer, Cond::None),
        ])
    }

    /// The write that replaces a grant read at `version` (e.g. its `last_used`); fails if the
    /// grant was revoked meanwhile.
    pub fn touch_grant_write(&self, g: &Grant, version: u64) -> Result<Write, StoreError> {
        let mut item = Self::grant_item(g)?;
        item.version = version + 1;
        Ok(put(Table::Grants, item, Cond::Version(version)))
    }

    pub async fn grant(&self, sub: &str, gid: &str) -> Result<Option<Versioned<Grant>>, StoreError> {
        if sub.is_empty() || sub.len() > 128 || gid.is_empty() || gid.len() > 64 {
            return Ok(None);
        }
        self.get_as(Table::Grants, &grants_pk(sub), gid).await
    }

    /// The writes that delete a grant (ending its refresh tokens and, at introspection, its
    /// access tokens) and its pointer.
    pub fn delete_grant_writes(&self, g: &GrantRef) -> [Write; 2] {
        [
            Write::Delete {
                table: Table::Grants,
                pk: grants_pk(&g.sub),
                sk: g.gid.clone(),
                cond: Cond::None,
            },
            Write::Delete {
                table: Table::Grants,
                pk: client_grants_pk(&g.tenant, &g.client_id),
                sk: format!("{}#{}", g.sub, g.gid),
                cond: Cond::None,
            },
        ]
    }

    /// Every live grant of a user, all clients (strongly consistent).
    pub async fn grants_of(&self, sub: &str) -> Result<Vec<Grant>, StoreError> {
        Ok(self
            .query_all::<Grant>(Table::Grants, Index::Primary, &grants_pk(sub))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Every live grant of `tenant`'s client, all users (strongly consistent).
    pub async fn grants_of_client(&self, tenant: &str, client_id: &str) -> Result<Vec<GrantRef>, StoreError> {
        Ok(self
            .query_all::<GrantRef>(
                Table::Grants,
                Index::Primary,
                &client_grants_pk(tenant, client_id),
            )
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// [`Repo::grants_of_client`], at most `max` of them, and whether there are more.
    pub async fn grants_of_client_up_to(
        &self,
        tenant: &str,
        client_id: &str,
        max: usize,
    ) -> Result<(Vec<GrantRef>, bool), StoreError> {
        self.query_up_to(Table::Grants, &client_grants_pk(tenant, client_id), max)
            .await
    }

    // ---- federated identities --------------------------------------------------------------

    /// The user linked to `subject` at `issuer` in `tenant`.
    pub async fn federated_link(
        &self,
        tenant: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<FederatedLink>, StoreError> {
        Ok(self
            .get_as::<FederatedLink>(Table::Users, &fedlink_pk(tenant, issuer, subject), "link")
            .await?
            .map(|v| v.value))
    }

    /// The write that links a subject to a user; fails (`Conflict`) if that subject is linked
    /// already.
    pub fn create_link_write(&self, l: &FederatedLink) -> Result<Write, StoreError> {
        let item = Item::new(fedlink_pk(&l.tenant, &l.issuer, &l.subject), "link", to_map(l)?).with_index(
            format!("fedlinks#{}", l.sub),
            format!("{}#{}", l.tenant, l.issuer),
        );
        Ok(put(Table::Users, item, Cond::Absent))
    }

    /// A user's links to subjects at identity providers (on the index: it may lag a link made
    /// a moment ago, which a later sweep or the link's own check — its user must exist — covers).
    pub async fn links_of(&self, sub: &str) -> Result<Vec<FederatedLink>, StoreError> {
        Ok(self
            .query_all::<FederatedLink>(Table::Users, Index::ByParent, &format!("fedlinks#{sub}"))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    pub fn delete_link_write(&self, l: &FederatedLink) -> Write {
        Write::Delete {
            table: Table::Users,
            pk: fedlink_pk(&l.tenant, &l.issuer, &l.subject),
            sk: "link".into(),
            cond: Cond::None,
        }
    }

    // ---- delegations (agents acting for users) ----------------------------------------------

    pub async fn delegation(
        &self,
        sub: &str,
        app: &str,
        agent: &str,
    ) -> Result<Option<Versioned<Delegation>>, StoreError> {
        if sub.is_empty() || sub.len() > 128 || app.len() > 256 || agent.len() > 256 {
            return Ok(None);
        }
        self.get_as(Table::Grants, &delegations_pk(sub), &format!("{app}#{agent}"))
            .await
    }

    /// The write that stores `d` (created if `version` is `None`, else replacing that version).
    pub fn put_delegation_write(&self, d: &Delegation, version: Option<u64>) -> Result<Write, StoreError> {
        let mut item = Item::new(
            delegations_pk(&d.sub),
            format!("{}#{}", d.app, d.agent),
            to_map(d)?,
        );
        let cond = match version {
            Some(v) => {
                item.version = v + 1;
                Cond::Version(v)
            }
            None => Cond::Absent,
        };
        Ok(put(Table::Grants, item, cond))
    }

    pub fn delete_delegation_write(&self, sub: &str, app: &str, agent: &str) -> Write {
        Write::Delete {
            table: Table::Grants,
            pk: delegations_pk(sub),
            sk: format!("{app}#{agent}"),
            cond: Cond::None,
        }
    }

    /// Every agent that acted for a user, all apps (strongly consistent).
    pub async fn delegations_of(&self, sub: &str) -> Result<Vec<Delegation>, StoreError> {
        Ok(self
            .query_all::<Delegation>(Table::Grants, Index::Primary, &delegations_pk(sub))
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    // ---- "the user took this app back" markers -----------------------------------------------

    /// When the user last revoked `client_id` on the account page (within the last few
    /// minutes), with a version that changes on every revocation.
    pub async fn app_revoked(
        &self,
        tenant: &str,
        sub: &str,
        client_id: &str,
    ) -> Result<Option<Versioned<AppRevoked>>, StoreError> {
        self.get_as(Table::Tokens, &app_revoked_pk(tenant, sub, client_id), "revoked")
            .await
    }

    /// The write that records a revocation at `at`, kept until `expires_at` (longer than a
    /// code lives: codes issued before it are refused).
    pub fn app_revoked_write(
        &self,
        tenant: &str,
        sub: &str,
        client_id: &str,
        at: i64,
        expires_at: i64,
    ) -> Result<Write, StoreError> {
        let mut item = Item::new(
            app_revoked_pk(tenant, sub, client_id),
            "revoked",
            to_map(&AppRevoked { at })?,
        )
        .expiring_at(expires_at);
        // A fresh version each time, so that a check on the version read fails after any
        // later revocation.
        item.version = rand::random::<u64>() | 1;
        Ok(put(Table::Tokens, item, Cond::None))
    }

    /// A transaction step that fails if the marker changed since it was read (`None`: it was
    /// absent).
    pub fn app_revoked_unchanged_check(
        &self,
        tenant: &str,
        sub: &str,
        client_id: &str,
        version: Option<u64>,
    ) -> Write {
        Write::Check {
            table: Table::Tokens,
            pk: app_revoked_pk(tenant, sub, client_id),
            sk: "revoked".into(),
            cond: version.map_or(Cond::Absent, Cond::Version),
        }
    }

    // ---- the condition checks that keep cascades whole ----------------------------------------

    /// Fail a transaction unless the user is still as it was read (a deactivation moves its
    /// version), so that nothing is issued to a user deactivated meanwhile.
    pub fn user_unchanged_check(&self, sub: &str, version: u64) -> Write {
        Write::Check {
            table: Table::Users,
            pk: user_pk(sub),
            sk: "user".into(),
            cond: Cond::Version(version),
        }
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
        at: i64,
        successor: Option<String>,
    ) -> Result<Write, StoreError> {
        let mut used = rt.clone();
        used.rotated = true;
        used.rotated_at = at;
        used.successor = successor;
        let mut item = Self::rt_item(hash, &used)?;
        item.version = version + 1;
        Ok(put(Table::Grants, item, Cond::Version(version)))
    }

    /// The write that removes a refresh token nobody was given (a rotation that lost).
    pub fn delete_refresh_write(&self, hash: &str) -> Write {
        Write::Delete {
            table: Table::Grants,
            pk: format!("rt#{hash}"),
            sk: "rt".into(),
            cond: Cond::None,
        }
    }

    pub async fn refresh_token(&self, hash: &str) -> Result<Option<Versioned<RefreshToken>>, StoreError> {
        self.get_as(Table::Grants, &format!("rt#{hash}"), "rt").await
    }
}
