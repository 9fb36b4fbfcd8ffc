//! `bulwark serve`: every endpoint's router merged on one port.

use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

use shared::metrics::prometheus::Registry;
use shared::metrics::{Event, Metrics};

use shared::domain::tenant::DcrPolicy;
use shared::logging::{self, LogTarget};
use shared::service::App;
use shared::service::tenants::{self, AdminError};
use shared::service::{clients, users};

use crate::cli::{Global, ServeLimits, ServeMetrics};
use crate::commands::{Failure, clock, open_with};

pub async fn serve(
    g: &Global,
    addr: SocketAddr,
    demo: bool,
    limits: ServeLimits,
    metrics: ServeMetrics,
    sweep_interval: u64,
    tenant_cache_secs: &str,
) -> Result<(), Failure> {
    logging::init(LogTarget::Stderr);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let listening = format!("http://{local}");
    // The counters, on their own listener (never on the public port).
    let registry = match metrics.metrics_addr {
        Some(at) => {
            let l = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| Failure(format!("cannot listen on {at} (--metrics-addr): {e}")))?;
            let registry = Arc::new(Registry::new(metrics.metrics_per_tenant == "on"));
            registry.record(Event::ColdStart);
            Some((l, registry))
        }
        None => None,
    };
    let issuer = g.issuer.clone().unwrap_or_else(|| listening.clone());
    let config = shared::config::Config::new(&issuer)?.with_tenant_cache_secs(tenant_cache_secs)?;
    let sink = registry
        .as_ref()
        .map(|(_, r)| r.clone() as Arc<dyn shared::metrics::Metrics>);
    let (app, _signer) = open_with(g, config, clock()?, sink).await?;
    // Never serve a store whose layout this code does not know (`bulwark migrate`): read its
    // schema version once; if no, every request answers 503 and nothing here writes to it.
    let gate = shared::service::schema::SchemaGate::new();
    let admitted = gate.admits(&app).await;
    let metrics_url = match registry {
        Some((l, registry)) => {
            let url = format!("http://{}/metrics", l.local_addr()?);
            tokio::spawn(serve_metrics(l, registry));
            Some(url)
        }
        None => None,
    };

    if g.json {
        println!(
            "{}",
            json!({"listening": listening, "issuer": issuer, "metrics": metrics_url})
        );
    } else {
        println!(
            "Bulwark is listening on {listening} (issuer {issuer}, data in {})",
            g.data_dir.display()
        );
        if let Some(url) = &metrics_url {
            println!("Metrics (Prometheus text format): {url}");
        }
    }
    if demo && !admitted {
        return Err(Failure(
            "--demo: the store's schema version is not one this code serves (see the log)".into(),
        ));
    }
    if demo {
        let d = demo_client(&app).await?;
        if g.json {
            println!("{}", json!({"demo": d}));
        } else {
            let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
            println!(
                "Demo tenant `demo`, client {}. Get a token:\n\n  {}\n\n\
                 Sign in as a user (username demo, password {}) in a browser:\n\n  {}\n\n\
                 You land on http://127.0.0.1/callback?code=CODE&... (nothing listens there; copy CODE), then:\n\n  {}\n\n\
                 Connected apps: {}\n\n                 Connected Apps console (demo is its administrator): {}\n",
                d["client_id"],
                s("curl"),
                d["user"]["password"].as_str().unwrap_or(""),
                s("authorize_url"),
                s("redeem"),
                s("account_url"),
                s("console_url"),
            );
        }
    }
    tracing::info!(listening = %listening, issuer = %issuer, "bulwark serve started");

    if sweep_interval > 0 && admitted {
        tokio::spawn(sweep_open_registrations(
            app.clone(),
            std::time::Duration::from_secs(sweep_interval),
        ));
    }
    let router = shared::http::with_schema_gate(shared::http::app(app.clone()), app, gate);
    run(listener, router, limits).await;
    tracing::info!("bulwark serve stopped");
    Ok(())
}

/// `GET /metrics`: the counters in Prometheus text format (exposition format 0.0.4); any other
/// path is 404. Plain axum on its own listener: the public port's limits are not needed on a
/// loopback scrape address.
async fn serve_metrics(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    use axum::http::header;
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                    registry.render(),
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!(error = %e, "the metrics listener stopped");
    }
}

/// What the sweeper function does on AWS, every `every` (the first one `every` after the start,
/// so that short-lived servers never sweep): unused open registrations expire. A failed run is
/// logged and the next one tries again.
async fn sweep_open_registrations(app: std::sync::Arc<App>, every: std::time::Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = shared::service::sweep::expire_open_registrations(
            &app,
            None,
            shared::service::sweep::DEFAULT_MAX_PER_SHARD,
            "sweeper",
        )
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e.description, "the sweep of open registrations failed");
        }
    }
}

/// Serve HTTP/1.1 on `listener` until SIGINT/SIGTERM: a request's headers must arrive within
/// `header_timeout` (which also closes idle keep-alive connections), a whole request within
/// `request_timeout` (408 beyond), and at most `max_connections` are served at once. When all
/// are taken, the open connections are asked to finish — idle keep-alive ones close at once,
/// busy ones after their current request — so that a few clients holding connections open
/// cannot keep everyone else out; the accept loop waits for the first slot that frees. On
/// shutdown, in-flight requests get a few seconds to finish. (On Lambda, API Gateway does all
/// this.)
async fn run(listener: tokio::net::TcpListener, router: axum::Router, limits: ServeLimits) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use std::time::Duration;

    let router = router.layer(tower_http::timeout::TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(limits.request_timeout),
    ));
    let max = limits.max_connections as usize;
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    // Bumped to ask the open connections to finish: at capacity (each connection older than
    // `SHED_GRACE`, so that one just accepted gets to send its request), and on shutdown
    // (`STOPPING`: every connection).
    const SHED_GRACE: Duration = Duration::from_secs(1);
    const STOPPING: u64 = u64::MAX;
    let (finish, _) = tokio::sync::watch::channel(0u64);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout));
    let stop = shutdown();
    tokio::pin!(stop);
    'serve: loop {
        // A free slot; at capacity, ask the open connections to finish (again every
        // `SHED_GRACE`, so that those too young the first time are asked once they are not).
        let slot = loop {
            if let Ok(slot) = slots.clone().try_acquire_owned() {
                break slot;
            }
            finish.send_modify(|g| *g = g.wrapping_add(1) % STOPPING);
            tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => break slot,
                    Err(_) => break 'serve,
                },
                () = tokio::time::sleep(SHED_GRACE) => {}
                () = &mut stop => break 'serve,
            }
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break 'serve,
        };
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
        let mut asked = finish.subscribe();
        let accepted = tokio::time::Instant::now();
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let mut finishing = false;
            loop {
                tokio::select! {
                    done = conn.as_mut() => {
                        if let Err(e) = done {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    changed = asked.changed(), if !finishing => {
                        let stopping = changed.is_err() || *asked.borrow_and_update() == STOPPING;
                        if stopping || accepted.elapsed() >= SHED_GRACE {
                            // Idle: closes now; busy: after the current response.
                            conn.as_mut().graceful_shutdown();
                            finishing = true;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    finish.send_replace(STOPPING);
    match tokio::time::timeout(Duration::from_secs(5), slots.acquire_many(max as u32)).await {
        Ok(_) => {}
        Err(_) => tracing::warn!("connections still open after 5 s; stopping anyway"),
    }
}

/// Tenant `demo` (created once) and a fresh confidential client allowed client_credentials;
/// an earlier demo client is deleted, since its secret was shown only once.
async fn demo_client(app: &App) -> Result<serde_json::Value, Failure> {
    match tenants::create(app, "demo", DcrPolicy::Token, None).await {
        Ok(_) | Err(AdminError::Exists(_)) => {}
        Err(e) => return Err(Failure(e.to_string())),
    }
    if !tenants::get(app, "demo")
        .await
        .map_err(|e| Failure(e.to_string()))?
        .scopes
        .contains_key("api:read")
    {
        tenants::add_scope(app, &demo_tenant()?, "api:read", "Read the demo API", None)
            .await
            .map_err(|e| Failure(e.to_string()))?;
    }
    let (existing, _) = app.repo.clients_of("demo", None, 100).await?;
    for c in existing
        .into_iter()
        .filter(|c| matches!(c.metadata.client_name.as_deref(), Some("demo" | "demo-app")))
    {
        if let Some(current) = app.repo.client(&c.client_id).await? {
            clients::delete(app, current, "cli")
                .await
                .map_err(|e| Failure(e.to_string()))?;
        }
    }
    let metadata = json!({"client_name": "demo", "grant_types": ["client_credentials"], "scope": "api:read"});
    let reg = clients::create_by_admin(app, &demo_tenant()?, &metadata, Default::default())
        .await
        .map_err(|e| Failure(e.to_string()))?;
    let secret = reg
        .secret
        .as_ref()
        .map(|s| s.expose().to_string())
        .unwrap_or_default();
    let curl = format!(
        "curl -s -u '{}:{}' -d grant_type=client_credentials {}",
        reg.client.client_id,
        secret,
        app.config.endpoint("/oauth2/token")
    );
    // An end user and a public app for the authorization-code flow.
    let password = shared::secret::generate();
    match users::create(
        app,
        users::NewUser {
            tenant: "demo",
            username: "demo",
            password: &password,
            email: Some("demo@example.com"),
            name: Some("Demo User"),
            // The demo user administers the demo tenant (the console below).
            admin: true,
        },
    )
    .await
    {
        Ok(_) => {}
        Err(AdminError::Exists(_)) => {
            users::set_password(app, &demo_tenant()?, "demo", &password, users::SignOut::Sessions)
                .await
                .map_err(|e| Failure(e.to_string()))?
        }
        Err(e) => return Err(Failure(e.to_string())),
    }
    let spa = json!({
        "client_name": "demo-app",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://127.0.0.1/callback"],
        "token_endpoint_auth_method": "none",
        "scope": "openid profile email offline_access api:read",
    });
    let spa = clients::create_by_admin(app, &demo_tenant()?, &spa, Default::default())
        .await
        .map_err(|e| Failure(e.to_string()))?;
    let verifier = shared::secret::random_id(32);
    let challenge = shared::domain::authorize::s256(&verifier);
    let authorize_url = format!(
        "{}?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&scope=openid%20profile%20offline_access&state=demo&code_challenge={challenge}&code_challenge_method=S256",
        app.config.endpoint("/oauth2/authorize"),
        spa.client.client_id,
    );
    let redeem = format!(
        "curl -s -d grant_type=authorization_code -d client_id={} -d redirect_uri=http://127.0.0.1/callback -d code_verifier={verifier} -d code=CODE {}",
        spa.client.client_id,
        app.config.endpoint("/oauth2/token")
    );
    Ok(json!({
        "tenant": "demo",
        "client_id": reg.client.client_id,
        "client_secret": secret,
        "scope": reg.client.metadata.scope,
        "curl": curl,
        "user": {"username": "demo", "password": password.expose()},
        "app_client_id": spa.client.client_id,
        "authorize_url": authorize_url,
        "code_verifier": verifier,
        "redeem": redeem,
        "account_url": format!("{}?tenant=demo", app.config.endpoint("/account")),
        "console_url": format!("{}?tenant=demo", app.config.endpoint("/console")),
    }))
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The demo tenant's id.
fn demo_tenant() -> Result<shared::domain::tenant::TenantId, Failure> {
    shared::domain::tenant::TenantId::parse("demo").map_err(Failure)
}
