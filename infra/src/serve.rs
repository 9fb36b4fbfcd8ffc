//! `bulwark serve`: every endpoint's router merged on one port.

use serde_json::json;
use std::net::SocketAddr;

use shared::domain::tenant::DcrPolicy;
use shared::logging::{self, LogTarget};
use shared::service::App;
use shared::service::clients;
use shared::service::tenants::{self, AdminError};

use crate::cli::Global;
use crate::commands::{Failure, clock, open};

pub async fn serve(g: &Global, addr: SocketAddr, demo: bool) -> Result<(), Failure> {
    logging::init(LogTarget::Stderr);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure(format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let listening = format!("http://{local}");
    let issuer = g.issuer.clone().unwrap_or_else(|| listening.clone());
    let (app, _signer) = open(g, &issuer, clock()?).await?;

    if g.json {
        println!("{}", json!({"listening": listening, "issuer": issuer}));
    } else {
        println!(
            "Bulwark is listening on {listening} (issuer {issuer}, data in {})",
            g.data_dir.display()
        );
    }
    if demo {
        let d = demo_client(&app).await?;
        if g.json {
            println!("{}", json!({"demo": d}));
        } else {
            println!(
                "Demo tenant `demo`, client {}. Get a token:\n\n  {}\n",
                d["client_id"],
                d["curl"].as_str().unwrap_or("")
            );
        }
    }
    tracing::info!(listening = %listening, issuer = %issuer, "bulwark serve started");

    let router = shared::http::app(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| Failure(format!("server error: {e}")))?;
    tracing::info!("bulwark serve stopped");
    Ok(())
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
        tenants::add_scope(app, "demo", "api:read", "Read the demo API")
            .await
            .map_err(|e| Failure(e.to_string()))?;
    }
    let (existing, _) = app.repo.clients_of("demo", None, 100).await?;
    for c in existing
        .into_iter()
        .filter(|c| c.metadata.client_name.as_deref() == Some("demo"))
    {
        if let Some(current) = app.repo.client(&c.client_id).await? {
            clients::delete(app, current, "cli")
                .await
                .map_err(|e| Failure(e.to_string()))?;
        }
    }
    let metadata = json!({"client_name": "demo", "grant_types": ["client_credentials"], "scope": "api:read"});
    let reg = clients::create_by_admin(app, "demo", &metadata)
        .await
        .map_err(|e| Failure(e.to_string()))?;
    let curl = format!(
        "curl -s -u '{}:{}' -d grant_type=client_credentials {}",
        reg.client.client_id,
        reg.secret.expose(),
        app.config.endpoint("/oauth2/token")
    );
    Ok(json!({
        "tenant": "demo",
        "client_id": reg.client.client_id,
        "client_secret": reg.secret.expose(),
        "scope": reg.client.metadata.scope,
        "curl": curl,
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
