//! Regression tests from an attacker review of the tenant admin API: a disable cascade cut short,
//! codes and racing tokens across disable/enable and deactivation, an admin token replayed from
//! a resource server, and the cost of a filtered audit page.

use crate::domain::id::{ClientId, Subject};
use crate::service::testing::tid;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::authorize::{AuthRequest, s256};
use crate::domain::client::Origin;
use crate::domain::params::Params;
use crate::domain::tenant::DcrPolicy;
use crate::keys::local::LocalSigner;
use crate::secret::{Secret, random_id};
use crate::service::{App, admin, clients, grants, tenants, tokens, users};
use crate::store::embedded::EmbeddedStore;
use crate::store::repo_users::{AuthCode, Grant};
use crate::store::{Cond, Index, Item, Kv, Page, StoreError, Table, Write};

/// The embedded store, with a switch that makes every transaction deleting a grant-table item
/// fail (DynamoDB throttling, or the Lambda's 10 s timeout in the middle of a long sweep), and
/// a count of queries (each one a DynamoDB round trip).
struct Flaky {
    inner: EmbeddedStore,
    fail_grant_deletes: AtomicBool,
    queries: AtomicUsize,
    /// Writes that land (once) just before the next grant item is written: another request's
    /// change racing with a code redemption.
    before_grant_put: std::sync::Mutex<Vec<Write>>,
}

#[async_trait]
impl Kv for Flaky {
    async fn get(&self, t: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.inner.get(t, pk, sk).await
    }
    async fn put(&self, t: Table, item: Item, cond: Cond) -> Result<(), StoreError> {
        if item.pk.starts_with("grants#") {
            let racing = std::mem::take(&mut *self.before_grant_put.lock().unwrap());
            if !racing.is_empty() {
                self.inner.transact(racing).await?;
            }
        }
        self.inner.put(t, item, cond).await
    }
    async fn delete(&self, t: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError> {
        self.inner.delete(t, pk, sk, cond).await
    }
    async fn query(
        &self,
        t: Table,
        index: Index,
        partition: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.inner.query(t, index, partition, cursor, limit).await
    }
    fn cursor_after(&self, index: Index, item: &Item) -> Result<String, StoreError> {
        self.inner.cursor_after(index, item)
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let deletes_grant_item = writes.iter().any(|w| {
            matches!(
                w,
                Write::Delete {
                    table: Table::Grants,
                    ..
                }
            )
        });
        if deletes_grant_item && self.fail_grant_deletes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected: throttled / timed out".into()));
        }
        self.inner.transact(writes).await
    }
}

struct H {
    app: Arc<App>,
    kv: Arc<Flaky>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn h() -> H {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at(1_800_000_000);
    let inner = EmbeddedStore::open(&dir.path().join("bulwark.db"), clock.clone()).expect("store");
    let kv = Arc::new(Flaky {
        inner,
        fail_grant_deletes: AtomicBool::new(false),
        queries: AtomicUsize::new(0),
        before_grant_put: Default::default(),
    });
    let config = Config::new("http://127.0.0.1:8080").expect("config");
    let signer = LocalSigner::open(dir.path(), clock.clone(), config.max_access_token_ttl).expect("signer");
    let app = App::new(config, kv.clone(), Arc::new(signer), clock.clone());
    tenants::create(&app, "acme", DcrPolicy::Open, None)
        .await
        .unwrap();
    tenants::add_scope(&app, &tid("acme"), "api:read", "Read", None)
        .await
        .unwrap();
    H {
        app,
        kv,
        clock,
        _dir: dir,
    }
}

async fn alice(app: &App) -> String {
    (users::create(
        app,
        users::NewUser {
            tenant: "acme",
            username: "alice",
            password: &Secret::new("correct horse battery staple"),
            email: None,
            name: None,
            admin: false,
        },
    )
    .await
    .unwrap()
    .sub)
        .into()
}

/// A public code + refresh client made through the admin API.
async fn notes(app: &App) -> String {
    (clients::create_admin_made(
        app,
        &tid("acme"),
        &json!({
            "client_name": "Notes",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://notes.example/cb"],
            "token_endpoint_auth_method": "none",
            "scope": "openid api:read",
        }),
        Default::default(),
        Origin::Api,
        "admin-test",
    )
    .await
    .unwrap()
    .client
    .client_id)
        .into()
}

async fn set_disabled(
    app: &App,
    client_id: &str,
    disabled: bool,
) -> Result<(), crate::service::tenants::AdminError> {
    admin::patch_client(
        app,
        &tid("acme"),
        &ClientId::from(client_id),
        None,
        &json!({ "disabled": disabled }),
        "admin-test",
    )
    .await
    .map(|_| ())
}

fn params(pairs: &[(&str, &str)]) -> Params {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(body.as_bytes()).unwrap()
}

/// FINDING: the disable cascade runs once, after the client has moved to `disabled`; if it is
/// cut short (store error, Lambda timeout on a client with many grants), PATCH
/// `{"disabled": true}` again finds the client already disabled and sweeps nothing, and
/// enabling the client brings its surviving grants and refresh tokens back. README: "enabling it
/// again brings none back".
#[tokio::test]
async fn an_interrupted_disable_cascade_brings_no_refresh_token_back_on_enable() {
    let h = h().await;
    let app = &h.app;
    let sub = alice(app).await;
    let client_id = notes(app).await;
    let now = app.now();
    let grant = Grant {
        gid: random_id(16),
        tenant: tid("acme"),
        sub: sub.clone().into(),
        client_id: client_id.clone().into(),
        scope: "api:read".into(),
        auth_time: now,
        created_at: now,
        last_used: now,
        expires_at: now + 86_400,
        user_epoch: None,
        grant_epoch: 0,
        resources: Vec::new(),
    };
    let refresh = crate::secret::generate();
    let mut writes: Vec<Write> = app.repo.create_grant_writes(&grant).unwrap().into();
    writes.push(
        app.repo
            .create_refresh_write(
                &refresh.hash().to_hex(),
                &grants::new_refresh(&grant, now, 86_400),
            )
            .unwrap(),
    );
    app.repo.commit(writes).await.unwrap();

    // The sweep fails: the admin gets a 503, but the client is disabled already.
    h.kv.fail_grant_deletes.store(true, Ordering::SeqCst);
    assert!(set_disabled(app, &client_id, true).await.is_err());
    h.kv.fail_grant_deletes.store(false, Ordering::SeqCst);
    assert!(app.repo.client(&client_id).await.unwrap().is_none());
    // The admin retries, as a 503 says to: 200, yet nothing is swept.
    set_disabled(app, &client_id, true).await.unwrap();
    h.clock.advance(5);
    set_disabled(app, &client_id, false).await.unwrap();
    h.clock.advance(5);

    let client = app.repo.client(&client_id).await.unwrap().unwrap().value;
    let r = grants::refresh_token(
        app,
        &crate::service::testing::req(
            &client,
            &params(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
            ]),
        ),
    )
    .await;
    assert!(
        r.is_err(),
        "a refresh token issued before the client was disabled works again after it is enabled"
    );
}

/// FINDING: a code issued just before the client was disabled is redeemed after it is enabled
/// (within the code's lifetime): disabling writes no marker and redemption does not compare the
/// code's `issued_at` with the client's `tokens_revoked_before`.
#[tokio::test]
async fn a_code_issued_before_disable_is_refused_after_enable() {
    let h = h().await;
    let app = &h.app;
    let sub = alice(app).await;
    let client_id = notes(app).await;
    let verifier = "v".repeat(43);
    let code = crate::secret::generate();
    let now = app.now();
    let c = AuthCode {
        tenant: tid("acme"),
        sub: sub.clone().into(),
        auth_time: now,
        request: AuthRequest {
            client_id: client_id.clone().into(),
            redirect_uri: "https://notes.example/cb".into(),
            redirect_uri_explicit: false,
            scope: "api:read".into(),
            state: None,
            nonce: None,
            code_challenge: s256(&verifier),
            prompt: Default::default(),
            max_age: None,
            login_hint: None,
            resources: Vec::new(),
            dpop_jkt: None,
        },
        issued_at: now,
        revocation: None,
        user_epoch: Some(0),
        grant_epoch: None,
        issuer_scope: None,
    };
    app.repo
        .commit(vec![
            app.repo
                .create_code_write(&code.hash().to_hex(), &c, now + 60)
                .unwrap(),
        ])
        .await
        .unwrap();
    h.clock.advance(1);
    set_disabled(app, &client_id, true).await.unwrap();
    h.clock.advance(10);
    set_disabled(app, &client_id, false).await.unwrap();
    h.clock.advance(10);

    let client = app.repo.client(&client_id).await.unwrap().unwrap().value;
    let r = grants::authorization_code(
        app,
        &crate::service::testing::req(
            &client,
            &params(&[
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("code_verifier", &verifier),
            ]),
        ),
    )
    .await;
    assert!(
        r.is_err(),
        "a code issued before the client was disabled yields a new grant (and refresh token) after it is enabled"
    );
}

/// A code redemption writes its grant without a transaction. The user taking the app back in
/// between (the marker lands after the redemption checked it, and the take-back's listing of the
/// user's grants ran before the grant was written, so it missed it) must still leave no live
/// grant: the redemption reads the marker again once its grant landed, ends that grant and
/// refuses.
#[tokio::test]
async fn a_code_redeemed_while_the_user_takes_the_app_back_leaves_no_grant() {
    let h = h().await;
    let app = &h.app;
    let sub = alice(app).await;
    let client_id = notes(app).await;
    let verifier = "v".repeat(43);
    let code = crate::secret::generate();
    let now = app.now();
    let c = AuthCode {
        tenant: tid("acme"),
        sub: sub.clone().into(),
        auth_time: now,
        request: AuthRequest {
            client_id: client_id.clone().into(),
            redirect_uri: "https://notes.example/cb".into(),
            redirect_uri_explicit: false,
            scope: "api:read".into(),
            state: None,
            nonce: None,
            code_challenge: s256(&verifier),
            prompt: Default::default(),
            max_age: None,
            login_hint: None,
            resources: Vec::new(),
            dpop_jkt: None,
        },
        issued_at: now,
        revocation: None,
        user_epoch: Some(0),
        grant_epoch: None,
        issuer_scope: None,
    };
    app.repo
        .commit(vec![
            app.repo
                .create_code_write(&code.hash().to_hex(), &c, now + 60)
                .unwrap(),
        ])
        .await
        .unwrap();
    h.clock.advance(1);
    *h.kv.before_grant_put.lock().unwrap() = vec![
        app.repo
            .app_revoked_write("acme", &sub, &client_id, app.now(), app.now() + 3600)
            .unwrap(),
    ];
    let client = app.repo.client(&client_id).await.unwrap().unwrap().value;
    let r = grants::authorization_code(
        app,
        &crate::service::testing::req(
            &client,
            &params(&[
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("code_verifier", &verifier),
            ]),
        ),
    )
    .await;
    assert!(h.kv.before_grant_put.lock().unwrap().is_empty(), "the race ran");
    assert!(r.is_err(), "a grant issued across the user's take-back");
    assert!(
        app.repo.grants_of(&sub).await.unwrap().is_empty(),
        "the grant the take-back's listing missed is gone"
    );
}

/// FINDING: client_credentials is not transactional: a request that authenticated the client
/// just before it was disabled signs its token in a later second; that token is dead while the
/// client is disabled but comes back to life when the client is enabled (its `iat` is after
/// `tokens_revoked_before`).
#[tokio::test]
async fn a_client_credentials_token_racing_disable_stays_dead_after_enable() {
    let h = h().await;
    let app = &h.app;
    let reg = clients::create_admin_made(
        app,
        &tid("acme"),
        &json!({"client_name": "Reports", "grant_types": ["client_credentials"], "scope": "api:read"}),
        Default::default(),
        Origin::Api,
        "admin-test",
    )
    .await
    .unwrap();
    let id = reg.client.client_id.clone();
    // The token endpoint authenticated the client (it was live then) ...
    let authenticated = app.repo.client(&id).await.unwrap().unwrap().value;
    // ... the admin disables it ...
    set_disabled(app, &id, true).await.unwrap();
    // ... and the token is signed a moment later, in the next second.
    h.clock.advance(1);
    let t = tokens::client_credentials(
        app,
        &crate::service::testing::req(&authenticated, &Params::default()),
    )
    .await
    .unwrap();
    let token = t.access_token.clone();
    assert!(tokens::live_claims(app, &token, None).await.unwrap().is_none());
    h.clock.advance(30);
    set_disabled(app, &id, false).await.unwrap();
    assert!(
        tokens::live_claims(app, &token, None).await.unwrap().is_none(),
        "a token issued to a disabled client becomes active when the client is enabled"
    );
}

/// FINDING: the admin API accepts any access token carrying bulwark:admin whatever its `aud`:
/// an admin client's token for a resource server (asked with `resource=`, or the default
/// audience) is an admin credential in that server's hands.
#[tokio::test]
async fn an_admin_token_minted_for_a_resource_server_is_refused_by_the_admin_api() {
    use axum::body::Body;
    use tower::ServiceExt;

    let h = h().await;
    let app = &h.app;
    tenants::add_resource(app, &tid("acme"), "https://rs.example", None, "test")
        .await
        .unwrap();
    let ops = clients::create_by_admin(
        app,
        &tid("acme"),
        &json!({"client_name": "Ops", "grant_types": ["client_credentials"], "scope": "bulwark:admin api:read"}),
        Default::default(),
    )
    .await
    .unwrap()
    .client;
    // A token the ops client sends to https://rs.example (no scope asked: it gets them all).
    let t = tokens::client_credentials(
        app,
        &crate::service::testing::req(&ops, &params(&[("resource", "https://rs.example")])),
    )
    .await
    .unwrap();
    let token = t.access_token.clone();

    // The resource server replays it against the admin API.
    let resp = crate::http::admin::router(app.clone())
        .oneshot(
            axum::http::Request::get("/admin/v1/clients")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(
        resp.status(),
        axum::http::StatusCode::OK,
        "a bulwark:admin token whose aud is https://rs.example administers the tenant"
    );
}

/// FINDING: with a filter that matches little, GET /admin/v1/audit?limit=1 reads the trail one
/// event per store query, up to 2000 queries (2000 sequential DynamoDB round trips, well past
/// the Lambda's 10 s) for one request.
#[tokio::test]
async fn a_filtered_audit_page_costs_a_bounded_number_of_queries() {
    let h = h().await;
    let app = &h.app;
    for i in 0..300 {
        app.repo
            .note(
                "acme",
                crate::domain::audit::Noted::LoginFailed,
                "test",
                &format!("s{i}"),
            )
            .await
            .unwrap();
    }
    h.kv.queries.store(0, Ordering::SeqCst);
    let filter = admin::AuditFilter {
        kind: Some("client.deleted".into()),
        ..Default::default()
    };
    let (events, _) = admin::audit(app, &tid("acme"), &filter, None, 1).await.unwrap();
    assert!(events.is_empty());
    let queries = h.kv.queries.load(Ordering::SeqCst);
    assert!(
        queries <= 10,
        "one filtered audit request with limit=1 made {queries} store queries"
    );
}

/// FINDING (same class, users): a code issued before the admin deactivated a user (say, an
/// attacker signed in with a stolen password) is redeemed after the admin resets the password
/// and reactivates them within the code's lifetime: the code carries no user epoch, and
/// redemption only asks whether the user is active now. The grant it creates (with a refresh
/// token) survives the password reset.
#[tokio::test]
async fn a_code_issued_before_deactivation_is_refused_after_reactivation() {
    let h = h().await;
    let app = &h.app;
    let sub = alice(app).await;
    let client_id = notes(app).await;
    let verifier = "w".repeat(43);
    let code = crate::secret::generate();
    let now = app.now();
    let c = AuthCode {
        tenant: tid("acme"),
        sub: sub.clone().into(),
        auth_time: now,
        request: AuthRequest {
            client_id: client_id.clone().into(),
            redirect_uri: "https://notes.example/cb".into(),
            redirect_uri_explicit: false,
            scope: "api:read".into(),
            state: None,
            nonce: None,
            code_challenge: s256(&verifier),
            prompt: Default::default(),
            max_age: None,
            login_hint: None,
            resources: Vec::new(),
            dpop_jkt: None,
        },
        issued_at: now,
        revocation: None,
        user_epoch: Some(0),
        grant_epoch: None,
        issuer_scope: None,
    };
    app.repo
        .commit(vec![
            app.repo
                .create_code_write(&code.hash().to_hex(), &c, now + 60)
                .unwrap(),
        ])
        .await
        .unwrap();
    h.clock.advance(1);
    admin::set_active(
        app,
        &tid("acme"),
        &Subject::from(sub.as_str()),
        false,
        "admin-test",
    )
    .await
    .unwrap();
    admin::patch_user(
        app,
        &tid("acme"),
        &Subject::from(sub.as_str()),
        None,
        admin::UserChanges {
            password: Some(Secret::new("a brand new long passphrase")),
            ..Default::default()
        },
        "admin-test",
    )
    .await
    .unwrap();
    admin::set_active(
        app,
        &tid("acme"),
        &Subject::from(sub.as_str()),
        true,
        "admin-test",
    )
    .await
    .unwrap();
    h.clock.advance(5);
    let client = app.repo.client(&client_id).await.unwrap().unwrap().value;
    let r = grants::authorization_code(
        app,
        &crate::service::testing::req(
            &client,
            &params(&[
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("code_verifier", &verifier),
            ]),
        ),
    )
    .await;
    assert!(
        r.is_err(),
        "a code issued before deactivation + password reset yields a grant after reactivation"
    );
}
