//! A failing backend gives 503 `temporarily_unavailable` (with `Retry-After`), never a 500 or a
//! hang, and says nothing about internals. Always on the AWS backend: the server is pointed at
//! a closed loopback port for DynamoDB, or for KMS only.

use crate::support::*;

fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
}

fn assert_unavailable(r: &Resp, what: &str) {
    assert_eq!(r.status, 503, "{what}: {}", r.body);
    assert_eq!(r.body["error"], "temporarily_unavailable", "{what}");
    assert_eq!(r.header("retry-after"), Some("1"), "{what}");
    let text = r.body.to_string().to_lowercase();
    for internal in ["dynamodb", "kms", "dispatch", "127.0.0.1", "connection"] {
        assert!(
            !text.contains(internal),
            "{what}: the body leaks internals: {text}"
        );
    }
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test]
async fn dynamodb_down_gives_503_on_every_endpoint_that_needs_it() {
    let data = DataDir::new_dynamodb();
    let c = data.tenant_with_client("acme");
    let dead = closed_port_url();
    let server = Server::start_with(&data, &[], &[("AWS_ENDPOINT_URL", dead.as_str())]);
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_unavailable(&r, "token");
    let r = post_form(
        &server.url("/oauth2/introspect"),
        Some((&c.id, &c.secret)),
        &[("token", "x")],
    )
    .await;
    assert_unavailable(&r, "introspect");
    let r = Resp::from(
        http()
            .post(server.url("/oauth2/register"))
            .header("x-bulwark-tenant", "acme")
            .json(&serde_json::json!({"grant_types": ["client_credentials"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_unavailable(&r, "register");
    // The shared issuer's discovery needs no backend; a tenant's own issuer exists only if the
    // tenant does, which takes the store to know.
    let d = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    let want = if server.is_tenant_issuer() { 503 } else { 200 };
    assert_eq!(d.status().as_u16(), want);
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test]
async fn kms_down_gives_503_for_signing_and_keys_while_registration_still_works() {
    // SigningMode=kms: every signature and the public keys come from KMS.
    let data = DataDir::new_dynamodb_with("kms");
    let c = data.tenant_with_client("acme");
    let dead = closed_port_url();
    let server = Server::start_with(&data, &[], &[("AWS_ENDPOINT_URL_KMS", dead.as_str())]);
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_unavailable(&r, "token");
    let r = Resp::from(
        http()
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_unavailable(&r, "jwks");
    let r = post_form(
        &server.url("/oauth2/revoke"),
        Some((&c.id, &c.secret)),
        &[("token", "a.b.c")],
    )
    .await;
    assert_unavailable(&r, "revoke");
    // DynamoDB is up: client authentication still refuses a wrong secret with 401, not 503.
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, "wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    r.assert_error(401, "invalid_client");
    // And a server whose KMS is reachable issues tokens from the same tables.
    let healthy = Server::start(&data);
    token(&healthy, &c, &[]).await;
}

/// SigningMode=kms-wrapped: KMS is needed only to decrypt the key, by the process that signs.
/// With KMS down a new process cannot sign (503, no internals), but the JWKS, revocation and
/// introspection work from the key ring's public part.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test]
async fn kms_down_in_kms_wrapped_mode_stops_signing_only() {
    let data = DataDir::new_dynamodb_with("kms-wrapped");
    let c = data.tenant_with_client("acme");
    let healthy = Server::start(&data);
    let at = token(&healthy, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let dead = closed_port_url();
    let server = Server::start_with(
        &data,
        &["--issuer", &healthy.issuer],
        &[("AWS_ENDPOINT_URL_KMS", dead.as_str())],
    );
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_unavailable(&r, "token");
    let r = Resp::from(
        http()
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post_form(
        &server.url("/oauth2/introspect"),
        Some((&c.id, &c.secret)),
        &[("token", &at)],
    )
    .await;
    assert_eq!(r.body["active"], true, "{}", r.body);
    let r = post_form(
        &server.url("/oauth2/revoke"),
        Some((&c.id, &c.secret)),
        &[("token", &at)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test]
async fn user_endpoints_give_503_and_a_failed_exchange_or_refresh_can_be_retried() {
    use crate::flow::*;
    let data = DataDir::new_dynamodb();
    let w = world(&data);
    let healthy = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &healthy, &w, "openid offline_access", &p).await;

    // KMS down during the code exchange: 503, nothing issued, and the code still works.
    let dead = closed_port_url();
    let no_kms = Server::start_with(&data, &[], &[("AWS_ENDPOINT_URL_KMS", dead.as_str())]);
    assert_unavailable(
        &redeem(&no_kms, &w.client, &code, &p.verifier).await,
        "code exchange",
    );
    // ... and no audit line claims a grant was created (audit lines follow commits).
    let no_kms_log = std::fs::read_to_string(&no_kms.log).unwrap();
    assert!(
        !no_kms_log
            .lines()
            .any(|l| l.contains("\"target\":\"audit\"") && l.contains("grant.created")),
        "an audit line for a grant that was never written:\n{no_kms_log}"
    );
    let r = redeem(&healthy, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "the code survived the failed exchange: {}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // KMS down during a refresh: 503, and the refresh token is not spent.
    assert_unavailable(&refresh(&no_kms, &w.client, &rt, &[]).await, "refresh");

    // DynamoDB down: the pages are 503 pages (no redirect, no internals), the APIs 503 JSON.
    let no_db = Server::start_with(&data, &[], &[("AWS_ENDPOINT_URL", dead.as_str())]);
    for url in [
        authorize_url(&no_db, &w.client.id, "openid", &p.challenge, &[]),
        no_db.url(&format!("/account?tenant={}", w.tenant)),
    ] {
        let page = b.get(&url).await;
        assert_eq!(page.status, 503, "{url}: {}", page.html);
        assert_eq!(page.header("retry-after"), Some("1"));
        assert!(page.header("location").is_none());
        let text = page.html.to_lowercase();
        for internal in ["dynamodb", "dispatch", "connection"] {
            assert!(!text.contains(internal), "{url} leaks internals");
        }
    }
    assert_unavailable(&userinfo(&no_db, &at).await, "userinfo");
    assert_unavailable(&refresh(&no_db, &w.client, &rt, &[]).await, "refresh");

    // Nothing was half-written: the refresh token works (once) on a healthy instance.
    let r = refresh(&healthy, &w.client, &rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
