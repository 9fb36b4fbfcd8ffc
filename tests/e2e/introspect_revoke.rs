//! Introspection (RFC 7662), revocation (RFC 7009) and tenant isolation.

use crate::support::*;

#[tokio::test]
async fn introspection_reports_an_active_token_with_its_claims() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let rs = data.resource_server("acme", &[]);
    let server = Server::start(&data);
    let t = token(&server, &c, &[("scope", "api:read")]).await;
    let at = t["access_token"].as_str().unwrap();
    // The resource server of the token's audience may introspect it.
    let r = post_form(
        &server.url("/oauth2/introspect"),
        Some((&rs.id, &rs.secret)),
        &[("token", at)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let b = r.body;
    assert_eq!(b["active"], true);
    assert_eq!(b["client_id"], c.id.as_str());
    assert_eq!(b["sub"], c.id.as_str());
    assert_eq!(b["scope"], "api:read");
    assert_eq!(b["tid"], "acme");
    assert_eq!(b["iss"], server.issuer.as_str());
    assert_eq!(b["aud"], "urn:bulwark:tenant:acme");
    assert_eq!(b["token_type"], "Bearer");
    assert!(b["exp"].as_i64().unwrap() > b["iat"].as_i64().unwrap());
}

#[tokio::test]
async fn garbage_expired_and_foreign_tokens_are_inactive() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let at = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for garbage in [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        &format!("{at}x"),
        &at.replace('.', ""),
    ] {
        let r = introspect_as_stranger(&server, &c, garbage).await;
        assert_eq!(r, serde_json::json!({"active": false}), "{garbage}");
    }
    // A token signed by another Bulwark (another data dir, another key) is not ours, even to
    // the resource server of the audience it names.
    let rs = data.resource_server("acme", &[]);
    let other = DataDir::new();
    let oc = other.tenant_with_client("acme");
    let other_server = Server::start(&other);
    let foreign = token(&other_server, &oc, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(introspect(&server, &rs, &foreign).await["active"], false);
    // Expired: the same data dir seen from two hours later.
    let later = Server::start_with(&data, &[], &[("BULWARK_CLOCK_OFFSET_SECS", "7200")]);
    assert_eq!(introspect(&later, &c, &at).await["active"], false);
    assert_eq!(
        introspect(&server, &c, &at).await["active"],
        true,
        "still active now"
    );
}

#[tokio::test]
async fn introspection_requires_client_authentication_and_a_token() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let at = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = server.url("/oauth2/introspect");
    let r = post_form(&url, None, &[("token", &at)]).await;
    r.assert_error(401, "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    post_form(&url, Some((&c.id, "wrong")), &[("token", &at)])
        .await
        .assert_error(401, "invalid_client");
    post_form(&url, Some((&c.id, &c.secret)), &[])
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn revocation_denies_the_token_until_it_expires_and_unknown_tokens_get_200() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let at = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let other = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = server.url("/oauth2/revoke");
    let r = post_form(
        &url,
        Some((&c.id, &c.secret)),
        &[("token", &at), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(introspect(&server, &c, &at).await["active"], false);
    assert_eq!(
        introspect(&server, &c, &other).await["active"],
        true,
        "only that token is revoked"
    );
    // Idempotent; unknown and garbage tokens: 200.
    assert_eq!(
        post_form(&url, Some((&c.id, &c.secret)), &[("token", &at)])
            .await
            .status,
        200
    );
    assert_eq!(
        post_form(&url, Some((&c.id, &c.secret)), &[("token", "garbage")])
            .await
            .status,
        200
    );
    // Unauthenticated or without token: errors.
    post_form(&url, None, &[("token", &other)])
        .await
        .assert_error(401, "invalid_client");
    post_form(&url, Some((&c.id, &c.secret)), &[])
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(introspect(&server, &c, &other).await["active"], true);
    let events = data.cli(&["audit", "list", "--tenant", "acme"]);
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "token.revoked")
    );
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token() {
    let data = DataDir::new();
    let owner = data.tenant_with_client("acme");
    let stranger = data.client("acme", "api:read", "client_secret_basic");
    let server = Server::start(&data);
    let at = token(&server, &owner, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post_form(
        &server.url("/oauth2/revoke"),
        Some((&stranger.id, &stranger.secret)),
        &[("token", &at)],
    )
    .await;
    assert_eq!(
        r.status, 200,
        "RFC 7009: no information about other clients' tokens"
    );
    assert_eq!(introspect(&server, &owner, &at).await["active"], true);
}

#[tokio::test]
async fn tenant_isolation_for_introspection_and_revocation() {
    let data = DataDir::new();
    // Both tenants name the same API as their audience, and A's client is its resource server
    // in A: only the tenant tells B's tokens apart.
    let api = "https://api.shared.example";
    for t in ["tenant-a", "tenant-b"] {
        data.cli(&["tenant", "create", t, "--audience", api]);
    }
    let a = data.resource_server("tenant-a", &[api]);
    let b = data.client("tenant-b", "", "client_secret_basic");
    let server = Server::start(&data);
    let b_token = token(&server, &b, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // A client of tenant A sees B's token as inactive and cannot revoke it.
    assert_eq!(
        introspect(&server, &a, &b_token).await,
        serde_json::json!({"active": false})
    );
    // ... while it is active for B's own.
    assert_eq!(introspect(&server, &b, &b_token).await["active"], true);
    let r = post_form(
        &server.url("/oauth2/revoke"),
        Some((&a.id, &a.secret)),
        &[("token", &b_token)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        introspect(&server, &b, &b_token).await["active"],
        true,
        "B's token survives A's revoke"
    );
}

#[tokio::test]
async fn deleting_a_client_makes_its_tokens_inactive() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let rs = data.resource_server("acme", &[]);
    let server = Server::start(&data);
    let at = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(introspect(&server, &rs, &at).await["active"], true);
    data.cli(&["client", "delete", "--tenant", "acme", &c.id]);
    assert_eq!(introspect(&server, &rs, &at).await["active"], false);
}
