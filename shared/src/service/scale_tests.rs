//! What the token path costs the store, counted rather than guessed: a `Kv` wrapper that
//! records every call (as the DynamoDB adapter would make it), the tenant cache's bound on the
//! token path, and the per-operation counts `docs/scale.md` ("Per operation") quotes
//! (`cargo test -p shared --features embedded,local-signer scale_tests -- --nocapture` prints them).

use crate::service::testing::tid;
use async_trait::async_trait;
use serde_json::json;
use std::sync::{Arc, Mutex};

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::authorize::{AuthRequest, s256};
use crate::domain::client::Client;
use crate::domain::client_auth::read_credentials;
use crate::domain::params::Params;
use crate::domain::tenant::DcrPolicy;
use crate::error::ErrorCode;
use crate::keys::local::LocalSigner;
use crate::secret::Secret;
use crate::service::admin::{self, PolicyChanges};
use crate::service::{App, clients, grants, tenants, token_endpoint, tokens, users};
use crate::store::embedded::EmbeddedStore;
use crate::store::repo_users::AuthCode;
use crate::store::{Cond, Index, Item, Kv, Page, StoreError, Table, Write};

/// The embedded store, every call recorded as the DynamoDB API call it would be.
struct Counting {
    inner: EmbeddedStore,
    calls: Mutex<Vec<String>>,
}

impl Counting {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

#[async_trait]
impl Kv for Counting {
    async fn get(&self, t: Table, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.record(format!("GetItem {}:{}", t.name(), kind(pk)));
        self.inner.get(t, pk, sk).await
    }
    async fn put(&self, t: Table, item: Item, cond: Cond) -> Result<(), StoreError> {
        self.record(format!("PutItem {}:{}", t.name(), kind(&item.pk)));
        self.inner.put(t, item, cond).await
    }
    async fn delete(&self, t: Table, pk: &str, sk: &str, cond: Cond) -> Result<Option<Item>, StoreError> {
        self.record(format!("DeleteItem {}:{}", t.name(), kind(pk)));
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
        self.record(format!("Query {}:{}", t.name(), kind(partition)));
        self.inner.query(t, index, partition, cursor, limit).await
    }
    fn cursor_after(&self, index: Index, item: &Item) -> Result<String, StoreError> {
        self.inner.cursor_after(index, item)
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let items: Vec<String> = writes
            .iter()
            .map(|w| match w {
                Write::Put { table, item, .. } => format!("{}:{}", table.name(), kind(&item.pk)),
                Write::Delete { table, pk, .. } => format!("-{}:{}", table.name(), kind(pk)),
                Write::Check { table, pk, .. } => format!("?{}:{}", table.name(), kind(pk)),
            })
            .collect();
        self.record(format!(
            "TransactWriteItems({}) [{}]",
            writes.len(),
            items.join(" ")
        ));
        self.inner.transact(writes).await
    }
}

/// The kind of key (`client#abc` → `client`), so that counts read as a table of item kinds.
fn kind(pk: &str) -> &str {
    pk.split('#').next().unwrap_or(pk)
}

struct H {
    app: Arc<App>,
    kv: Arc<Counting>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl H {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::at(1_800_000_000);
        let store = EmbeddedStore::open(&dir.path().join("bulwark.db"), clock.clone()).expect("store");
        let kv = Arc::new(Counting {
            inner: store,
            calls: Mutex::new(Vec::new()),
        });
        let app = instance(&dir, kv.clone(), clock.clone());
        Self {
            app,
            kv,
            clock,
            _dir: dir,
        }
    }
    /// How many of `calls` read a tenant's config item.
    fn tenant_reads(calls: &[String]) -> usize {
        calls.iter().filter(|c| *c == "GetItem tenants:tenant").count()
    }
}

/// Another process (a Lambda instance) over the same store and key: its own caches.
fn instance(dir: &tempfile::TempDir, kv: Arc<dyn Kv>, clock: Arc<ManualClock>) -> Arc<App> {
    let config = Config::new("http://127.0.0.1:8080").expect("config");
    let signer = LocalSigner::open(dir.path(), clock.clone(), config.max_access_token_ttl).expect("signer");
    App::new(config, kv, Arc::new(signer), clock)
}

async fn setup(app: &App) -> (Client, Secret) {
    tenants::create(app, "acme", DcrPolicy::Open, None)
        .await
        .expect("tenant");
    tenants::add_scope(app, &tid("acme"), "api:read", "Read", None)
        .await
        .expect("scope");
    let reg = clients::create_by_admin(
        app,
        &tid("acme"),
        &json!({
            "client_name": "ci", "grant_types": ["client_credentials"], "scope": "api:read",
            "token_endpoint_auth_method": "client_secret_post",
        }),
        // It also introspects the users' tokens (for the tenant's default audience) below.
        clients::AdminFields {
            resource_server_for: vec!["urn:bulwark:tenant:acme".into()],
            ..Default::default()
        },
    )
    .await
    .expect("client");
    (reg.client, reg.secret.expect("secret"))
}

fn form(pairs: &[(&str, &str)]) -> Params {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Params::parse(body.as_bytes()).expect("form")
}

/// What `POST /oauth2/token` does: authenticate the client, run the grant.
async fn token(
    app: &App,
    p: &Params,
) -> Result<crate::domain::grant_type::TokenResponse, crate::error::OAuthError> {
    let creds = read_credentials(None, p).expect("credentials");
    let client = tokens::authenticate(app, &creds, "/oauth2/token").await?;
    token_endpoint::grant(app, &crate::service::testing::req(&client, p)).await
}

fn cc_form(client: &Client, secret: &Secret) -> Params {
    form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client.client_id),
        ("client_secret", secret.expose()),
    ])
}

#[tokio::test]
async fn a_hundred_client_credentials_tokens_read_the_tenant_item_at_most_once_a_minute() {
    let h = H::new();
    let app = &h.app;
    let (client, secret) = setup(app).await;
    h.kv.take();
    // One token a second for 100 seconds: the tenant item is read when the cache is cold and
    // once the entry is 60 s old, never more than once in any 60 s.
    let mut reads_at = Vec::new();
    for i in 0..100 {
        token(app, &cc_form(&client, &secret)).await.expect("token");
        let calls = h.kv.take();
        if H::tenant_reads(&calls) > 0 {
            reads_at.push(i);
        }
        assert!(H::tenant_reads(&calls) <= 1);
        h.clock.advance(1);
    }
    assert_eq!(reads_at, vec![0, 60], "tenant item reads at seconds {reads_at:?}");

    // A burst of concurrent requests against a cold cache (a new Lambda instance taking
    // traffic at once): one read between them.
    let cold = instance(&h._dir, h.kv.clone(), h.clock.clone());
    h.kv.take();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (app, p) = (cold.clone(), cc_form(&client, &secret));
        tasks.push(tokio::spawn(async move { token(&app, &p).await.is_ok() }));
    }
    for t in tasks {
        assert!(t.await.expect("task"));
    }
    assert_eq!(H::tenant_reads(&h.kv.take()), 1, "50 concurrent misses, one read");
}

#[tokio::test]
async fn a_policy_change_reaches_the_token_path_of_every_instance_within_sixty_seconds() {
    let h = H::new();
    let token_instance = &h.app;
    let admin_instance = instance(&h._dir, h.kv.clone(), h.clock.clone());
    let (client, secret) = setup(token_instance).await;
    let ttl = |app: Arc<App>| {
        let p = cc_form(&client, &secret);
        async move { token(&app, &p).await.expect("token").expires_in }
    };
    assert_eq!(ttl(token_instance.clone()).await, 3600);
    // The administrator shortens access tokens through another instance (the admin function).
    h.clock.advance(10);
    admin::patch_policy(
        &admin_instance,
        &tid("acme"),
        None,
        PolicyChanges {
            access_token_ttl: Some(Some(600)),
            ..Default::default()
        },
        "admin",
    )
    .await
    .expect("policy");
    // The instance that changed it applies it at once.
    assert_eq!(ttl(admin_instance.clone()).await, 600);
    // The token instance may serve the old policy until its copy is 60 s old, not a second more.
    h.clock.advance(49);
    assert_eq!(ttl(token_instance.clone()).await, 3600, "59 s: the cached policy");
    h.clock.advance(1);
    assert_eq!(ttl(token_instance.clone()).await, 600, "60 s: the new policy");

    // A security decision on the same bound: an app taken off the allowlist gets no refresh.
    let app = token_instance;
    let (sub, notes) = user_and_code_client(app, "api:read").await;
    let (_, mut rt) = code_grant(app, &h.clock, &notes, &sub).await;
    let refresh = |app: Arc<App>, rt: String| {
        let p = form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &notes.client_id),
            ("refresh_token", &rt),
        ]);
        async move { token(&app, &p).await }
    };
    rt = refresh(app.clone(), rt)
        .await
        .expect("refresh")
        .refresh_token
        .unwrap();
    h.clock.advance(1);
    admin::patch_policy(
        &admin_instance,
        &tid("acme"),
        None,
        PolicyChanges {
            app_allowlist: Some(Some(vec![client.client_id.clone().into()])),
            ..Default::default()
        },
        "admin",
    )
    .await
    .expect("allowlist");
    let refused = refresh(admin_instance.clone(), rt.clone()).await.unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::InvalidGrant,
        "at once where it was changed"
    );
    // Elsewhere, within the bound (documented: at most 60 s).
    h.clock.advance(30);
    rt = refresh(app.clone(), rt)
        .await
        .expect("within the bound")
        .refresh_token
        .unwrap();
    h.clock.advance(30);
    let refused = refresh(app.clone(), rt).await.unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::InvalidGrant,
        "after the bound everywhere"
    );
}

/// A code for `sub` at `client`, redeemed: (the token response's access token, refresh token).
/// User `alice` and a public code-flow client "Notes" with refresh tokens and `scope`.
async fn user_and_code_client(app: &App, scope: &str) -> (String, Client) {
    let sub = users::create(
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
    .expect("user")
    .sub;
    let notes = clients::create_by_admin(
        app,
        &tid("acme"),
        &json!({
            "client_name": "Notes", "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://notes.example/cb"], "token_endpoint_auth_method": "none",
            "scope": scope,
        }),
        Default::default(),
    )
    .await
    .expect("client")
    .client;
    (sub.into(), notes)
}

async fn code_grant(app: &App, clock: &ManualClock, client: &Client, sub: &str) -> (String, String) {
    let verifier = "v".repeat(43);
    let code = crate::secret::generate();
    let now = app.now();
    let c = AuthCode {
        tenant: tid("acme"),
        sub: sub.into(),
        auth_time: now,
        request: AuthRequest {
            client_id: client.client_id.clone(),
            redirect_uri: "https://notes.example/cb".into(),
            redirect_uri_explicit: false,
            scope: client.metadata.scope.clone(),
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
    clock.advance(1);
    let body = token(
        app,
        &form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client.client_id),
            ("code", code.expose()),
            ("code_verifier", &verifier),
        ]),
    )
    .await
    .expect("redeemed");
    (body.access_token, body.refresh_token.expect("refresh token"))
}

/// The store calls of each operation on a warm instance (its tenant cache filled, the client's
/// hourly "last used" mark written), as `docs/scale.md`'s "Per operation" table lists them.
#[tokio::test]
async fn per_operation_store_calls() {
    let h = H::new();
    let app = &h.app;
    let (cc, secret) = setup(app).await;
    tenants::add_scope(app, &tid("acme"), "openid", "OpenID", None)
        .await
        .expect("scope");
    let (sub, notes) = user_and_code_client(app, "openid api:read").await;
    // Warm up: tenant cached, both clients' hourly marks written.
    token(app, &cc_form(&cc, &secret)).await.expect("warm");
    let (_, rt) = code_grant(app, &h.clock, &notes, &sub).await;
    h.kv.take();

    let mut table: Vec<(&str, Vec<String>)> = Vec::new();
    let cc_token = token(app, &cc_form(&cc, &secret)).await.expect("cc").access_token;
    table.push(("token: client_credentials", h.kv.take()));

    let (access, _) = code_grant(app, &h.clock, &notes, &sub).await;
    let mut calls = h.kv.take();
    // (the test's own write of the code is not the endpoint's)
    calls.remove(0);
    table.push(("token: authorization_code", calls));

    let next = token(
        app,
        &form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &notes.client_id),
            ("refresh_token", &rt),
        ]),
    )
    .await
    .expect("refresh")
    .refresh_token
    .unwrap();
    table.push(("token: refresh_token", h.kv.take()));

    let creds = read_credentials(
        None,
        &form(&[("client_id", &cc.client_id), ("client_secret", secret.expose())]),
    )
    .unwrap();
    let caller = tokens::authenticate(app, &creds, "/oauth2/introspect")
        .await
        .unwrap();
    table.push(("client authentication (introspect, revoke)", h.kv.take()));
    assert_eq!(
        tokens::introspect(app, &caller, &cc_token).await.unwrap()["active"],
        true
    );
    table.push(("introspect: a client_credentials token", h.kv.take()));
    assert_eq!(
        tokens::introspect(app, &caller, &access).await.unwrap()["active"],
        true
    );
    table.push(("introspect: a user's access token", h.kv.take()));
    // A refresh token is described only to its own client.
    assert_eq!(
        tokens::introspect(app, &caller, &next).await.unwrap()["active"],
        false
    );
    h.kv.take();
    assert_eq!(
        tokens::introspect(app, &notes, &next).await.unwrap()["active"],
        true
    );
    table.push(("introspect: a refresh token", h.kv.take()));
    grants::userinfo(
        app,
        &Secret::new(access.clone()),
        crate::service::dpop::Presented::Bearer,
    )
    .await
    .expect("userinfo");
    table.push(("userinfo", h.kv.take()));
    tokens::revoke(app, &caller, &cc_token).await.unwrap();
    table.push(("revoke: an access token", h.kv.take()));

    println!("\nstore calls per operation (warm instance):");
    for (op, calls) in &table {
        println!("  {op}: {} call(s)", calls.len());
        for c in calls {
            println!("      {c}");
        }
    }
    // What docs/scale.md quotes: keep them in step. No operation reads the tenant item.
    let expected: [(&str, &[&str]); 9] = [
        ("token: client_credentials", &["GetItem clients:client"]),
        (
            "token: authorization_code",
            &[
                "GetItem clients:client",
                // Read and checked before it is taken, so that no other client uses it up.
                "GetItem tokens:code",
                "DeleteItem tokens:code",
                "GetItem users:user",
                "GetItem tokens:revoked",
                // Each write on its own (a transaction bills twice): marker, pointer, grant,
                // refresh token, audit event; then the "took the app back" marker again.
                "PutItem tokens:usedcode",
                "PutItem grants:clientgrants",
                "PutItem grants:grants",
                "PutItem grants:rt",
                "PutItem audit:tenant",
                "GetItem tokens:revoked",
            ],
        ),
        (
            "token: refresh_token",
            &[
                "GetItem clients:client",
                "GetItem grants:rt",
                "GetItem grants:grants",
                "GetItem users:user",
                // No transaction: the next token, then the presented one marked rotated at the
                // version read (the one conditional write concurrent uses race for). The grant's
                // "last used" is written at most once an hour (not here: it was just made).
                "PutItem grants:rt",
                "PutItem grants:rt",
            ],
        ),
        (
            "client authentication (introspect, revoke)",
            &["GetItem clients:client"],
        ),
        (
            "introspect: a client_credentials token",
            &["GetItem tokens:jti", "GetItem clients:client"],
        ),
        (
            "introspect: a user's access token",
            &[
                "GetItem tokens:jti",
                "GetItem clients:client",
                "GetItem grants:grants",
                "GetItem users:user",
            ],
        ),
        (
            "introspect: a refresh token",
            &[
                "GetItem grants:rt",
                "GetItem clients:client",
                "GetItem grants:grants",
                "GetItem users:user",
            ],
        ),
        (
            "userinfo",
            &[
                "GetItem tokens:jti",
                "GetItem clients:client",
                "GetItem grants:grants",
                "GetItem users:user",
            ],
        ),
        (
            "revoke: an access token",
            &["TransactWriteItems(2) [tokens:jti audit:tenant]"],
        ),
    ];
    assert_eq!(table.len(), expected.len());
    for ((op, calls), (want_op, want)) in table.iter().zip(expected) {
        assert_eq!(*op, want_op);
        assert_eq!(calls, &want.to_vec(), "{op}");
    }
}
