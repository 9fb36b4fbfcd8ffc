//! Application services: the OAuth rules of `domain` applied through the ports. The HTTP
//! routers and the CLI are thin translators over these functions.

pub mod access;
pub mod account;
pub mod admin;
pub mod authorize;
pub mod cimd;
pub mod client_auth;
pub mod client_keys;
pub mod clients;
pub mod console;
pub mod device;
pub mod dpop;
pub mod exchange;
pub mod federation;
pub mod grants;
pub mod par;
pub mod password;
pub mod schema;
pub mod sweep;
pub mod tenant_cache;
pub mod tenants;
pub mod token_endpoint;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::fetch::{Fetcher, GuardedFetcher, HttpTokenEndpoint, OwnTokenEndpoint};
use crate::keys::Signer;
use crate::metrics::Metrics;
use crate::store::Kv;
use crate::store::repo::Repo;

/// Everything a request needs, built once per process (per Lambda cold start).
pub struct App {
    pub config: Config,
    pub repo: Repo,
    pub signer: Arc<dyn Signer>,
    /// The one way to fetch a URL a stranger chose (SSRF-guarded).
    pub fetcher: Arc<dyn Fetcher>,
    /// Clients' key sets fetched from their `jwks_uri`.
    pub client_keys: Arc<client_keys::KeyCache>,
    /// Tenant-trusted issuers' key sets fetched from their `jwks_uri` (workload platforms,
    /// identity providers): kept apart from `client_keys`, whose URLs strangers choose (DCR),
    /// so that churning those evicts no issuer's keys.
    pub issuer_keys: Arc<client_keys::KeyCache>,
    /// Our own token endpoint, for the console's sign-in.
    pub own_token_endpoint: Arc<dyn OwnTokenEndpoint>,
    /// Clients whose last use this process recorded lately.
    pub recent_use: Arc<token_endpoint::RecentUse>,
    /// Tenants' config as the token path reads it: at most `config.tenant_cache_secs` old.
    pub tenant_cache: Arc<tenant_cache::TenantCache>,
    /// DPoP server nonces this process made (`service::dpop::nonce`).
    pub dpop_nonces: Arc<dpop::NonceCache>,
    /// Where the services count what happened (`metrics::Metrics`; no-op unless the
    /// composition root plugs in a sink).
    pub metrics: Arc<dyn Metrics>,
}

impl App {
    pub fn new(config: Config, kv: Arc<dyn Kv>, signer: Arc<dyn Signer>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Self::new_with_metrics(config, kv, signer, clock, crate::metrics::noop())
    }

    /// As [`App::new`], counting into `metrics`.
    pub fn new_with_metrics(
        config: Config,
        kv: Arc<dyn Kv>,
        signer: Arc<dyn Signer>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn Metrics>,
    ) -> Arc<Self> {
        // Both HTTP clients are built on first use (not at cold start: ARCHITECTURE "Small,
        // fast functions").
        let fetcher: Arc<dyn Fetcher> = Arc::new(GuardedFetcher::new(config.issuer_is_loopback_http()));
        let own_token_endpoint: Arc<dyn OwnTokenEndpoint> = Arc::new(HttpTokenEndpoint::new());
        let tenant_cache = Arc::new(tenant_cache::TenantCache::new(
            config.tenant_cache_secs,
            tenant_cache::MAX_ENTRIES,
            clock.clone(),
        ));
        Arc::new(Self {
            config,
            repo: Repo::new(kv, clock),
            signer,
            fetcher,
            client_keys: Default::default(),
            issuer_keys: Default::default(),
            own_token_endpoint,
            recent_use: Default::default(),
            tenant_cache,
            dpop_nonces: Default::default(),
            metrics,
        })
    }
    pub fn now(&self) -> i64 {
        self.repo.now()
    }

    /// A tenant's config as the token path uses it (client credentials, code redemption,
    /// refresh, token exchange, JWT bearer, password, `live_claims`, a tenant issuer's
    /// discovery and keys): from this process's cache, at most `config.tenant_cache_secs`
    /// (≤ 60) seconds old, so that a busy tenant's requests do not all read one item. Paths
    /// where a policy change must apply at once (authorization, registration, the admin API,
    /// the console, the account page) read `repo.tenant` instead.
    pub async fn tenant(
        &self,
        id: &str,
    ) -> Result<Option<Arc<crate::domain::tenant::Tenant>>, crate::store::StoreError> {
        self.tenant_cache
            .get(id, || async { Ok(self.repo.tenant(id).await?.map(|t| t.value)) })
            .await
    }

    /// After this process changed (or tried to change) tenant `id`'s config: its next read
    /// here is fresh. Every writer of a tenant item calls it.
    /// Which hosts registration accepts key URLs on: loopback only where this issuer's fetcher
    /// would reach it (a loopback-http development server).
    pub fn key_hosts(&self) -> crate::domain::net::KeyHosts {
        crate::domain::net::KeyHosts::for_issuer(self.config.issuer_is_loopback_http())
    }

    pub fn tenant_changed(&self, id: &str) {
        self.tenant_cache.forget(id);
    }

    /// Commit `writes`, which change tenant `id`'s config, then forget this process's copy.
    pub async fn commit_tenant_change(
        &self,
        id: &str,
        writes: Vec<crate::store::Write>,
    ) -> Result<(), crate::store::StoreError> {
        let landed = self.repo.commit(writes).await;
        self.tenant_changed(id);
        landed
    }

    /// The same app, serving a request as `tenant`'s own issuer (`{base}/t/{tenant}`): tokens
    /// it issues carry that `iss`, and only that tenant's clients, tokens and users are served.
    /// Everything but the config is shared.
    pub fn scoped(&self, tenant: &str) -> Arc<App> {
        Arc::new(Self {
            config: self.config.scoped(tenant),
            repo: self.repo.clone(),
            signer: self.signer.clone(),
            fetcher: self.fetcher.clone(),
            client_keys: self.client_keys.clone(),
            issuer_keys: self.issuer_keys.clone(),
            own_token_endpoint: self.own_token_endpoint.clone(),
            recent_use: self.recent_use.clone(),
            tenant_cache: self.tenant_cache.clone(),
            dpop_nonces: self.dpop_nonces.clone(),
            metrics: self.metrics.clone(),
        })
    }
}

#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
mod tests;

#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
pub(crate) mod testing;

#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
mod admin_tests;

#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
mod scale_tests;

#[cfg(test)]
#[cfg(all(feature = "embedded", feature = "local-signer"))]
mod device_tests;
