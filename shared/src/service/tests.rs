//! Service-level tests over the embedded store and the local signer (no server): the revocation
//! cascades and the RFC 7592 update rules, including what a lagging secondary index would hide.
//! The HTTP-level versions of these rules run in `tests/e2e` on both backends.

use crate::domain::id::{ClientId, Subject};
use crate::service::testing::tid;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::client::Origin;
use crate::domain::tenant::DcrPolicy;
use crate::error::ErrorCode;
use crate::keys::local::LocalSigner;
use crate::secret::{Secret, random_id};
use crate::service::{App, clients, tenants, users};
use crate::store::embedded::EmbeddedStore;
use crate::store::repo_users::{Consent, Grant};
use crate::store::{Index, Kv, Page, StoreError, Table, Write};

/// A store whose secondary index has not caught up yet (as a DynamoDB GSI may lag for a moment):
/// index queries see nothing; everything else is the embedded store.
struct LaggingIndex(EmbeddedStore);

#[async_trait]
impl Kv for LaggingIndex {
    async fn get(&self, t: Table, pk: &str, sk: &str) -> Result<Option<crate::store::Item>, StoreError> {
        self.0.get(t, pk, sk).await
    }
    async fn put(
        &self,
        t: Table,
        item: crate::store::Item,
        cond: crate::store::Cond,
    ) -> Result<(), StoreError> {
        self.0.put(t, item, cond).await
    }
    async fn delete(
        &self,
        t: Table,
        pk: &str,
        sk: &str,
        cond: crate::store::Cond,
    ) -> Result<Option<crate::store::Item>, StoreError> {
        self.0.delete(t, pk, sk, cond).await
    }
    async fn query(
        &self,
        t: Table,
        index: Index,
        partition: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        match index {
            Index::ByParent => Ok(Page::default()),
            Index::Primary | Index::PrimaryDescending => {
                self.0.query(t, index, partition, cursor, limit).await
            }
        }
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.0.transact(writes).await
    }
    fn cursor_after(&self, index: Index, item: &crate::store::Item) -> Result<String, StoreError> {
        self.0.cursor_after(index, item)
    }
}

struct Harness {
    app: Arc<App>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at(1_800_000_000);
    let store = EmbeddedStore::open(&dir.path().join("bulwark.db"), clock.clone()).expect("store");
    let config = Config::new("http://127.0.0.1:8080").expect("config");
    let signer = LocalSigner::open(dir.path(), clock.clone(), config.max_access_token_ttl).expect("signer");
    let app = App::new(
        config,
        Arc::new(LaggingIndex(store)),
        Arc::new(signer),
        clock.clone(),
    );
    Harness {
        app,
        clock,
        _dir: dir,
    }
}

/// The audit event a test's direct write of a client comes with (`Repo::commit` requires one).
fn test_audit(app: &App, client_id: &str) -> Write {
    app.repo
        .audit_write(
            "acme",
            crate::domain::audit::AuditKind::ClientUpdated,
            "test",
            client_id,
        )
        .unwrap()
}

async fn tenant(app: &App, name: &str) {
    tenants::create(app, name, DcrPolicy::Open, None)
        .await
        .expect("tenant");
    tenants::add_scope(app, &tid(name), "api:read", "Read", None)
        .await
        .expect("scope");
    tenants::add_scope(app, &tid(name), "api:write", "Write", None)
        .await
        .expect("scope");
}

async fn user(app: &App, tenant: &str, name: &str) -> String {
    (users::create(
        app,
        users::NewUser {
            tenant,
            username: name,
            password: &Secret::new("correct horse battery staple"),
            email: None,
            name: None,
            admin: false,
        },
    )
    .await
    .expect("user")
    .sub)
        .into()
}

fn code_client_metadata() -> serde_json::Value {
    json!({
        "client_name": "Notes",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://notes.example/cb"],
        "token_endpoint_auth_method": "none",
        "scope": "openid api:read",
    })
}

/// `n` grants of `sub` for `client_id`, written as a code exchange writes them (under the
/// user's grant epoch as it is now).
async fn grants(app: &App, tenant: &str, sub: &str, client_id: &str, n: usize) -> Vec<String> {
    let mut gids = Vec::new();
    let grant_epoch = app
        .repo
        .user(sub)
        .await
        .unwrap()
        .map_or(0, |u| u.value.grant_epoch);
    for _ in 0..n {
        let g = Grant {
            gid: random_id(16),
            tenant: tid(tenant),
            sub: sub.into(),
            client_id: client_id.into(),
            scope: "api:read".into(),
            auth_time: app.now(),
            created_at: app.now(),
            last_used: app.now(),
            expires_at: app.now() + 86_400,
            user_epoch: None,
            grant_epoch,
            resources: Vec::new(),
        };
        app.repo
            .commit(app.repo.create_grant_writes(&g).unwrap().into())
            .await
            .expect("grant");
        gids.push(g.gid);
    }
    gids
}

async fn consent(app: &App, tenant: &str, sub: &str, client_id: &str) {
    let c = Consent {
        tenant: tid(tenant),
        sub: sub.into(),
        client_id: client_id.into(),
        scope: "api:read".into(),
        granted_at: app.now(),
        updated_at: app.now(),
        client_epoch: 0,
        resources: None,
        user_epoch: 0,
    };
    app.repo
        .commit(app.repo.put_consent_writes(&c, None).unwrap())
        .await
        .expect("consent");
}

async fn live(app: &App, sub: &str, gids: &[String]) -> usize {
    let mut n = 0;
    for g in gids {
        if app.repo.grant(sub, g).await.unwrap().is_some() {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn deactivating_a_user_ends_every_grant_across_pages_even_when_the_index_lags() {
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    let alice = user(app, "acme", "alice").await;
    let bob = user(app, "acme", "bob").await;
    let reg = clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
        .await
        .unwrap();
    // More than one page of the listing (pages are 100 items).
    let alices = grants(app, "acme", &alice, &reg.client.client_id, 230).await;
    let bobs = grants(app, "acme", &bob, &reg.client.client_id, 3).await;
    users::deactivate(app, &tid("acme"), "alice").await.unwrap();
    assert_eq!(
        live(app, &alice, &alices).await,
        0,
        "every grant of the user ended"
    );
    assert!(app.repo.grants_of(&alice).await.unwrap().is_empty());
    assert_eq!(live(app, &bob, &bobs).await, 3, "another user's grants stand");
}

#[tokio::test]
async fn deleting_a_client_ends_its_grants_and_consents_even_when_the_index_lags() {
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    let alice = user(app, "acme", "alice").await;
    let bob = user(app, "acme", "bob").await;
    let doomed = clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
        .await
        .unwrap()
        .client;
    let other = clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
        .await
        .unwrap()
        .client;
    let a = grants(app, "acme", &alice, &doomed.client_id, 120).await;
    let b = grants(app, "acme", &bob, &doomed.client_id, 2).await;
    let kept = grants(app, "acme", &alice, &other.client_id, 2).await;
    for sub in [&alice, &bob] {
        consent(app, "acme", sub, &doomed.client_id).await;
        consent(app, "acme", sub, &other.client_id).await;
    }
    let current = app.repo.client(&doomed.client_id).await.unwrap().unwrap();
    clients::delete(app, current, "cli").await.unwrap();
    assert_eq!(live(app, &alice, &a).await + live(app, &bob, &b).await, 0);
    for sub in [&alice, &bob] {
        assert!(
            app.repo
                .consent("acme", sub, &doomed.client_id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            app.repo
                .consent("acme", sub, &other.client_id)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        app.repo
            .grants_of_client("acme", &doomed.client_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        app.repo
            .consents_of_client("acme", &doomed.client_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(live(app, &alice, &kept).await, 2, "another client's grants stand");
}

/// A disabled client is stored apart: nothing finds it, and the existence check of a code
/// redemption or refresh that authenticated it a moment before fails; its grants and consents
/// end (even when the index lags), and enabling it brings none back.
#[tokio::test]
async fn disabling_a_client_hides_it_from_every_path_and_ends_what_it_holds() {
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    let alice = user(app, "acme", "alice").await;
    let c = clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
        .await
        .unwrap()
        .client;
    let gids = grants(app, "acme", &alice, &c.client_id, 30).await;
    consent(app, "acme", &alice, &c.client_id).await;
    let p = crate::service::admin::patch_client(
        app,
        &tid("acme"),
        &c.client_id,
        None,
        &serde_json::json!({"disabled": true}),
        "test",
    )
    .await
    .unwrap();
    assert!(p.value.disabled);
    assert!(app.repo.client(&c.client_id).await.unwrap().is_none());
    assert!(
        app.repo
            .client_any(&c.client_id)
            .await
            .unwrap()
            .unwrap()
            .value
            .disabled
    );
    assert_eq!(
        app.repo.commit(vec![app.repo.client_exists_check(&c)]).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(live(app, &alice, &gids).await, 0);
    assert!(
        app.repo
            .consent("acme", &alice, &c.client_id)
            .await
            .unwrap()
            .is_none()
    );
    // Another tenant's admin finds nothing.
    tenant(app, "other").await;
    assert!(matches!(
        crate::service::admin::client(app, &tid("other"), &c.client_id).await,
        Err(tenants::AdminError::NotFound(_))
    ));
    // Enabled again: found again, with nothing of before.
    crate::service::admin::patch_client(
        app,
        &tid("acme"),
        &c.client_id,
        Some(p.version),
        &serde_json::json!({"disabled": false}),
        "test",
    )
    .await
    .unwrap();
    assert!(app.repo.client(&c.client_id).await.unwrap().is_some());
    assert!(
        app.repo
            .grants_of_client(c.tenant.as_str(), &c.client_id)
            .await
            .unwrap()
            .is_empty()
    );
    // A stale version loses.
    assert!(matches!(
        crate::service::admin::patch_client(
            app,
            &tid("acme"),
            &c.client_id,
            Some(p.version),
            &serde_json::json!({}),
            "test"
        )
        .await,
        Err(tenants::AdminError::Stale)
    ));
}

#[tokio::test]
async fn an_rfc7592_update_never_widens_and_never_moves_a_first_party_client() {
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    let reg = clients::register_dynamic(app, &tid("acme"), None, &code_client_metadata())
        .await
        .unwrap();
    assert_eq!(reg.client.origin, Origin::Dcr);
    let id = reg.client.client_id.clone();
    let token = reg
        .registration_token
        .expect("a DCR client gets a registration token");
    let update = |extra: serde_json::Value| {
        let mut body = code_client_metadata();
        body["client_id"] = json!(id);
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let current = || async {
        clients::authorize_management(app, &id, Some(&token))
            .await
            .unwrap()
    };
    for (extra, what) in [
        (json!({"scope": "openid api:read api:write"}), "a scope"),
        (
            json!({"grant_types": ["authorization_code", "refresh_token", "client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}),
            "a grant",
        ),
    ] {
        let err = clients::update(app, current().await, &update(extra))
            .await
            .unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::InvalidClientMetadata,
            "{what}: {}",
            err.description
        );
    }
    // Narrowing is fine.
    let c = clients::update(app, current().await, &update(json!({"scope": "api:read"})))
        .await
        .unwrap();
    assert_eq!(c.metadata.scope, "api:read");
    // ... and widening back is not.
    let err = clients::update(app, current().await, &update(json!({"scope": "openid api:read"})))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidClientMetadata);

    // A first-party client (an admin-only flag) cannot move its redirect URIs itself.
    let mut fp = current().await;
    fp.value.first_party = true;
    app.repo
        .commit(vec![
            app.repo.replace_client_write(&fp.value, fp.version).unwrap(),
            test_audit(app, &fp.value.client_id),
        ])
        .await
        .unwrap();
    let err = clients::update(
        app,
        current().await,
        &update(json!({"scope": "api:read", "redirect_uris": ["https://attacker.example/cb"]})),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidClientMetadata);
    assert!(err.description.contains("first-party"), "{}", err.description);
    let still = current().await.value;
    assert_eq!(still.metadata.redirect_uris, vec!["https://notes.example/cb"]);
    assert!(still.first_party);
}

#[tokio::test]
async fn operator_made_clients_have_no_registration_access_token() {
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    let reg = clients::create_by_admin(
        app,
        &tid("acme"),
        &code_client_metadata(),
        clients::AdminFields {
            first_party: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(reg.registration_token.is_none());
    assert!(reg.client.registration_token_hash.is_none());
    let body = clients::registration_response(app, &reg.client, reg.secret.as_ref(), None);
    assert!(body.get("registration_client_uri").is_none(), "{body}");
    // An operator client stored with a hash by an earlier version is still not self-managed.
    let mut legacy = app.repo.client(&reg.client.client_id).await.unwrap().unwrap();
    let t = crate::secret::generate();
    legacy.value.registration_token_hash = Some(t.hash().to_hex());
    app.repo
        .commit(vec![
            app.repo
                .replace_client_write(&legacy.value, legacy.version)
                .unwrap(),
            test_audit(app, &legacy.value.client_id),
        ])
        .await
        .unwrap();
    let err = clients::authorize_management(app, &reg.client.client_id, Some(&t))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidToken);
}

#[tokio::test]
async fn a_password_change_or_deactivation_ends_sessions_even_when_the_index_lags() {
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    user(app, "acme", "alice").await;
    let password = Secret::new("correct horse battery staple");
    let alice = users::login(app, &tid("acme"), "alice", &password).await.unwrap();
    let (cookie, _) = users::start_session(app, &alice).await.unwrap();
    assert!(
        users::session(app, &tid("acme"), Some(&cookie))
            .await
            .unwrap()
            .is_some()
    );
    // The sweep lists sessions through the index, which sees nothing here: the user's session
    // epoch still ends the session.
    users::set_password(
        app,
        &tid("acme"),
        "alice",
        &Secret::new("another long password"),
        users::SignOut::Sessions,
    )
    .await
    .unwrap();
    assert!(
        users::session(app, &tid("acme"), Some(&cookie))
            .await
            .unwrap()
            .is_none()
    );
    // A login after the change works at once (same second included).
    let alice = users::login(app, &tid("acme"), "alice", &Secret::new("another long password"))
        .await
        .unwrap();
    let (cookie, _) = users::start_session(app, &alice).await.unwrap();
    assert!(
        users::session(app, &tid("acme"), Some(&cookie))
            .await
            .unwrap()
            .is_some()
    );
    users::deactivate(app, &tid("acme"), "alice").await.unwrap();
    assert!(
        users::session(app, &tid("acme"), Some(&cookie))
            .await
            .unwrap()
            .is_none()
    );
}

// ---- agents (RFC 8693 token exchange) ------------------------------------------------------

mod agents {
    use super::*;
    use crate::domain::claims::{UserGrant, user_claims};
    use crate::domain::params::Params;
    use crate::domain::scope::ScopeSet;
    use crate::service::tokens::{ACCESS_TOKEN_TYP, live_claims};
    use crate::service::{account, exchange};

    const TE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

    struct World {
        app_id: String,
        sub: String,
        gid: String,
        subject: String,
    }

    /// An app, a user who granted it `scope`, and a user access token from that grant.
    async fn world(app: &App, scope: &str) -> World {
        tenant(app, "acme").await;
        let sub = user(app, "acme", "alice").await;
        let reg = clients::create_by_admin(app, &tid("acme"), &app_metadata(), Default::default())
            .await
            .unwrap();
        let app_id = reg.client.client_id;
        let gid = grants(app, "acme", &sub, &app_id, 1).await.remove(0);
        let mut g = app.repo.grant(&sub, &gid).await.unwrap().unwrap();
        g.value.scope = scope.into();
        app.repo
            .commit(vec![app.repo.touch_grant_write(&g.value, g.version).unwrap()])
            .await
            .unwrap();
        let c = Consent {
            tenant: tid("acme"),
            sub: sub.clone().into(),
            client_id: app_id.clone(),
            scope: scope.into(),
            granted_at: app.now(),
            updated_at: app.now(),
            client_epoch: 0,
            resources: None,
            user_epoch: 0,
        };
        app.repo
            .commit(app.repo.put_consent_writes(&c, None).unwrap())
            .await
            .unwrap();
        let subject = user_token(app, &sub, &app_id, &gid, scope).await;
        World {
            app_id: app_id.into(),
            sub,
            gid,
            subject,
        }
    }

    fn app_metadata() -> serde_json::Value {
        let mut m = code_client_metadata();
        m["scope"] = json!("openid api:read api:write agent:act");
        m
    }

    async fn user_token(app: &App, sub: &str, client_id: &str, gid: &str, scope: &str) -> String {
        let scope = ScopeSet::parse(scope).unwrap();
        let claims = user_claims(UserGrant {
            issuer: &app.config.issuer,
            tenant: "acme",
            client_id,
            sub,
            gid,
            auth_time: app.now(),
            scope: &scope,
            audience: "https://api.acme.example",
            ttl: 600,
            now: app.now(),
            jti: random_id(16),
        });
        app.signer
            .sign_jwt(ACCESS_TOKEN_TYP, &serde_json::to_vec(&claims).unwrap())
            .await
            .unwrap()
    }

    async fn agent(app: &App, of: &str, name: &str) -> crate::domain::client::Client {
        clients::create_by_admin(
            app,
            &tid("acme"),
            &json!({"client_name": name, "grant_types": [TE], "scope": "api:read openid"}),
            clients::AdminFields {
                agent_of: Some(of),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .client
    }

    /// The user consents (again) to the app as it is now (its agents created meanwhile move
    /// its consent epoch).
    async fn reconsent(app: &App, w: &World, scope: &str) {
        let epoch = app
            .repo
            .client(&w.app_id)
            .await
            .unwrap()
            .unwrap()
            .value
            .consent_epoch;
        let current = app.repo.consent("acme", &w.sub, &w.app_id).await.unwrap();
        let user_epoch = app.repo.user(&w.sub).await.unwrap().unwrap().value.grant_epoch;
        let c = Consent {
            tenant: tid("acme"),
            sub: w.sub.clone().into(),
            client_id: w.app_id.clone().into(),
            scope: scope.into(),
            granted_at: app.now(),
            updated_at: app.now(),
            client_epoch: epoch,
            resources: None,
            user_epoch,
        };
        app.repo
            .commit(
                app.repo
                    .put_consent_writes(&c, current.map(|v| v.version))
                    .unwrap(),
            )
            .await
            .unwrap();
    }

    async fn exchange(
        app: &App,
        agent: &crate::domain::client::Client,
        subject: &str,
    ) -> Result<String, ErrorCode> {
        let body = format!("grant_type={TE}&subject_token={subject}&subject_token_type={AT}");
        exchange::token_exchange(
            app,
            &crate::service::testing::req(agent, &Params::parse(body.as_bytes()).unwrap()),
        )
        .await
        .map(|r| r.access_token)
        .map_err(|e| e.code)
    }

    async fn is_live(app: &App, token: &str) -> bool {
        live_claims(app, token, Some("acme")).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn a_delegated_token_names_the_agent_and_dies_with_stop_until_the_user_consents_again() {
        let h = harness();
        let app = &h.app;
        let w = world(app, "openid api:read api:write agent:act").await;
        let bot = agent(app, &w.app_id, "Report Bot").await;
        let other = agent(app, &w.app_id, "Mail Bot").await;
        // Agents made after the user's consent do not act until the user has seen them.
        assert_eq!(
            exchange(app, &bot, &w.subject).await,
            Err(ErrorCode::InvalidRequest)
        );
        reconsent(app, &w, "openid api:read api:write agent:act").await;
        let t = exchange(app, &bot, &w.subject).await.unwrap();
        let live = live_claims(app, &t, Some("acme")).await.unwrap().unwrap();
        let c = live.claims;
        assert_eq!(
            (c.sub.as_str(), c.client_id.as_str()),
            (w.sub.as_str(), bot.client_id.as_str())
        );
        assert_eq!(c.act.as_ref().unwrap().chain(), vec![bot.client_id.as_str()]);
        assert_eq!(
            (c.gid.as_deref(), c.scope.as_str()),
            (Some(w.gid.as_str()), "api:read openid")
        );
        let other_token = exchange(app, &other, &w.subject).await.unwrap();

        // A second agent of the same app may take the delegated token one step further.
        let chained = exchange(app, &other, &t).await.unwrap();
        let cc = live_claims(app, &chained, Some("acme"))
            .await
            .unwrap()
            .unwrap()
            .claims;
        assert_eq!(
            cc.act.unwrap().chain(),
            vec![other.client_id.as_str(), bot.client_id.as_str()]
        );

        assert!(
            account::stop_agent(
                app,
                &tid("acme"),
                &Subject::from(w.sub.as_str()),
                &ClientId::from(w.app_id.as_str()),
                &bot.client_id
            )
            .await
            .unwrap()
        );
        assert!(!is_live(app, &t).await, "Stop ends the agent's tokens at once");
        assert!(
            !is_live(app, &chained).await,
            "and what other agents derived from them"
        );
        assert!(is_live(app, &other_token).await, "another agent keeps working");
        assert_eq!(
            exchange(app, &bot, &w.subject).await,
            Err(ErrorCode::InvalidRequest)
        );
        let consent = app
            .repo
            .consent("acme", &w.sub, &w.app_id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !consent.value.scope.contains("agent:act"),
            "the next request for agents asks again"
        );

        // The user consents to agents again: the agent may act anew; its old tokens stay dead.
        let mut again = consent.value.clone();
        again.scope = "openid api:read api:write agent:act".into();
        app.repo
            .commit(
                app.repo
                    .put_consent_writes(&again, Some(consent.version))
                    .unwrap(),
            )
            .await
            .unwrap();
        let fresh = exchange(app, &bot, &w.subject).await.unwrap();
        assert!(is_live(app, &fresh).await);
        assert!(
            !is_live(app, &t).await,
            "a token from before the Stop never comes back"
        );
    }

    #[tokio::test]
    async fn only_the_apps_agents_act_and_never_beyond_three_hops_or_without_agent_act() {
        let h = harness();
        let app = &h.app;
        let w = world(app, "openid api:read agent:act").await;
        let stranger_app =
            clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
                .await
                .unwrap()
                .client;
        let foreign = agent(app, &stranger_app.client_id, "Elsewhere Bot").await;
        assert_eq!(
            exchange(app, &foreign, &w.subject).await,
            Err(ErrorCode::InvalidRequest)
        );

        let a = agent(app, &w.app_id, "A").await;
        let b = agent(app, &w.app_id, "B").await;
        let c = agent(app, &w.app_id, "C").await;
        let d = agent(app, &w.app_id, "D").await;
        reconsent(app, &w, "openid api:read agent:act").await;
        let t1 = exchange(app, &a, &w.subject).await.unwrap();
        let t2 = exchange(app, &b, &t1).await.unwrap();
        let t3 = exchange(app, &c, &t2).await.unwrap();
        assert_eq!(exchange(app, &d, &t3).await, Err(ErrorCode::InvalidRequest));

        // Without agent:act in the token, nobody acts.
        let plain = user_token(app, &w.sub, &w.app_id, &w.gid, "openid api:read").await;
        assert_eq!(exchange(app, &a, &plain).await, Err(ErrorCode::InvalidRequest));
        // An agent cannot be the app of another agent.
        let err = clients::create_by_admin(
            app,
            &tid("acme"),
            &json!({"client_name": "X", "grant_types": [TE]}),
            clients::AdminFields {
                agent_of: Some(&a.client_id),
                ..Default::default()
            },
        )
        .await
        .err()
        .unwrap();
        assert!(err.description.contains("agent-of"), "{}", err.description);
    }

    #[tokio::test]
    async fn deleting_the_agent_or_the_app_and_revoking_the_app_end_delegated_tokens() {
        let h = harness();
        let app = &h.app;
        let w = world(app, "api:read agent:act").await;
        let bot = agent(app, &w.app_id, "Bot").await;
        let keeper = agent(app, &w.app_id, "Keeper").await;
        reconsent(app, &w, "api:read agent:act").await;
        let t = exchange(app, &bot, &w.subject).await.unwrap();
        let k = exchange(app, &keeper, &w.subject).await.unwrap();
        let current = app.repo.client(&bot.client_id).await.unwrap().unwrap();
        clients::delete(app, current, "test").await.unwrap();
        assert!(!is_live(app, &t).await);
        assert!(is_live(app, &k).await);
        assert!(app.repo.agents_of(&w.app_id).await.unwrap() == vec![keeper.client_id.clone()]);

        assert!(
            account::revoke_app(
                app,
                &tid("acme"),
                &Subject::from(w.sub.as_str()),
                &ClientId::from(w.app_id.as_str()),
                &w.sub
            )
            .await
            .unwrap()
        );
        assert!(!is_live(app, &k).await);
        assert!(app.repo.delegations_of(&w.sub).await.unwrap().is_empty());
    }

    /// What a signed-in user holds: a browser session, and from one grant a refresh token, an
    /// access token and an agent's delegated token.
    struct Held {
        session: Secret,
        refresh: Secret,
        access: String,
        delegated: String,
    }

    async fn sign_in_everywhere(
        app: &App,
        w: &World,
        bot: &crate::domain::client::Client,
        password: &str,
    ) -> Held {
        let alice = users::login(app, &tid("acme"), "alice", &Secret::new(password))
            .await
            .unwrap();
        let (session, _) = users::start_session(app, &alice).await.unwrap();
        let gid = grants(app, "acme", &w.sub, &w.app_id, 1).await.remove(0);
        let mut g = app.repo.grant(&w.sub, &gid).await.unwrap().unwrap();
        g.value.scope = "openid api:read agent:act".into();
        app.repo
            .commit(vec![app.repo.touch_grant_write(&g.value, g.version).unwrap()])
            .await
            .unwrap();
        let refresh = crate::secret::generate();
        let rt = crate::service::grants::new_refresh(&g.value, app.now(), 86_400);
        app.repo
            .commit(vec![
                app.repo
                    .create_refresh_write(&refresh.hash().to_hex(), &rt)
                    .unwrap(),
            ])
            .await
            .unwrap();
        let access = user_token(app, &w.sub, &w.app_id, &gid, "openid api:read agent:act").await;
        let delegated = exchange(app, bot, &access).await.unwrap();
        Held {
            session,
            refresh,
            access,
            delegated,
        }
    }

    /// Whether a refresh with `rt` works: its next refresh token, or None for `invalid_grant`.
    async fn refreshed(app: &App, client_id: &str, rt: &Secret) -> Option<Secret> {
        let client = app.repo.client(client_id).await.unwrap().unwrap().value;
        let form = format!("grant_type=refresh_token&refresh_token={}", rt.expose());
        match crate::service::grants::refresh_token(
            app,
            &crate::service::testing::req(&client, &Params::parse(form.as_bytes()).unwrap()),
        )
        .await
        {
            Ok(r) => Some(Secret::new(r.refresh_token.unwrap())),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::InvalidGrant, "{}", e.description);
                None
            }
        }
    }

    async fn in_session(app: &App, cookie: &Secret) -> bool {
        users::session(app, &tid("acme"), Some(cookie))
            .await
            .unwrap()
            .is_some()
    }

    /// Everything `held` holds has ended; the user is still active.
    async fn all_ended(app: &App, w: &World, held: &Held) {
        assert!(!in_session(app, &held.session).await, "the session ended");
        assert!(
            refreshed(app, &w.app_id, &held.refresh).await.is_none(),
            "the refresh token is refused"
        );
        assert!(!is_live(app, &held.access).await, "the access token is inactive");
        assert!(
            crate::service::grants::userinfo(
                app,
                &Secret::new(held.access.clone()),
                crate::service::dpop::Presented::Bearer
            )
            .await
            .is_err(),
            "userinfo refuses the access token"
        );
        assert!(
            !is_live(app, &held.delegated).await,
            "the agent's delegated token is inactive"
        );
        assert!(app.repo.grants_of(&w.sub).await.unwrap().is_empty());
        assert!(app.repo.user(&w.sub).await.unwrap().unwrap().value.active);
    }

    /// "Sign out everywhere" with a password reset, through both service entries (the admin
    /// API and console's `admin::patch_user`, the CLI's `users::set_password`) and on its own:
    /// the user's sessions, refresh tokens, access tokens and agents' delegated tokens end, the
    /// user stays active and signs in again; another user's grants stand. A reset without it
    /// ends the user's sessions only.
    #[tokio::test]
    async fn a_password_reset_signs_out_everywhere_only_when_asked() {
        use crate::domain::audit::AuditKind;
        use crate::service::admin;
        let h = harness();
        let app = &h.app;
        let w = world(app, "openid api:read agent:act").await;
        let bot = agent(app, &w.app_id, "Bot").await;
        reconsent(app, &w, "openid api:read agent:act").await;
        let bob = user(app, "acme", "bob").await;
        let bobs = grants(app, "acme", &bob, &w.app_id, 2).await;
        let first = "correct horse battery staple";
        let (second, third) = ("a second long password", "a third long password");

        // A reset alone (CLI, no flag): the session ends; every token lives on.
        let held = sign_in_everywhere(app, &w, &bot, first).await;
        users::set_password(
            app,
            &tid("acme"),
            "alice",
            &Secret::new(second),
            users::SignOut::Sessions,
        )
        .await
        .unwrap();
        assert!(!in_session(app, &held.session).await);
        assert!(is_live(app, &held.access).await && is_live(app, &held.delegated).await);
        let next = refreshed(app, &w.app_id, &held.refresh)
            .await
            .expect("the refresh token still works");
        let held = Held {
            refresh: next,
            ..held
        };

        // The admin API's and the console's reset, signing out everywhere.
        let reset = |password: Option<&str>| admin::UserChanges {
            password: password.map(Secret::new),
            sign_out_everywhere: true,
            ..Default::default()
        };
        h.clock.advance(1);
        admin::patch_user(
            app,
            &tid("acme"),
            &Subject::from(w.sub.as_str()),
            None,
            reset(Some(third)),
            "admin-test",
        )
        .await
        .unwrap();
        all_ended(app, &w, &held).await;

        // The CLI's, with --sign-out-everywhere: she signed in with the new password, and
        // consented again (signing out everywhere ended her consents too).
        assert!(
            app.repo.consents_of("acme", &w.sub).await.unwrap().is_empty(),
            "consents ended"
        );
        h.clock.advance(1);
        reconsent(app, &w, "openid api:read agent:act").await;
        let held = sign_in_everywhere(app, &w, &bot, third).await;
        h.clock.advance(1);
        users::set_password(
            app,
            &tid("acme"),
            "alice",
            &Secret::new(first),
            users::SignOut::Everywhere,
        )
        .await
        .unwrap();
        all_ended(app, &w, &held).await;

        // On its own, without a new password: the password she has still signs her in.
        h.clock.advance(1);
        reconsent(app, &w, "openid api:read agent:act").await;
        let held = sign_in_everywhere(app, &w, &bot, first).await;
        h.clock.advance(1);
        admin::patch_user(
            app,
            &tid("acme"),
            &Subject::from(w.sub.as_str()),
            None,
            reset(None),
            "admin-test",
        )
        .await
        .unwrap();
        all_ended(app, &w, &held).await;
        h.clock.advance(1);
        reconsent(app, &w, "openid api:read agent:act").await;
        sign_in_everywhere(app, &w, &bot, first).await;

        assert_eq!(live(app, &bob, &bobs).await, 2, "another user's grants stand");

        // A grant the cascade did not reach (written back here as it stood before the sign-out,
        // as if the sweep had failed midway, or a request in flight had written it after the
        // cascade's listing) is dead all the same: it carries the user's earlier grant epoch.
        let epoch = app.repo.user(&w.sub).await.unwrap().unwrap().value.grant_epoch;
        assert_eq!(epoch, 3, "three sign-outs everywhere");
        let g = Grant {
            gid: random_id(16),
            tenant: tid("acme"),
            sub: w.sub.clone().into(),
            client_id: w.app_id.clone().into(),
            scope: "openid api:read".into(),
            auth_time: app.now(),
            created_at: app.now(),
            last_used: app.now(),
            expires_at: app.now() + 86_400,
            user_epoch: None,
            grant_epoch: epoch - 1,
            resources: Vec::new(),
        };
        app.repo
            .commit(app.repo.create_grant_writes(&g).unwrap().into())
            .await
            .unwrap();
        let leftover = crate::secret::generate();
        let rt = crate::service::grants::new_refresh(&g, app.now(), 86_400);
        app.repo
            .commit(vec![
                app.repo
                    .create_refresh_write(&leftover.hash().to_hex(), &rt)
                    .unwrap(),
            ])
            .await
            .unwrap();
        assert!(
            refreshed(app, &w.app_id, &leftover).await.is_none(),
            "the leftover grant is dead"
        );
        let at = user_token(app, &w.sub, &w.app_id, &g.gid, "openid api:read").await;
        assert!(!is_live(app, &at).await, "and its access tokens");
        // So is a consent an approval in flight wrote under the earlier epoch: the app's agents
        // do not act on it.
        let current = app.repo.consent("acme", &w.sub, &w.app_id).await.unwrap();
        let mut stale = current.clone().unwrap().value;
        stale.user_epoch = epoch - 1;
        app.repo
            .commit(
                app.repo
                    .put_consent_writes(&stale, current.map(|v| v.version))
                    .unwrap(),
            )
            .await
            .unwrap();
        let fresh = grants(app, "acme", &w.sub, &w.app_id, 1).await.remove(0);
        let at_now = user_token(app, &w.sub, &w.app_id, &fresh, "openid api:read agent:act").await;
        assert!(is_live(app, &at_now).await, "a grant of this epoch stands");
        assert!(
            exchange(app, &bot, &at_now).await.is_err(),
            "no agent acts on a consent of an earlier epoch"
        );

        let filter = admin::AuditFilter {
            kind: Some(AuditKind::UserSignedOutEverywhere.as_str().into()),
            subject: Some(w.sub.clone()),
            ..Default::default()
        };
        let (events, _) = admin::audit(app, &tid("acme"), &filter, None, 10).await.unwrap();
        let actors: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
        assert_eq!(actors, ["admin-test", "cli", "admin-test"], "newest first");
    }
}

/// private_key_jwt: an untyped assertion addressed to one of our endpoints works there only
/// (one for the revocation endpoint gets no token at the token endpoint), and a JWT that could
/// never pass makes no outbound fetch of the client's `jwks_uri`.
mod assertions {
    use super::*;
    use crate::domain::client_auth::read_credentials;
    use crate::domain::params::Params;
    use crate::fetch::{FetchError, Fetcher};
    use crate::service::{token_endpoint, tokens};
    use p256::pkcs8::EncodePrivateKey;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize, serde_json::Value);

    #[async_trait]
    impl Fetcher for Counting {
        async fn get_json(&self, _url: &str) -> Result<serde_json::Value, FetchError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(self.1.clone())
        }
    }

    fn key() -> (jsonwebtoken::EncodingKey, serde_json::Value) {
        let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let der = sk.to_pkcs8_der().unwrap();
        let mut jwk: serde_json::Value =
            serde_json::from_str(&p256::PublicKey::from(sk.verifying_key()).to_jwk_string()).unwrap();
        jwk["kid"] = json!("k1");
        (jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes()), jwk)
    }

    fn assertion(enc: &jsonwebtoken::EncodingKey, claims: serde_json::Value) -> String {
        let mut hdr = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        hdr.kid = Some("k1".into());
        crate::keys::jwt_crypto::install();
        jsonwebtoken::encode(&hdr, &claims, enc).unwrap()
    }

    async fn token_with(app: &App, a: &str) -> bool {
        let body = format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}"
        );
        let p = Params::parse(body.as_bytes()).unwrap();
        let Ok(creds) = read_credentials(None, &p) else {
            return false;
        };
        match tokens::authenticate(app, &creds, "/oauth2/token").await {
            Ok(client) => token_endpoint::grant(app, &crate::service::testing::req(&client, &p))
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn an_assertion_works_only_at_the_endpoint_it_names_and_junk_fetches_nothing() {
        let h = harness();
        let (enc, jwk) = key();
        let counting = Arc::new(Counting(AtomicUsize::new(0), json!({"keys": [jwk]})));
        // The same app, but every outbound fetch counted.
        let app = App {
            config: h.app.config.clone(),
            repo: h.app.repo.clone(),
            signer: h.app.signer.clone(),
            fetcher: counting.clone(),
            client_keys: Default::default(),
            own_token_endpoint: h.app.own_token_endpoint.clone(),
            recent_use: Default::default(),
            dpop_nonces: Default::default(),
            metrics: crate::metrics::noop(),
            tenant_cache: h.app.tenant_cache.clone(),
        };
        let app = &app;
        tenant(app, "acme").await;
        let reg = clients::create_by_admin(
            app,
            &tid("acme"),
            &json!({
                "client_name": "ci", "grant_types": ["client_credentials"], "scope": "api:read",
                "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://keys.example/jwks",
            }),
            Default::default(),
        )
        .await
        .expect("client");
        let cid = reg.client.client_id.clone();
        let now = app.now();
        let claims = |aud: String| json!({"iss": cid, "sub": cid, "aud": aud, "exp": now + 60, "iat": now, "jti": random_id(8)});
        // Junk that could never pass: no fetch at all.
        for junk in [
            "not-a-jwt".to_string(),
            assertion(
                &enc,
                json!({"iss": cid, "sub": "someone-else", "aud": app.config.issuer, "exp": now + 60, "jti": "j"}),
            ),
            assertion(
                &enc,
                json!({"iss": cid, "sub": cid, "aud": "https://elsewhere.example", "exp": now + 60, "jti": "j"}),
            ),
            assertion(
                &enc,
                json!({"iss": cid, "sub": cid, "aud": app.config.issuer, "exp": now - 600, "jti": "j"}),
            ),
        ] {
            assert!(!token_with(app, &junk).await);
        }
        assert_eq!(
            counting.0.load(Ordering::SeqCst),
            0,
            "junk made an outbound fetch"
        );
        // Addressed to the revocation or introspection endpoint: no token.
        for ep in ["/oauth2/revoke", "/oauth2/introspect"] {
            assert!(
                !token_with(app, &assertion(&enc, claims(app.config.endpoint(ep)))).await,
                "{ep}"
            );
        }
        // Addressed to the token endpoint, or to the issuer: a token.
        assert!(
            token_with(
                app,
                &assertion(&enc, claims(app.config.endpoint("/oauth2/token")))
            )
            .await
        );
        assert!(token_with(app, &assertion(&enc, claims(app.config.issuer.clone()))).await);
        assert_eq!(counting.0.load(Ordering::SeqCst), 1, "one fetch, then the cache");
    }

    async fn workload_token_with(app: &App, client_id: &str, t: &str) -> bool {
        let body = format!(
            "grant_type=client_credentials&client_id={client_id}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={t}"
        );
        let p = Params::parse(body.as_bytes()).unwrap();
        let Ok(creds) = read_credentials(None, &p) else {
            return false;
        };
        tokens::authenticate(app, &creds, "/oauth2/token").await.is_ok()
    }

    /// A `federated` client: a workload token that could never pass (another subject, audience
    /// or issuer, expired) fetches nothing from the issuer's `jwks_uri`; a good one works again
    /// and again at a reusable issuer (one fetch, then the cache) until the second its `exp`
    /// (with the skew) passes; at a single-use issuer once.
    #[tokio::test]
    async fn a_workload_token_works_until_it_expires_and_junk_fetches_nothing() {
        let h = harness();
        let (enc, jwk) = key();
        let counting = Arc::new(Counting(AtomicUsize::new(0), json!({"keys": [jwk]})));
        let app = App {
            config: h.app.config.clone(),
            repo: h.app.repo.clone(),
            signer: h.app.signer.clone(),
            fetcher: counting.clone(),
            client_keys: Default::default(),
            own_token_endpoint: h.app.own_token_endpoint.clone(),
            recent_use: Default::default(),
            dpop_nonces: Default::default(),
            metrics: crate::metrics::noop(),
            tenant_cache: h.app.tenant_cache.clone(),
        };
        let app = &app;
        tenant(app, "acme").await;
        let k8s = "https://k8s.example";
        let trust = |single_use: bool| crate::domain::tenant::TrustedIssuer {
            issuer: k8s.into(),
            jwks: None,
            jwks_uri: Some("https://k8s.example/keys".into()),
            id_jag: false,
            idp_tenant: None,
            workload: true,
            single_use,
        };
        tenants::add_issuer(app, &tid("acme"), trust(false), "test")
            .await
            .unwrap();
        let sa = "system:serviceaccount:ns:deploy";
        let cid = clients::create_by_admin(
            app,
            &tid("acme"),
            &json!({"client_name": "deploy", "grant_types": ["client_credentials"], "scope": "api:read",
                "token_endpoint_auth_method": "federated",
                "federated_credential": {"issuer": k8s, "subjects": [sa]}}),
            Default::default(),
        )
        .await
        .expect("client")
        .client
        .client_id;
        let aud = app.config.tenant_issuer("acme");
        let now = app.now();
        let claims = |patch: serde_json::Value| {
            let mut c = json!({"iss": k8s, "sub": sa, "aud": [aud], "iat": now, "nbf": now, "exp": now + 600, "jti": random_id(8)});
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            assertion(&enc, c)
        };
        for junk in [
            "not-a-jwt".to_string(),
            claims(json!({"sub": "system:serviceaccount:ns:other"})),
            claims(json!({"aud": "https://elsewhere.example"})),
            claims(json!({"iss": "https://other-cluster.example"})),
            claims(json!({"exp": now - 600})),
            claims(json!({"exp": now + 7200})),
        ] {
            assert!(!workload_token_with(app, &cid, &junk).await);
        }
        assert_eq!(
            counting.0.load(Ordering::SeqCst),
            0,
            "junk made an outbound fetch"
        );
        let good = claims(json!({}));
        for _ in 0..3 {
            assert!(workload_token_with(app, &cid, &good).await);
        }
        assert_eq!(counting.0.load(Ordering::SeqCst), 1, "one fetch, then the cache");
        h.clock.advance(600 + crate::domain::assertion::SKEW - 1);
        assert!(
            workload_token_with(app, &cid, &good).await,
            "valid to the last second"
        );
        h.clock.advance(1);
        assert!(!workload_token_with(app, &cid, &good).await, "expired");
        // Single-use: each jti once.
        tenants::add_issuer(app, &tid("acme"), trust(true), "test")
            .await
            .unwrap();
        let now = app.now();
        let once = assertion(
            &enc,
            json!({"iss": k8s, "sub": sa, "aud": aud, "exp": now + 60, "jti": random_id(8)}),
        );
        assert!(workload_token_with(app, &cid, &once).await);
        assert!(!workload_token_with(app, &cid, &once).await, "a replay");
        let no_jti = assertion(&enc, json!({"iss": k8s, "sub": sa, "aud": aud, "exp": now + 60}));
        assert!(
            !workload_token_with(app, &cid, &no_jti).await,
            "no jti at a single-use issuer"
        );
    }
}

/// Concurrent refreshes with one token (an MCP client's parallel calls) get the same new pair
/// within the grace; after it, or once the new token was used, presenting the old one is reuse
/// and ends the family. The pair is stored only sealed under the old token.
#[tokio::test]
async fn a_refresh_token_presented_again_within_the_grace_gets_the_same_pair_and_never_after() {
    use crate::domain::params::Params;
    use crate::service::grants::{REFRESH_REUSE_GRACE, new_refresh, refresh_token};
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    let alice = user(app, "acme", "alice").await;
    let client = clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
        .await
        .unwrap()
        .client;
    let family = |n: usize| {
        let app = app.clone();
        let (alice, client_id) = (alice.clone(), client.client_id.clone());
        async move {
            let gid = grants(&app, "acme", &alice, &client_id, n).await.remove(0);
            let g = app.repo.grant(&alice, &gid).await.unwrap().unwrap().value;
            let rt = crate::secret::generate();
            let w = app
                .repo
                .create_refresh_write(&rt.hash().to_hex(), &new_refresh(&g, app.now(), 86_400))
                .unwrap();
            app.repo.commit(vec![w]).await.unwrap();
            (gid, rt)
        }
    };
    let form =
        |rt: &str| Params::parse(format!("grant_type=refresh_token&refresh_token={rt}").as_bytes()).unwrap();

    // Within the grace: the same pair, again and again; nothing of it in the store in clear.
    let (gid, rt) = family(1).await;
    let first = refresh_token(app, &crate::service::testing::req(&client, &form(rt.expose())))
        .await
        .unwrap();
    let next = first.refresh_token.clone().unwrap();
    h.clock.advance(REFRESH_REUSE_GRACE);
    let again = refresh_token(app, &crate::service::testing::req(&client, &form(rt.expose())))
        .await
        .unwrap();
    assert_eq!(again.refresh_token.as_deref(), Some(next.as_str()));
    assert_eq!(again.access_token, first.access_token);
    assert!(again.expires_in <= first.expires_in);
    let stored = app
        .repo
        .refresh_token(&rt.hash().to_hex())
        .await
        .unwrap()
        .unwrap()
        .value;
    let sealed = stored.successor.clone().expect("sealed successor");
    assert!(!sealed.contains(&next) && !sealed.contains(&first.access_token));
    // The new token, used, moves the family on: the old one is now reuse.
    let third = refresh_token(app, &crate::service::testing::req(&client, &form(&next)))
        .await
        .unwrap();
    let err = refresh_token(app, &crate::service::testing::req(&client, &form(rt.expose())))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert!(
        app.repo.grant(&alice, &gid).await.unwrap().is_none(),
        "the family is revoked"
    );
    assert!(
        refresh_token(
            app,
            &crate::service::testing::req(&client, &form(third.refresh_token.as_deref().unwrap()))
        )
        .await
        .is_err()
    );

    // After the grace: reuse, the family ends.
    let (gid, rt) = family(1).await;
    refresh_token(app, &crate::service::testing::req(&client, &form(rt.expose())))
        .await
        .unwrap();
    h.clock.advance(REFRESH_REUSE_GRACE + 1);
    let err = refresh_token(app, &crate::service::testing::req(&client, &form(rt.expose())))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert!(
        app.repo.grant(&alice, &gid).await.unwrap().is_none(),
        "the family is revoked"
    );

    // Another client presenting it gets nothing and ends nothing.
    let (gid, rt) = family(1).await;
    refresh_token(app, &crate::service::testing::req(&client, &form(rt.expose())))
        .await
        .unwrap();
    let other = clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
        .await
        .unwrap()
        .client;
    assert!(
        refresh_token(app, &crate::service::testing::req(&other, &form(rt.expose())))
            .await
            .is_err()
    );
    assert!(app.repo.grant(&alice, &gid).await.unwrap().is_some());
}

/// Client ID Metadata Documents: fetched once and shared through the store, refetched only
/// when old or for a new redirect URI (at most once a minute), refused by policy before any
/// fetch, kept per tenant, and never refetched once the tenant admin disabled it.
mod metadata_documents {
    use super::*;
    use crate::domain::authorize::UntrustedRedirect;
    use crate::domain::cimd::CimdPolicy;
    use crate::domain::params::Params;
    use crate::fetch::{Document, FetchError, Fetcher};
    use crate::service::admin::{PolicyChanges, patch_policy};
    use crate::service::authorize::{self, CookieSessions, Outcome, PageRefusal};
    use crate::service::cimd::Refused;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const URL: &str = "https://app.example.com/client.json";

    struct Scripted {
        fetches: AtomicUsize,
        doc: Mutex<Option<serde_json::Value>>,
    }

    #[async_trait]
    impl Fetcher for Scripted {
        async fn get_json(&self, _url: &str) -> Result<serde_json::Value, FetchError> {
            unreachable!("documents are fetched with get_document")
        }
        async fn get_document(&self, url: &str, _max: usize) -> Result<Document, FetchError> {
            assert_eq!(url, URL);
            self.fetches.fetch_add(1, Ordering::SeqCst);
            match self.doc.lock().unwrap().clone() {
                Some(json) => Ok(Document {
                    json,
                    max_age: Some(600),
                }),
                None => Err(FetchError::Failed("status 500".into())),
            }
        }
    }

    fn doc(redirects: &[&str]) -> serde_json::Value {
        json!({"client_id": URL, "client_name": "Acme Files Helper", "redirect_uris": redirects,
               "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"})
    }

    async fn begin(app: &App, redirect: &str) -> Outcome {
        let q = format!(
            "response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            enc(URL),
            enc(redirect)
        );
        let lookup = |_: &str| None;
        let step = authorize::begin(
            app,
            &Params::parse(q.as_bytes()).unwrap(),
            &crate::secret::generate(),
            CookieSessions { lookup: &lookup },
        )
        .await
        .expect("begin");
        step.outcome
    }

    fn enc(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[track_caller]
    fn assert_refused(o: Outcome, why: PageRefusal) {
        match o {
            Outcome::Refused(r) => assert_eq!(r, why),
            other => panic!("expected {why:?}, got {other:?}"),
        }
    }

    fn is_login(o: &Outcome) -> bool {
        matches!(o, Outcome::NeedLogin(_))
    }

    async fn set(app: &App, tenant: &str, p: CimdPolicy) {
        let c = PolicyChanges {
            cimd: Some(p),
            ..Default::default()
        };
        patch_policy(app, &tid(tenant), None, c, "test")
            .await
            .expect("policy");
    }

    #[tokio::test]
    async fn documents_are_fetched_per_policy_cached_per_tenant_and_refetched_within_bounds() {
        let h = harness();
        let scripted = Arc::new(Scripted {
            fetches: AtomicUsize::new(0),
            doc: Mutex::new(Some(doc(&["https://app.example.com/cb"]))),
        });
        let base = App {
            config: h.app.config.clone(),
            repo: h.app.repo.clone(),
            signer: h.app.signer.clone(),
            fetcher: scripted.clone(),
            client_keys: Default::default(),
            own_token_endpoint: h.app.own_token_endpoint.clone(),
            recent_use: Default::default(),
            dpop_nonces: Default::default(),
            metrics: crate::metrics::noop(),
            tenant_cache: h.app.tenant_cache.clone(),
        };
        let fetches = || scripted.fetches.load(Ordering::SeqCst);
        tenant(&base, "acme").await;
        tenant(&base, "beta").await;
        let acme = base.scoped("acme");
        let cb = "https://app.example.com/cb";

        // The default policy refuses, before any fetch; so does the shared issuer, always.
        let not_accepted = PageRefusal::Document(Refused::NotAccepted);
        let unavailable = PageRefusal::Document(Refused::Unavailable);
        assert_refused(begin(&acme, cb).await, not_accepted);
        set(&base, "acme", CimdPolicy::Allow).await;
        assert_refused(begin(&base, cb).await, PageRefusal::UnknownClient);
        // Only listed hosts, when it is a list.
        set(
            &base,
            "acme",
            CimdPolicy::hosts(["other.example.com".to_string()]).unwrap(),
        )
        .await;
        assert_refused(begin(&acme, cb).await, not_accepted);
        assert_eq!(fetches(), 0);

        set(
            &base,
            "acme",
            CimdPolicy::hosts(["app.example.com".to_string()]).unwrap(),
        )
        .await;
        assert!(is_login(&begin(&acme, cb).await));
        assert_eq!(fetches(), 1);
        let stored = base.repo.client_in("acme", URL).await.unwrap().unwrap().value;
        assert_eq!(stored.origin, Origin::Cimd);
        assert_eq!(stored.display_name(), "app.example.com");
        assert!(!stored.first_party);
        // Not findable without the tenant, nor in another tenant.
        assert!(base.repo.client(URL).await.unwrap().is_none());
        assert!(base.repo.client_in("beta", URL).await.unwrap().is_none());

        // Fresh: no fetch.
        assert!(is_login(&begin(&acme, cb).await));
        assert_eq!(fetches(), 1);

        // A redirect URI the document lacks: refused without a fetch for a minute…
        let new = "https://app.example.com/new-cb";
        *scripted.doc.lock().unwrap() = Some(doc(&[cb, new]));
        assert_refused(
            begin(&acme, new).await,
            PageRefusal::RedirectUri(UntrustedRedirect::NotRegistered),
        );
        assert_eq!(fetches(), 1);
        // …then fetched again, once, and a new place asks users to consent again.
        h.clock.advance(61);
        assert!(is_login(&begin(&acme, new).await));
        assert_eq!(fetches(), 2);
        let again = base.repo.client_in("acme", URL).await.unwrap().unwrap().value;
        assert_eq!(again.consent_epoch, stored.consent_epoch + 1);
        assert!(is_login(&begin(&acme, new).await));
        assert_eq!(fetches(), 2);

        // Past its lifetime with the host failing: not used.
        *scripted.doc.lock().unwrap() = None;
        h.clock.advance(600);
        assert_refused(begin(&acme, cb).await, unavailable);
        assert_eq!(fetches(), 3);
        // Back, but now claiming another client id: refused.
        let mut wrong = doc(&[cb]);
        wrong["client_id"] = json!("https://evil.example.com/client.json");
        *scripted.doc.lock().unwrap() = Some(wrong);
        assert_refused(begin(&acme, cb).await, unavailable);
        assert_eq!(fetches(), 4);
        *scripted.doc.lock().unwrap() = Some(doc(&[cb]));
        assert!(is_login(&begin(&acme, cb).await));
        assert_eq!(fetches(), 5);

        // Another tenant has its own record; disabling it in acme does not touch beta's, and a
        // disabled one is never fetched again (nor used), even when stale.
        set(&base, "beta", CimdPolicy::Allow).await;
        let beta = base.scoped("beta");
        assert!(is_login(&begin(&beta, cb).await));
        assert_eq!(fetches(), 6);
        crate::service::admin::patch_client(
            &base,
            &tid("acme"),
            &ClientId::from(URL),
            None,
            &json!({"disabled": true}),
            "test",
        )
        .await
        .expect("disable");
        // Its metadata is the document's: the admin cannot change it.
        assert!(
            crate::service::admin::patch_client(
                &base,
                &tid("beta"),
                &ClientId::from(URL),
                None,
                &json!({"client_name": "x"}),
                "t"
            )
            .await
            .is_err()
        );
        assert!(
            crate::service::admin::patch_client(
                &base,
                &tid("beta"),
                &ClientId::from(URL),
                None,
                &json!({"first_party": true}),
                "t"
            )
            .await
            .is_err()
        );
        h.clock.advance(601);
        assert_refused(begin(&acme, cb).await, not_accepted);
        assert_eq!(fetches(), 6);
        assert!(is_login(&begin(&beta, cb).await));
        assert_eq!(fetches(), 7);

        // The same URL is two clients: deleting acme's ends acme's grants and consents only.
        let a = user(&base, "acme", "alice").await;
        let b = user(&base, "beta", "bob").await;
        let ga = grants(&base, "acme", &a, URL, 1).await;
        let gb = grants(&base, "beta", &b, URL, 1).await;
        consent(&base, "acme", &a, URL).await;
        consent(&base, "beta", &b, URL).await;
        assert_eq!(base.repo.grants_of_client("beta", URL).await.unwrap().len(), 1);
        crate::service::admin::delete_client(&base, &tid("acme"), &ClientId::from(URL), "test")
            .await
            .expect("delete");
        assert!(base.repo.grant(&a, &ga[0]).await.unwrap().is_none());
        assert!(base.repo.consent("acme", &a, URL).await.unwrap().is_none());
        assert!(base.repo.grant(&b, &gb[0]).await.unwrap().is_some());
        assert!(base.repo.consent("beta", &b, URL).await.unwrap().is_some());
        assert!(base.repo.client_in("beta", URL).await.unwrap().is_some());
        // Deleted (not disabled): fetched afresh when next met.
        assert!(is_login(&begin(&acme, cb).await));
        assert_eq!(fetches(), 8);

        // Met by anyone who names a URL, such a client expires unused as an open registration
        // does: in each tenant, each its own.
        h.clock.advance(31 * 86_400);
        let r = crate::service::sweep::expire_open_registrations(&base, Some("beta"), 250, "test")
            .await
            .unwrap();
        assert_eq!(r.expired, vec![URL.to_string()]);
        assert!(base.repo.client_any_in("beta", URL).await.unwrap().is_none());
        assert!(base.repo.grant(&b, &gb[0]).await.unwrap().is_none());
        assert!(base.repo.client_in("acme", URL).await.unwrap().is_some());
        crate::service::sweep::expire_open_registrations(&base, None, 250, "test")
            .await
            .unwrap();
        assert!(base.repo.client_any_in("acme", URL).await.unwrap().is_none());
    }

    /// A fetcher serving documents by URL (404 for any other URL), counting fetches.
    struct ByUrl {
        fetches: AtomicUsize,
        docs: Mutex<std::collections::HashMap<String, serde_json::Value>>,
    }

    #[async_trait]
    impl Fetcher for ByUrl {
        async fn get_json(&self, _url: &str) -> Result<serde_json::Value, FetchError> {
            unreachable!("documents are fetched with get_document")
        }
        async fn get_document(&self, url: &str, _max: usize) -> Result<Document, FetchError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            match self.docs.lock().unwrap().get(url).cloned() {
                Some(json) => Ok(Document {
                    json,
                    max_age: Some(600),
                }),
                None => Err(FetchError::Failed("status 404".into())),
            }
        }
    }

    fn with_fetcher(h: &Harness, fetcher: Arc<dyn Fetcher>) -> App {
        App {
            config: h.app.config.clone(),
            repo: h.app.repo.clone(),
            signer: h.app.signer.clone(),
            fetcher,
            client_keys: Default::default(),
            own_token_endpoint: h.app.own_token_endpoint.clone(),
            recent_use: Default::default(),
            dpop_nonces: Default::default(),
            metrics: crate::metrics::noop(),
            tenant_cache: h.app.tenant_cache.clone(),
        }
    }

    async fn begin_as(app: &App, client_id: &str, redirect: &str) -> Outcome {
        let q = format!(
            "response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            enc(client_id),
            enc(redirect)
        );
        let lookup = |_: &str| None;
        authorize::begin(
            app,
            &Params::parse(q.as_bytes()).unwrap(),
            &crate::secret::generate(),
            CookieSessions { lookup: &lookup },
        )
        .await
        .expect("begin")
        .outcome
    }

    /// A stranger naming made-up document URLs on an accepted host must not use up the fetches
    /// that keep the tenant's known clients working: a known client whose document is merely
    /// due for a refetch (its host up) still signs users in.
    #[tokio::test]
    async fn strangers_naming_new_urls_cannot_starve_the_refetch_of_known_clients() {
        let h = harness();
        let cb = "https://app.example.com/cb";
        let by_url = Arc::new(ByUrl {
            fetches: AtomicUsize::new(0),
            docs: Mutex::new([(URL.to_string(), doc(&[cb]))].into_iter().collect()),
        });
        let base = with_fetcher(&h, by_url.clone());
        tenant(&base, "acme").await;
        set(
            &base,
            "acme",
            CimdPolicy::hosts(["app.example.com".to_string()]).unwrap(),
        )
        .await;
        let acme = base.scoped("acme");
        assert!(is_login(&begin_as(&acme, URL, cb).await));
        // Past its lifetime: the next request refetches it.
        h.clock.advance(601);
        // Meanwhile a stranger sends the tenant's users' browsers (or curl) to made-up URLs on
        // the same host, each a fetch that fails.
        for i in 0..crate::domain::cimd::FETCHES_PER_MINUTE {
            let junk = format!("https://app.example.com/junk-{i}.json");
            assert!(!is_login(&begin_as(&acme, &junk, cb).await));
        }
        // The known client's host is up: it must still work.
        assert!(
            is_login(&begin_as(&acme, URL, cb).await),
            "a known client was refused because strangers used up the tenant's fetch budget"
        );
    }

    /// The same URL met by two tenants is two clients: one tenant's use is not the other's
    /// "last used" (the console shows it), nor does it hide the other's.
    #[tokio::test]
    async fn last_used_is_per_tenant_for_a_url_client() {
        use crate::service::grants::new_refresh;
        let h = harness();
        let cb = "https://app.example.com/cb";
        let by_url = Arc::new(ByUrl {
            fetches: AtomicUsize::new(0),
            docs: Mutex::new([(URL.to_string(), doc(&[cb]))].into_iter().collect()),
        });
        let base = with_fetcher(&h, by_url.clone());
        tenant(&base, "acme").await;
        tenant(&base, "beta").await;
        set(&base, "acme", CimdPolicy::Allow).await;
        set(&base, "beta", CimdPolicy::Allow).await;
        assert!(is_login(&begin_as(&base.scoped("acme"), URL, cb).await));
        assert!(is_login(&begin_as(&base.scoped("beta"), URL, cb).await));
        // bob of beta refreshes through beta's record of the URL client.
        let bob = user(&base, "beta", "bob").await;
        let gid = grants(&base, "beta", &bob, URL, 1).await.remove(0);
        let g = base.repo.grant(&bob, &gid).await.unwrap().unwrap().value;
        let rt = crate::secret::generate();
        let w = base
            .repo
            .create_refresh_write(&rt.hash().to_hex(), &new_refresh(&g, base.now(), 86_400))
            .unwrap();
        base.repo.commit(vec![w]).await.unwrap();
        let beta = base.scoped("beta");
        let client = beta.repo.client_in("beta", URL).await.unwrap().unwrap().value;
        let p = Params::parse(format!("grant_type=refresh_token&refresh_token={}", rt.expose()).as_bytes())
            .unwrap();
        crate::service::token_endpoint::grant(&beta, &crate::service::testing::req(&client, &p))
            .await
            .expect("refresh");
        let last = |t: &'static str| {
            let base = &base;
            async move {
                crate::service::console::app_detail(base, &tid(t), &ClientId::from(URL))
                    .await
                    .unwrap()
                    .last_used
            }
        };
        assert!(last("beta").await.is_some());
        assert_eq!(
            last("acme").await,
            None,
            "acme's console shows beta's use of the URL client"
        );
    }

    /// A document that switches from key-based client authentication to none (its host
    /// compromised, its domain re-registered) must not make the refresh tokens issued under the
    /// keys redeemable without them — as the admin API refuses that switch for any client.
    #[tokio::test]
    async fn a_document_dropping_its_keys_ends_what_was_issued_under_them() {
        use crate::service::grants::new_refresh;
        let h = harness();
        let cb = "https://app.example.com/cb";
        let mut keyed = doc(&[cb]);
        keyed["token_endpoint_auth_method"] = json!("private_key_jwt");
        keyed["jwks_uri"] = json!("https://app.example.com/jwks.json");
        let by_url = Arc::new(ByUrl {
            fetches: AtomicUsize::new(0),
            docs: Mutex::new([(URL.to_string(), keyed)].into_iter().collect()),
        });
        let base = with_fetcher(&h, by_url.clone());
        tenant(&base, "acme").await;
        set(&base, "acme", CimdPolicy::Allow).await;
        let acme = base.scoped("acme");
        assert!(is_login(&begin_as(&acme, URL, cb).await));
        let alice = user(&base, "acme", "alice").await;
        let gid = grants(&base, "acme", &alice, URL, 1).await.remove(0);
        let g = base.repo.grant(&alice, &gid).await.unwrap().unwrap().value;
        let rt = crate::secret::generate();
        let w = base
            .repo
            .create_refresh_write(&rt.hash().to_hex(), &new_refresh(&g, base.now(), 86_400))
            .unwrap();
        base.repo.commit(vec![w]).await.unwrap();
        // The document now says: no authentication.
        by_url.docs.lock().unwrap().insert(URL.to_string(), doc(&[cb]));
        h.clock.advance(601);
        assert!(is_login(&begin_as(&acme, URL, cb).await));
        let client = acme.repo.client_in("acme", URL).await.unwrap().unwrap().value;
        assert_eq!(
            client.metadata.token_endpoint_auth_method,
            crate::domain::grant_type::ClientAuthMethod::None
        );
        let p = Params::parse(format!("grant_type=refresh_token&refresh_token={}", rt.expose()).as_bytes())
            .unwrap();
        assert!(
            crate::service::token_endpoint::grant(&acme, &crate::service::testing::req(&client, &p))
                .await
                .is_err(),
            "a refresh token issued to a private_key_jwt client was redeemed with no authentication"
        );
    }
}

// ---- unused open registrations expire --------------------------------------------------------

mod expiry {
    use super::*;
    use crate::domain::params::Params;
    use crate::service::grants::{new_refresh, refresh_token};
    use crate::service::sweep::{DEFAULT_MAX_PER_SHARD, OPEN_REGISTRATION_IDLE, expire_open_registrations};
    use crate::service::token_endpoint;
    use crate::service::tokens::live_claims;

    const DAY: i64 = 86_400;

    fn refresh_form(rt: &str) -> Params {
        Params::parse(format!("grant_type=refresh_token&refresh_token={rt}").as_bytes()).unwrap()
    }

    /// A grant of `sub` to `client_id` (good for 90 days), its consent and a refresh token.
    async fn family(app: &App, sub: &str, client_id: &str) -> (String, Secret) {
        let now = app.now();
        let g = Grant {
            gid: random_id(16),
            tenant: tid("acme"),
            sub: sub.into(),
            client_id: client_id.into(),
            scope: "api:read".into(),
            auth_time: now,
            created_at: now,
            last_used: now,
            expires_at: now + 90 * DAY,
            user_epoch: None,
            grant_epoch: 0,
            resources: Vec::new(),
        };
        app.repo
            .commit(app.repo.create_grant_writes(&g).unwrap().into())
            .await
            .unwrap();
        let rt = crate::secret::generate();
        let w = app
            .repo
            .create_refresh_write(&rt.hash().to_hex(), &new_refresh(&g, now, 60 * DAY))
            .unwrap();
        app.repo.commit(vec![w]).await.unwrap();
        consent(app, "acme", sub, client_id).await;
        (g.gid, rt)
    }

    async fn sweep(app: &App, tenant: Option<&str>) -> crate::service::sweep::SweepReport {
        expire_open_registrations(app, tenant, DEFAULT_MAX_PER_SHARD, "sweeper")
            .await
            .unwrap()
    }

    /// Only clients registered by anyone (open DCR, no initial access token) expire, 30 days
    /// after their last token (or their registration), to the second; the expiry is a client
    /// delete: its grants, refresh tokens, consents and live access tokens end, with an audit
    /// event `client.expired`. A client used meanwhile is looked at again 30 days after that use.
    #[tokio::test]
    async fn unused_open_registrations_expire_with_the_cascade_of_a_delete() {
        let h = harness();
        let app = &h.app;
        let t0 = app.now();
        tenant(app, "acme").await;
        tenant(app, "other").await;
        let alice = user(app, "acme", "alice").await;
        let open = |tenant: &'static str| async move {
            clients::register_dynamic(app, &tid(tenant), None, &code_client_metadata())
                .await
                .unwrap()
                .client
        };
        let unused = open("acme").await;
        let used = open("acme").await;
        let holder = open("acme").await; // holds tokens whose use went unrecorded
        let elsewhere = open("other").await;
        let (iat, _) = tenants::create_iat(app, &tid("acme"), 3600, 1).await.unwrap();
        let with_iat = clients::register_dynamic(app, &tid("acme"), Some(&iat), &code_client_metadata())
            .await
            .unwrap()
            .client;
        let by_admin =
            clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
                .await
                .unwrap()
                .client;
        assert!(unused.open_registration && !with_iat.open_registration && !by_admin.open_registration);

        // The used client gets a token through the token endpoint 10 days in (which records
        // the use); the holder's tokens come from the refresh service directly, recording none.
        let (_, used_rt) = family(app, &alice, &used.client_id).await;
        let (holder_gid, holder_rt) = family(app, &alice, &holder.client_id).await;
        h.clock.set(t0 + 10 * DAY);
        token_endpoint::grant(
            app,
            &crate::service::testing::req(&used, &refresh_form(used_rt.expose())),
        )
        .await
        .unwrap();
        h.clock.set(t0 + OPEN_REGISTRATION_IDLE - 60);
        let issued = refresh_token(
            app,
            &crate::service::testing::req(&holder, &refresh_form(holder_rt.expose())),
        )
        .await
        .unwrap();
        let at = issued.access_token.clone();
        let rt = issued.refresh_token.clone().unwrap();

        // A second early: nothing is due.
        h.clock.set(t0 + OPEN_REGISTRATION_IDLE - 1);
        let r = sweep(app, None).await;
        assert!(r.expired.is_empty() && r.examined == 0, "{r:?}");
        assert!(live_claims(app, &at, Some("acme")).await.unwrap().is_some());

        // 30 days exactly: the open registrations unused since they registered expire (only
        // the named tenant's when one is named); the used one is listed again for later.
        h.clock.set(t0 + OPEN_REGISTRATION_IDLE);
        let r = sweep(app, Some("acme")).await;
        let mut expired = r.expired.clone();
        expired.sort();
        let mut expected = vec![unused.client_id.clone(), holder.client_id.clone()];
        expected.sort();
        assert_eq!(expired, expected, "{r:?}");
        assert_eq!(r.postponed, 1, "{r:?}");
        for c in [&used, &with_iat, &by_admin, &elsewhere] {
            assert!(app.repo.client(&c.client_id).await.unwrap().is_some(), "{c:?}");
        }
        for c in [&unused, &holder] {
            assert!(app.repo.client_any(&c.client_id).await.unwrap().is_none());
        }
        // Everything the holder had is over: access token, refresh token, grant, consent.
        assert!(live_claims(app, &at, Some("acme")).await.unwrap().is_none());
        let err = refresh_token(app, &crate::service::testing::req(&holder, &refresh_form(&rt)))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidGrant);
        assert!(app.repo.grant(&alice, &holder_gid).await.unwrap().is_none());
        assert!(
            app.repo
                .consent("acme", &alice, &holder.client_id)
                .await
                .unwrap()
                .is_none()
        );
        // Audited, once per client.
        let (events, _) = app
            .repo
            .audit_events_with_cursors("acme", None, 200, true)
            .await
            .unwrap();
        let expiries: Vec<_> = events
            .iter()
            .map(|(e, _)| e)
            .filter(|e| e.kind == "client.expired")
            .collect();
        assert_eq!(expiries.len(), 2, "{expiries:?}");
        assert!(expiries.iter().all(|e| e.actor == "sweeper"
            && e.detail.as_deref() == Some("never used")
            && expected.contains(&ClientId::from(e.subject.as_str()))));
        // Run again: nothing left to do.
        let r = sweep(app, Some("acme")).await;
        assert_eq!((r.examined, r.expired.len()), (0, 0), "{r:?}");

        // The other tenant's, unnamed before, goes in a sweep of every tenant.
        let r = sweep(app, None).await;
        assert_eq!(r.expired, vec![elsewhere.client_id.clone()], "{r:?}");

        // The used client: 30 days after its last use, and not a second before.
        h.clock.set(t0 + 10 * DAY + OPEN_REGISTRATION_IDLE - 1);
        assert!(sweep(app, None).await.expired.is_empty());
        h.clock.set(t0 + 10 * DAY + OPEN_REGISTRATION_IDLE);
        let r = sweep(app, None).await;
        assert_eq!(r.expired, vec![used.client_id.clone()], "{r:?}");
        let e = app
            .repo
            .audit_events_with_cursors("acme", None, 1, true)
            .await
            .unwrap()
            .0
            .remove(0)
            .0;
        assert_eq!(
            (e.kind.as_str(), e.detail),
            ("client.expired", Some(format!("unused since {}", t0 + 10 * DAY)))
        );

        // Never: made by an admin, or registered with an initial access token.
        h.clock.set(t0 + 400 * DAY);
        assert!(sweep(app, None).await.expired.is_empty());
        for c in [&with_iat, &by_admin] {
            assert!(app.repo.client(&c.client_id).await.unwrap().is_some());
        }
    }

    /// A client deleted by other means leaves its entry behind: the sweep drops it and deletes
    /// nothing else; a disabled open registration expires like any.
    #[tokio::test]
    async fn the_sweep_drops_entries_of_deleted_clients_and_expires_disabled_ones() {
        let h = harness();
        let app = &h.app;
        let t0 = app.now();
        tenant(app, "acme").await;
        let a = clients::register_dynamic(app, &tid("acme"), None, &code_client_metadata())
            .await
            .unwrap()
            .client;
        let b = clients::register_dynamic(app, &tid("acme"), None, &code_client_metadata())
            .await
            .unwrap()
            .client;
        let current = app.repo.client(&a.client_id).await.unwrap().unwrap();
        clients::delete(app, current, "cli").await.unwrap();
        crate::service::admin::patch_client(
            app,
            &tid("acme"),
            &b.client_id,
            None,
            &serde_json::json!({"disabled": true}),
            "cli",
        )
        .await
        .unwrap();
        h.clock.set(t0 + OPEN_REGISTRATION_IDLE);
        let r = sweep(app, None).await;
        assert_eq!(
            (r.dropped, r.expired.clone()),
            (1, vec![b.client_id.to_string()]),
            "{r:?}"
        );
        assert!(app.repo.client_any(&b.client_id).await.unwrap().is_none());
    }
}

/// An anonymous registration that holds a machine grant — stored before registration refused
/// it — is not issued tokens under it: the rule is checked again at every use. The same client
/// registered with an initial access token is.
#[tokio::test]
async fn an_anonymous_registration_holding_a_machine_grant_is_not_issued_it() {
    use crate::domain::client::{Client, ClientMetadata};
    use crate::domain::params::Params;
    use crate::domain::tenant::TenantId;
    let h = harness();
    let app = &h.app;
    tenant(app, "acme").await;
    let secret = crate::secret::generate();
    let metadata: ClientMetadata = serde_json::from_value(json!({
        "grant_types": ["client_credentials"], "response_types": [],
        "token_endpoint_auth_method": "client_secret_post", "scope": "api:read",
    }))
    .unwrap();
    let stored = |id: &str, open: bool| Client {
        secret_hash: Some(secret.hash().to_hex()),
        open_registration: open,
        ..Client::new(
            id.into(),
            TenantId::parse("acme").unwrap(),
            metadata.clone(),
            Origin::Dcr,
            app.now(),
        )
    };
    for (id, open) in [("anonymous", true), ("with-iat", false)] {
        app.repo
            .commit(vec![
                app.repo.create_client_write(&stored(id, open)).unwrap(),
                test_audit(app, id),
            ])
            .await
            .unwrap();
    }
    let form = |id: &str| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret.expose()),
            ])
            .finish();
        Params::parse(body.as_bytes()).unwrap()
    };
    let run = |id: &'static str| async move {
        let p = form(id);
        let creds = crate::domain::client_auth::read_credentials(None, &p).unwrap();
        let client = crate::service::tokens::authenticate(app, &creds, "/oauth2/token").await?;
        crate::service::token_endpoint::grant(app, &crate::service::testing::req(&client, &p)).await
    };
    let err = run("anonymous").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::UnauthorizedClient, "{err:?}");
    assert!(
        err.description.contains("without an initial access token"),
        "{err:?}"
    );
    assert!(run("with-iat").await.is_ok());
}

/// What the services count (`metrics::Event`): tokens issued and refused per grant, failed
/// logins and one lockout, refresh reuse, registrations and 429s — each exactly once per event,
/// never with a client id or a username.
#[tokio::test]
async fn the_services_count_what_happened() {
    use crate::domain::params::Params;
    use crate::metrics::{Metric, Recording};
    use crate::service::grants::new_refresh;
    use crate::service::testing::req;
    use crate::service::token_endpoint::grant;
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at(1_800_000_000);
    let store = EmbeddedStore::open(&dir.path().join("bulwark.db"), clock.clone()).expect("store");
    let config = Config::new("http://127.0.0.1:8080").expect("config");
    let signer = LocalSigner::open(dir.path(), clock.clone(), config.max_access_token_ttl).expect("signer");
    let rec = Arc::new(Recording::default());
    let app = &App::new_with_metrics(config, Arc::new(store), Arc::new(signer), clock, rec.clone());
    tenant(app, "acme").await;
    let by_grant = |m: Metric, g: &str| rec.sum(m, |d| d.grant == Some(g));

    // Three tokens, one refusal for a grant type nobody knows, one for a grant the client may
    // not use.
    let machine = clients::create_by_admin(
        app,
        &tid("acme"),
        &json!({"grant_types": ["client_credentials"], "scope": "api:read"}),
        Default::default(),
    )
    .await
    .unwrap()
    .client;
    let form = |s: &str| Params::parse(s.as_bytes()).unwrap();
    for _ in 0..3 {
        grant(app, &req(&machine, &form("grant_type=client_credentials")))
            .await
            .unwrap();
    }
    grant(app, &req(&machine, &form("grant_type=urn:example:made-up")))
        .await
        .unwrap_err();
    grant(
        app,
        &req(&machine, &form("grant_type=refresh_token&refresh_token=x")),
    )
    .await
    .unwrap_err();
    assert_eq!(by_grant(Metric::TokensIssued, "client_credentials"), 3.0);
    assert_eq!(by_grant(Metric::TokensRefused, "unsupported"), 1.0);
    assert_eq!(by_grant(Metric::TokensRefused, "refresh_token"), 1.0);

    // A refresh token used, then used again after the grace: one rotation, one reuse.
    let alice = user(app, "acme", "alice").await;
    let client = clients::create_by_admin(app, &tid("acme"), &code_client_metadata(), Default::default())
        .await
        .unwrap()
        .client;
    let gid = grants(app, "acme", &alice, &client.client_id, 1).await.remove(0);
    let g = app.repo.grant(&alice, &gid).await.unwrap().unwrap().value;
    let rt = crate::secret::generate();
    let w = app
        .repo
        .create_refresh_write(&rt.hash().to_hex(), &new_refresh(&g, app.now(), 86_400))
        .unwrap();
    app.repo.commit(vec![w]).await.unwrap();
    let refresh = format!("grant_type=refresh_token&refresh_token={}", rt.expose());
    let next = grant(app, &req(&client, &form(&refresh))).await.unwrap();
    grant(
        app,
        &req(
            &client,
            &form(&format!(
                "grant_type=refresh_token&refresh_token={}",
                next.refresh_token.unwrap()
            )),
        ),
    )
    .await
    .unwrap();
    assert_eq!(rec.sum(Metric::RefreshReuse, |_| true), 0.0);
    grant(app, &req(&client, &form(&refresh))).await.unwrap_err();
    assert_eq!(
        rec.sum(Metric::RefreshReuse, |_| true),
        1.0,
        "the family revoked once"
    );
    assert_eq!(by_grant(Metric::TokensIssued, "refresh_token"), 2.0);
    assert_eq!(by_grant(Metric::TokensRefused, "refresh_token"), 2.0);

    // Wrong passwords until the name is locked, then more tries: failures counted while
    // passwords are checked, the lockout once.
    let wrong = Secret::new("wrong");
    for _ in 0..crate::domain::user::THROTTLE_MAX_FAILURES + 3 {
        users::login(app, &tid("acme"), "alice", &wrong)
            .await
            .unwrap_err();
    }
    assert_eq!(
        rec.sum(Metric::LoginFailures, |_| true),
        f64::from(crate::domain::user::THROTTLE_MAX_FAILURES)
    );
    assert_eq!(rec.sum(Metric::LoginLockouts, |_| true), 1.0);

    // Open registrations up to the rate limit, then a 429.
    let limit = clients::OPEN_REGISTRATIONS_PER_MINUTE;
    for _ in 0..limit {
        clients::register_dynamic(app, &tid("acme"), None, &code_client_metadata())
            .await
            .unwrap();
    }
    let Err(refused) = clients::register_dynamic(app, &tid("acme"), None, &code_client_metadata()).await
    else {
        panic!("a registration beyond the limit");
    };
    assert_eq!(refused.status.as_u16(), 429);
    assert_eq!(rec.sum(Metric::Registrations, |_| true), limit as f64);
    assert_eq!(rec.sum(Metric::RateLimited, |_| true), 1.0);

    // Only the grant and the tenant (a stored record's) are ever dimensions.
    for (_, d, _) in rec.0.lock().unwrap().iter() {
        assert!(matches!(d.tenant.as_deref(), None | Some("acme")), "{d:?}");
        assert!(!d.function, "{d:?}");
    }
}

/// Pushed authorization requests (RFC 9126): a pushed request flows into the authorization
/// endpoint once, only for its client at its issuer, and not after it expires.
mod pushed_requests {
    use super::*;
    use crate::domain::params::Params;
    use crate::service::authorize::{self, CookieSessions, Outcome, PageRefusal};
    use crate::service::par;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn params(q: &str) -> Params {
        Params::parse(q.as_bytes()).unwrap()
    }

    async fn client(app: &App, metadata: serde_json::Value) -> crate::domain::client::Client {
        clients::create_by_admin(app, &tid("acme"), &metadata, Default::default())
            .await
            .unwrap()
            .client
    }

    async fn push(app: &App, c: &crate::domain::client::Client) -> String {
        let q = format!(
            "response_type=code&client_id={}&scope=openid&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256",
            c.client_id
        );
        let pushed = par::push(app, c, &params(&q), None).await.expect("push");
        assert_eq!(pushed.expires_in, 60);
        assert!(
            pushed
                .request_uri
                .starts_with("urn:ietf:params:oauth:request_uri:")
        );
        pushed.request_uri
    }

    async fn begin(app: &App, client_id: &str, request_uri: &str, extra: &str) -> Outcome {
        let q = format!(
            "client_id={}&request_uri={}{extra}",
            enc(client_id),
            enc(request_uri)
        );
        let lookup = |_: &str| None;
        authorize::begin(
            app,
            &params(&q),
            &crate::secret::generate(),
            CookieSessions { lookup: &lookup },
        )
        .await
        .expect("begin")
        .outcome
    }

    fn enc(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[track_caller]
    fn assert_refused(o: Outcome, why: PageRefusal) {
        match o {
            Outcome::Refused(r) => assert_eq!(r, why),
            other => panic!("expected {why:?}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_pushed_request_is_used_once_by_its_client_and_not_after_it_expires() {
        let h = harness();
        let app = &h.app;
        tenant(app, "acme").await;
        let c = client(app, code_client_metadata()).await;
        let other = client(app, code_client_metadata()).await;

        // Used once: the login page, with the pushed request's parameters (the query's
        // `redirect_uri` is ignored).
        let uri = push(app, &c).await;
        match begin(
            app,
            &c.client_id,
            &uri,
            "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
        )
        .await
        {
            Outcome::NeedLogin(l) => assert_eq!(l.redirect_uri, "https://notes.example/cb"),
            other => panic!("expected the login page, got {other:?}"),
        }
        assert_refused(
            begin(app, &c.client_id, &uri, "").await,
            PageRefusal::PushedRequestUnusable,
        );

        // Another client's: refused (and, taken, not usable by its own client either).
        let uri = push(app, &c).await;
        assert_refused(
            begin(app, &other.client_id, &uri, "").await,
            PageRefusal::PushedRequestUnusable,
        );

        // Expired: refused.
        let uri = push(app, &c).await;
        h.clock.advance(61);
        assert_refused(
            begin(app, &c.client_id, &uri, "").await,
            PageRefusal::PushedRequestUnusable,
        );
        // Within its lifetime: good.
        let uri = push(app, &c).await;
        h.clock.advance(59);
        assert!(matches!(
            begin(app, &c.client_id, &uri, "").await,
            Outcome::NeedLogin(_)
        ));

        // Not one of ours.
        for bad in [
            "urn:ietf:params:oauth:request_uri:nope",
            "https://client.example/request.jwt",
        ] {
            assert_refused(
                begin(app, &c.client_id, bad, "").await,
                PageRefusal::PushedRequestUnusable,
            );
        }
    }

    #[tokio::test]
    async fn a_pushed_request_is_usable_only_at_the_issuer_it_was_pushed_to() {
        let h = harness();
        tenant(&h.app, "acme").await;
        tenant(&h.app, "other").await;
        let c = client(&h.app, code_client_metadata()).await;
        let own = h.app.scoped("acme");
        for (pushed_at, used_at) in [(&own, &h.app), (&h.app, &own), (&own, &h.app.scoped("other"))] {
            let uri = push(pushed_at, &c).await;
            assert_refused(
                begin(used_at, &c.client_id, &uri, "").await,
                PageRefusal::PushedRequestUnusable,
            );
        }
        let uri = push(&own, &c).await;
        assert!(matches!(
            begin(&own, &c.client_id, &uri, "").await,
            Outcome::NeedLogin(_)
        ));
    }

    #[tokio::test]
    async fn a_client_that_must_push_gets_no_plain_request_and_an_invalid_push_stores_nothing() {
        let h = harness();
        let app = &h.app;
        tenant(app, "acme").await;
        let mut metadata = code_client_metadata();
        metadata["require_pushed_authorization_requests"] = json!(true);
        let c = client(app, metadata).await;
        let plain = format!(
            "response_type=code&client_id={}&scope=openid&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256",
            c.client_id
        );
        let lookup = |_: &str| None;
        let step = authorize::begin(
            app,
            &params(&plain),
            &crate::secret::generate(),
            CookieSessions { lookup: &lookup },
        )
        .await
        .unwrap();
        assert_refused(step.outcome, PageRefusal::PushedRequestRequired);
        // Pushed, it goes.
        let uri = push(app, &c).await;
        assert!(matches!(
            begin(app, &c.client_id, &uri, "").await,
            Outcome::NeedLogin(_)
        ));

        // An invalid push is the authorization endpoint's refusal, as JSON, and nothing is
        // stored.
        let (watched, pushes) = watching(&h);
        for (q, error) in [
            ("response_type=code&scope=openid".to_string(), "invalid_request"),
            (
                format!("{plain}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"),
                "invalid_request",
            ),
            (
                format!("{plain}&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax"),
                "invalid_request",
            ),
            (format!("{plain}&request=eyJ"), "request_not_supported"),
            (plain.replace("scope=openid", "scope=admin"), "invalid_scope"),
            (
                format!("{plain}&resource=https%3A%2F%2Fnot.ours"),
                "invalid_target",
            ),
            (
                plain.replace("response_type=code", "response_type=token"),
                "unsupported_response_type",
            ),
        ] {
            let e = par::push(&watched, &c, &params(&q), None).await.unwrap_err();
            assert_eq!(e.code.as_str(), error, "{q}: {e:?}");
        }
        assert_eq!(pushes.load(Ordering::SeqCst), 0, "nothing stored");
        par::push(&watched, &c, &params(&plain), None).await.unwrap();
        assert_eq!(pushes.load(Ordering::SeqCst), 1, "the counter counts");
    }

    /// The harness's app over a store that counts the pushed requests written.
    fn watching(h: &Harness) -> (Arc<App>, Arc<AtomicUsize>) {
        struct Watching(Arc<dyn Kv>, Arc<AtomicUsize>);
        #[async_trait]
        impl Kv for Watching {
            async fn get(
                &self,
                t: Table,
                pk: &str,
                sk: &str,
            ) -> Result<Option<crate::store::Item>, StoreError> {
                self.0.get(t, pk, sk).await
            }
            async fn put(
                &self,
                t: Table,
                item: crate::store::Item,
                cond: crate::store::Cond,
            ) -> Result<(), StoreError> {
                if item.pk.starts_with("par#") {
                    self.1.fetch_add(1, Ordering::SeqCst);
                }
                self.0.put(t, item, cond).await
            }
            async fn delete(
                &self,
                t: Table,
                pk: &str,
                sk: &str,
                cond: crate::store::Cond,
            ) -> Result<Option<crate::store::Item>, StoreError> {
                self.0.delete(t, pk, sk, cond).await
            }
            async fn query(
                &self,
                t: Table,
                index: Index,
                partition: &str,
                cursor: Option<&str>,
                limit: usize,
            ) -> Result<Page, StoreError> {
                self.0.query(t, index, partition, cursor, limit).await
            }
            async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
                self.0.transact(writes).await
            }
            fn cursor_after(&self, index: Index, item: &crate::store::Item) -> Result<String, StoreError> {
                self.0.cursor_after(index, item)
            }
        }
        let pushes = Arc::new(AtomicUsize::new(0));
        let kv = Arc::new(Watching(h.app.repo.kv().clone(), pushes.clone()));
        let app = App::new(h.app.config.clone(), kv, h.app.signer.clone(), h.clock.clone());
        (app, pushes)
    }
}
