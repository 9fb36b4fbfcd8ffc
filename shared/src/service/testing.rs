//! Test support for the layers above the services (http's in-process tests): an [`App`] over
//! the embedded store and a local key in a directory, fixtures that put in the store what the
//! flows would (a grant with its consent and refresh token, a delegation), and reads of stored
//! state for assertions. http's tests reach the store only through here.

use std::path::Path;
use std::sync::Arc;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::client::Client;
use crate::domain::consent::{Consent, Delegation};
use crate::domain::grant::Grant;
use crate::domain::user::User;
use crate::fetch::Fetcher;
use crate::keys::local::LocalSigner;
use crate::secret::{Secret, random_id};
use crate::service::App;
use crate::service::grants::new_refresh;
use crate::store::embedded::EmbeddedStore;

/// A token request of `client` without a DPoP proof.
pub(crate) fn req<'a>(
    client: &'a crate::domain::client::Client,
    params: &'a crate::domain::params::Params,
) -> crate::service::token_endpoint::TokenRequest<'a> {
    crate::service::token_endpoint::TokenRequest {
        client,
        params,
        dpop: None,
    }
}

/// A tenant id for a test (`"acme"`); panics on a malformed one.
pub(crate) fn tid(s: &str) -> crate::domain::tenant::TenantId {
    crate::domain::tenant::TenantId::parse(s).expect("a test tenant id")
}

/// An app for `config` over a fresh embedded store and local key in `dir`.
pub(crate) fn embedded_app(dir: &Path, config: Config, clock: Arc<ManualClock>) -> Arc<App> {
    let store = EmbeddedStore::open(&dir.join("bulwark.db"), clock.clone()).expect("store");
    let signer = LocalSigner::open(dir, clock.clone(), config.max_access_token_ttl).expect("signer");
    App::new(config, Arc::new(store), Arc::new(signer), clock)
}

/// `base` fetching other parties' documents with `fetcher` (fresh per-process caches).
pub(crate) fn with_fetcher(base: &App, fetcher: Arc<dyn Fetcher>) -> Arc<App> {
    Arc::new(App {
        config: base.config.clone(),
        repo: base.repo.clone(),
        signer: base.signer.clone(),
        fetcher,
        client_keys: Default::default(),
        issuer_keys: Default::default(),
        own_token_endpoint: base.own_token_endpoint.clone(),
        recent_use: Default::default(),
        dpop_nonces: Default::default(),
        metrics: base.metrics.clone(),
        tenant_cache: base.tenant_cache.clone(),
    })
}

/// A grant of `sub` (of tenant `tenant`) to `client_id` with its consent, and a refresh token
/// of it, as a code redemption would leave them.
pub(crate) async fn seed_grant(
    app: &App,
    tenant: &str,
    sub: &str,
    client_id: &str,
    user_epoch: Option<u64>,
    scope: &str,
) -> (Grant, Secret) {
    let now = app.now();
    let g = Grant {
        gid: random_id(16),
        tenant: tid(tenant),
        sub: sub.into(),
        client_id: client_id.into(),
        scope: scope.into(),
        auth_time: now,
        created_at: now,
        last_used: now,
        expires_at: now + 86_400,
        user_epoch,
        grant_epoch: 0,
        resources: Vec::new(),
    };
    let writes = app.repo.create_grant_writes(&g).expect("grant writes");
    app.repo.commit(writes.into()).await.expect("grant");
    let c = Consent {
        tenant: tid(tenant),
        sub: sub.into(),
        client_id: client_id.into(),
        scope: scope.into(),
        granted_at: now,
        updated_at: now,
        client_epoch: 0,
        resources: None,
        user_epoch: 0,
    };
    let writes = app.repo.put_consent_writes(&c, None).expect("consent writes");
    app.repo.commit(writes).await.expect("consent");
    let rt = crate::secret::generate();
    let w = app
        .repo
        .create_refresh_write(&rt.hash().to_hex(), &new_refresh(&g, now, 86_400))
        .expect("refresh write");
    app.repo.commit(vec![w]).await.expect("refresh token");
    (g, rt)
}

/// Store a delegation as an agent's first exchange would.
pub(crate) async fn seed_delegation(app: &App, d: &Delegation) {
    let w = app.repo.put_delegation_write(d, None).expect("delegation write");
    app.repo.commit(vec![w]).await.expect("delegation");
}

pub(crate) async fn user(app: &App, sub: &str) -> Option<User> {
    app.repo.user(sub).await.expect("store").map(|v| v.value)
}

pub(crate) async fn grant(app: &App, sub: &str, gid: &str) -> Option<Grant> {
    app.repo.grant(sub, gid).await.expect("store").map(|v| v.value)
}

pub(crate) async fn consent(app: &App, tenant: &str, sub: &str, client_id: &str) -> Option<Consent> {
    app.repo
        .consent(tenant, sub, client_id)
        .await
        .expect("store")
        .map(|v| v.value)
}

pub(crate) async fn delegation(app: &App, sub: &str, app_id: &str, agent: &str) -> Option<Delegation> {
    app.repo
        .delegation(sub, app_id, agent)
        .await
        .expect("store")
        .map(|v| v.value)
}

/// A client of `tenant` as stored, live or disabled.
pub(crate) async fn client_in(app: &App, tenant: &str, client_id: &str) -> Option<Client> {
    app.repo
        .client_any_in(tenant, client_id)
        .await
        .expect("store")
        .map(|v| v.value)
}

pub(crate) async fn client(app: &App, client_id: &str) -> Option<Client> {
    app.repo.client(client_id).await.expect("store").map(|v| v.value)
}
