//! Client ID Metadata Documents against a running server: a client known only by the URL of
//! its document runs the code flow (with refresh) at a tenant's own issuer that accepts its
//! host; the document is fetched once; the consent page names the host before the name the
//! document claims; nowhere else is the URL a client; and a tenant that stops accepting the
//! host ends the client's grants. Both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use crate::flow::*;
use crate::support::*;

/// Serve a metadata document at `http://127.0.0.1:PORT/client.json` (loopback http, which the
/// server accepts only because its own issuer is loopback http): its client id, the fetch count.
pub(crate) async fn document_host(
    redirect_uri: &str,
) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let id = format!("http://{}/client.json", listener.local_addr().unwrap());
    let doc = json!({
        "client_id": id,
        "client_name": "Doc Helper",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "scope": "openid api:read offline_access",
    });
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/client.json",
        get(move || {
            let h = h.clone();
            let doc = doc.clone();
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                ([("cache-control", "max-age=3600")], axum::Json(doc))
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (id, hits, task)
}

async fn get_json(url: &str) -> Resp {
    Resp::from(http().get(url).send().await.unwrap()).await
}

fn under(url: String, tenant: &str) -> String {
    url.replace("/oauth2/authorize", &format!("/t/{tenant}/oauth2/authorize"))
}

#[tokio::test]
async fn a_client_known_by_its_metadata_document_runs_the_code_flow_where_its_host_is_accepted() {
    let data = DataDir::new();
    let w = world(&data);
    let other = world(&data);
    let rs = data.resource_server(&w.tenant, &[]);
    let policy = data.cli(&["tenant", "set-policy", &w.tenant, "--cimd", "127.0.0.1"]);
    assert_eq!(policy["cimd"], json!(["127.0.0.1"]), "{policy}");
    let (client_id, hits, task) = document_host(CALLBACK).await;
    let server = Server::start(&data);
    let issuer = format!("{}/t/{}", server.base, w.tenant);

    // Advertised only where some document is accepted.
    let d = get_json(&server.url(&format!("/.well-known/oauth-authorization-server/t/{}", w.tenant))).await;
    assert_eq!(
        d.body["client_id_metadata_document_supported"], true,
        "{}",
        d.body
    );
    for elsewhere in [
        format!("/.well-known/oauth-authorization-server/t/{}", other.tenant),
        "/.well-known/oauth-authorization-server".to_string(),
    ] {
        let d = get_json(&server.url(&elsewhere)).await;
        assert_eq!(d.status, 200);
        assert!(
            d.body.get("client_id_metadata_document_supported").is_none(),
            "{elsewhere}"
        );
    }

    // Nowhere but an accepting tenant's issuer is the URL a client: our page, no redirect, no
    // fetch.
    let p = pkce();
    let scope = "openid api:read offline_access";
    for url in [
        authorize_url(&server, &client_id, scope, &p.challenge, &[]),
        under(
            authorize_url(&server, &client_id, scope, &p.challenge, &[]),
            &other.tenant,
        ),
    ] {
        let page = Browser::new().get(&url).await;
        assert_eq!(page.status, 400, "{url}: {}", page.html);
        assert!(page.location().is_none());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // The flow: the host first, the claimed name second.
    let b = Browser::new();
    let login = b
        .get(&under(
            authorize_url(&server, &client_id, scope, &p.challenge, &[]),
            &w.tenant,
        ))
        .await;
    assert_eq!(login.status, 200, "{}", login.html);
    assert!(login.has("127.0.0.1"), "{}", login.html);
    let consent = b.login(&server, &login, "alice", PASSWORD).await;
    assert!(consent.has("Allow 127.0.0.1 access?"), "{}", consent.html);
    assert!(consent.has("Calls itself “Doc Helper”"), "{}", consent.html);
    let q = b.consent(&server, &consent, "approve").await.redirect_params();
    assert_eq!(q["iss"], issuer.as_str());
    let t = post_form(
        &format!("{issuer}/oauth2/token"),
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &q["code"]),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    let at = t.body["access_token"].as_str().unwrap().to_string();
    let claims = jwt_part(&at, 1);
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(introspect(&server, &rs, &at).await["active"], true);
    let rt = t.body["refresh_token"].as_str().unwrap().to_string();
    let refresh = |at_issuer: String, rt: String| {
        let client_id = client_id.clone();
        async move {
            post_form(
                &format!("{at_issuer}/oauth2/token"),
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client_id),
                    ("refresh_token", &rt),
                ],
            )
            .await
        }
    };
    // The shared issuer does not know the URL as a client.
    refresh(server.issuer.clone(), rt.clone())
        .await
        .assert_error(401, "invalid_client");
    let r = refresh(issuer.clone(), rt).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "fetched once, then from the store"
    );

    // The admin sees it among the tenant's apps, as a metadata-document client.
    let listed = data.cli(&["client", "list", "--tenant", &w.tenant]);
    assert!(listed.to_string().contains(&client_id), "{listed}");

    // The tenant stops accepting the host: the grant ends downstream too.
    data.cli(&["tenant", "set-policy", &w.tenant, "--cimd", "deny"]);
    // (At once on the authorization endpoint; on the token path within the tenant-cache bound.)
    after_tenant_change().await;
    refresh(issuer.clone(), rt)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(introspect(&server, &rs, &at).await["active"], false);
    let page = Browser::new()
        .get(&under(
            authorize_url(&server, &client_id, scope, &p.challenge, &[]),
            &w.tenant,
        ))
        .await;
    assert_eq!(page.status, 400, "{}", page.html);
    let d = get_json(&server.url(&format!("/.well-known/oauth-authorization-server/t/{}", w.tenant))).await;
    assert!(d.body.get("client_id_metadata_document_supported").is_none());
    let _: Value = d.body;
    task.abort();
}

/// A code issued to a metadata-document app the admin then deletes is worth nothing, even when
/// someone names the URL again at once (which fetches the document and makes the client anew):
/// a code, grant or token is its client's, not its client id's.
#[tokio::test]
async fn a_code_for_a_deleted_metadata_document_app_is_worthless_after_it_is_met_again() {
    let data = DataDir::new();
    let w = world(&data);
    data.cli(&["tenant", "set-policy", &w.tenant, "--cimd", "127.0.0.1"]);
    let (client_id, _hits, task) = document_host(CALLBACK).await;
    let server = Server::start(&data);
    let issuer = format!("{}/t/{}", server.base, w.tenant);
    let p = pkce();
    let scope = "openid api:read";
    let url = under(
        authorize_url(&server, &client_id, scope, &p.challenge, &[]),
        &w.tenant,
    );
    let b = Browser::new();
    let login = b.get(&url).await;
    let consent = b.login(&server, &login, "alice", PASSWORD).await;
    let q = b.consent(&server, &consent, "approve").await.redirect_params();
    let code = q["code"].clone();

    // The admin deletes the app; a second later anyone names its URL again.
    data.cli(&["client", "delete", "--tenant", &w.tenant, &client_id]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = Browser::new().get(&url).await;
    assert_eq!(again.status, 200, "met again: {}", again.html);

    let t = post_form(
        &format!("{issuer}/oauth2/token"),
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    t.assert_error(400, "invalid_grant");
    task.abort();
}
