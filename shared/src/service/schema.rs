//! Whether this process may serve its store: the store's schema version against the code's
//! (`store::schema`), read once per process and cached.

use std::sync::Arc;

use super::App;
use crate::store::schema::{CURRENT_SCHEMA, MIGRATIONS, Serving, serving};

/// The cached verdict of one process (a Lambda execution environment, a `bulwark serve`).
#[derive(Default)]
pub struct SchemaGate {
    verdict: tokio::sync::OnceCell<bool>,
}

impl SchemaGate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether requests may be served. The first call reads the version item (one GetItem),
    /// logs one line if the answer is no, and caches the answer for the process. A read that
    /// fails is not cached: the request goes on (it meets the same store and fails or not on
    /// its own) and the next one reads again.
    pub async fn admits(&self, app: &App) -> bool {
        let verdict = self
            .verdict
            .get_or_try_init(|| async {
                match app.repo.schema_version().await {
                    Ok(stored) => Ok(decide(stored)),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the store's schema version; reading it again on the next request");
                        Err(())
                    }
                }
            })
            .await;
        verdict.map_or(true, |admitted| *admitted)
    }
}

fn decide(stored: u32) -> bool {
    match serving(stored, CURRENT_SCHEMA, MIGRATIONS) {
        Serving::Ready => true,
        Serving::TooNew { stored, current } => {
            tracing::error!(
                stored,
                current,
                "the store's schema version {stored} is newer than this code understands ({current}): every request answers 503 until code that knows it is deployed"
            );
            false
        }
        Serving::NeedsMigration { stored, current } => {
            tracing::error!(
                stored,
                current,
                "the store's schema version {stored} is older than this code's ({current}) and not readable by it: every request answers 503 until `bulwark migrate` has run"
            );
            false
        }
    }
}
