//! What every Lambda function's `main` does: JSON logs on stdout, configuration from the
//! environment (validated at cold start: a missing or malformed variable stops the start with a
//! clear message), AWS clients built once, and the endpoint's router served by `lambda_http`.

use axum::Router;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::http::State;
use crate::logging::{self, LogTarget};
use crate::service::App;
use crate::store::dynamodb::{DynamoStore, TableNames};

pub use lambda_http::Error;

/// Build the app from the environment and serve `router` on the Lambda runtime API.
pub async fn run(router: fn(State) -> Router) -> Result<(), Error> {
    logging::init(LogTarget::Stdout);
    let app = match app_from_env().await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed: configuration");
            return Err(e.into());
        }
    };
    lambda_http::run(crate::http::with_tenant_issuers(router(app.clone()), app)).await
}

/// Build the app from the environment and answer every invocation (an EventBridge schedule's
/// event, whatever it holds) with one sweep of unused open registrations
/// (`service::sweep`); the answer is its summary. A failed sweep fails the invocation, so the
/// scheduler's retry runs it again.
pub async fn run_sweeper() -> Result<(), Error> {
    use crate::service::sweep::{DEFAULT_MAX_PER_SHARD, expire_open_registrations};
    use lambda_http::{LambdaEvent, service_fn};
    logging::init(LogTarget::Stdout);
    let app = match app_from_env().await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed: configuration");
            return Err(e.into());
        }
    };
    lambda_http::lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move {
            let r = expire_open_registrations(&app, None, DEFAULT_MAX_PER_SHARD, "sweeper")
                .await
                .map_err(|e| Error::from(format!("the sweep failed: {}", e.description)))?;
            Ok::<_, Error>(serde_json::json!({
                "examined": r.examined,
                "expired": r.expired.len(),
                "postponed": r.postponed,
                "dropped": r.dropped,
                "skipped": r.skipped,
                "more": r.more,
            }))
        }
    }))
    .await
}

/// `Config::from_env` plus the DynamoDB tables and the signer of `BULWARK_SIGNING_MODE`. The SDK
/// takes region, credentials and (for local emulators) `AWS_ENDPOINT_URL` from the environment
/// only (`aws::lambda_sdk_config`).
/// A signer that needs key material (kms-wrapped, in the function that signs) is prepared here,
/// at cold start; if that fails the start does not: requests answer 503 and the next one tries
/// again.
pub async fn app_from_env() -> Result<Arc<App>, crate::config::ConfigError> {
    let config = Config::from_env()?;
    let aws = Config::aws_from_lookup(|k| std::env::var(k).ok())?;
    let sdk = crate::aws::lambda_sdk_config(|k| std::env::var(k).ok());
    let clock = Arc::new(SystemClock);
    let store: Arc<dyn crate::store::Kv> = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        TableNames::with_prefix(&aws.table_prefix),
        clock.clone(),
    ));
    let signer = crate::keys::aws_signer(
        &aws.signing,
        &sdk,
        Arc::new(crate::store::repo::Repo::new(store.clone(), clock.clone())),
        clock.clone(),
        config.max_access_token_ttl,
    )
    .map_err(|e| crate::config::ConfigError::Malformed {
        name: "BULWARK_KMS_KEY_IDS",
        why: e.to_string(),
    })?;
    if let Err(e) = signer.prepare().await {
        tracing::error!(error = %e, "signing keys not ready at cold start; retrying on the next request");
    }
    Ok(App::new(config, store, signer, clock))
}
