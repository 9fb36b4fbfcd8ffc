//! What every Lambda function's `main` does: JSON logs on stdout, configuration from the
//! environment (validated at cold start: a missing or malformed variable stops the start with a
//! clear message), AWS clients built once, and the endpoint's router served by `lambda_http`.
//! Metrics: the process counts into an EMF sink ([`crate::metrics::emf`]), which is drained to
//! stdout after every invocation (one JSON line per set of dimension values; CloudWatch Logs
//! turns them into metrics), so an invocation's counts leave with its logs.

use axum::Router;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::http::State;
use crate::logging::{self, LogTarget};
use crate::metrics::emf::Emf;
use crate::metrics::{Event, Metrics};
use crate::service::App;
use crate::store::dynamodb::{DynamoStore, TableNames};

pub use lambda_http::Error;

/// Build the app from the environment and serve `router` on the Lambda runtime API.
pub async fn run(router: fn(State) -> Router) -> Result<(), Error> {
    logging::init(LogTarget::Stdout);
    let (app, emf) = match app_from_env().await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed: configuration");
            return Err(e.into());
        }
    };
    // The store's schema version, read once here (one GetItem) and cached for the process.
    let gate = crate::service::schema::SchemaGate::new();
    gate.admits(&app).await;
    let served = crate::http::with_tenant_issuers(router(app.clone()), app.clone());
    let served = crate::http::with_schema_gate(served, app, gate)
        .layer(axum::middleware::from_fn_with_state(emf, flush_after));
    lambda_http::run(served).await
}

/// Serve the request, then write what it counted (and, on the first, the cold start) as EMF
/// lines, each carrying the invocation's request id (which joins them to its logs).
async fn flush_after(
    axum::extract::State(emf): axum::extract::State<Arc<Emf>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use lambda_http::RequestExt;
    let request_id = req
        .extensions()
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let resp = next.run(req).await;
    if resp.status().is_server_error() {
        emf.record(Event::ServerError);
    }
    flush(&emf, &request_id);
    resp
}

/// Write `emf`'s pending lines to stdout (where Lambda's log capture reads them), whole lines
/// at once so that no log line interleaves.
fn flush(emf: &Emf, request_id: &str) {
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let lines = emf.drain(now, &[("requestId", request_id)]);
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// Build the app from the environment and answer every invocation (an EventBridge schedule's
/// event, whatever it holds) with one sweep of unused open registrations
/// (`service::sweep`); the answer is its summary. A failed sweep fails the invocation, so the
/// scheduler's retry runs it again; so does a store whose schema version this code does not
/// serve (`service::schema`).
pub async fn run_sweeper() -> Result<(), Error> {
    use crate::service::sweep::{DEFAULT_MAX_PER_SHARD, expire_open_registrations};
    use lambda_http::{LambdaEvent, service_fn};
    logging::init(LogTarget::Stdout);
    let (app, emf) = match app_from_env().await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cold start failed: configuration");
            return Err(e.into());
        }
    };
    let gate = crate::service::schema::SchemaGate::new();
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (app, emf, gate) = (app.clone(), emf.clone(), gate.clone());
        async move {
            if !gate.admits(&app).await {
                return Err(Error::from(
                    "the store's schema version is not one this code serves",
                ));
            }
            let r = expire_open_registrations(&app, None, DEFAULT_MAX_PER_SHARD, "sweeper").await;
            flush(&emf, &event.context.request_id);
            let r = r.map_err(|e| Error::from(format!("the sweep failed: {}", e.description)))?;
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
/// again. Every store and KMS call, and the services' events, count into the returned EMF sink
/// (`BULWARK_METRICS_NAMESPACE`, `BULWARK_METRICS_PER_TENANT`), which already holds the cold
/// start (and the cold start's Decrypt). `run` then reads the store's schema version once
/// (`service::schema::SchemaGate`): a store newer than this code answers every request 503.
pub async fn app_from_env() -> Result<(Arc<App>, Arc<Emf>), crate::config::ConfigError> {
    let config = Config::from_env()?;
    let aws = Config::aws_from_lookup(|k| std::env::var(k).ok())?;
    let settings = crate::config::MetricsConfig::from_lookup(|k| std::env::var(k).ok())?;
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "unknown".into());
    let emf = Arc::new(Emf::new(&settings.namespace, &function, settings.per_tenant));
    emf.record(Event::ColdStart);
    let metrics: Arc<dyn Metrics> = emf.clone();
    let sdk = crate::aws::lambda_sdk_config(|k| std::env::var(k).ok());
    let clock = Arc::new(SystemClock);
    let store: Arc<dyn crate::store::Kv> = Arc::new(crate::store::metered::Metered::new(
        Arc::new(DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            TableNames::with_prefix(&aws.table_prefix),
            clock.clone(),
        )),
        metrics.clone(),
    ));
    let signer = crate::keys::aws_signer(
        &aws.signing,
        &sdk,
        Arc::new(crate::store::repo::Repo::new(store.clone(), clock.clone())),
        clock.clone(),
        config.max_access_token_ttl,
        metrics.clone(),
    )
    .map_err(|e| crate::config::ConfigError::Malformed {
        name: "BULWARK_KMS_KEY_IDS",
        why: e.to_string(),
    })?;
    if let Err(e) = signer.prepare().await {
        tracing::error!(error = %e, "signing keys not ready at cold start; retrying on the next request");
    }
    Ok((App::new_with_metrics(config, store, signer, clock, metrics), emf))
}
