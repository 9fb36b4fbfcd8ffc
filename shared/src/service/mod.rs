//! Application services: the OAuth rules of `domain` applied through the ports. The HTTP
//! routers and the CLI are thin translators over these functions.

pub mod account;
pub mod authorize;
pub mod clients;
pub mod exchange;
pub mod grants;
pub mod password;
pub mod tenants;
pub mod token_endpoint;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::keys::Signer;
use crate::store::Kv;
use crate::store::repo::Repo;

/// Everything a request needs, built once per process (per Lambda cold start).
pub struct App {
    pub config: Config,
    pub repo: Repo,
    pub signer: Arc<dyn Signer>,
}

impl App {
    pub fn new(config: Config, kv: Arc<dyn Kv>, signer: Arc<dyn Signer>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Self {
            config,
            repo: Repo::new(kv, clock),
            signer,
        })
    }
    pub fn now(&self) -> i64 {
        self.repo.now()
    }
}

#[cfg(all(test, feature = "embedded", feature = "local-signer"))]
mod tests;
