//! Discovery documents and the JWKS.

use crate::support::*;

#[tokio::test]
async fn both_discovery_documents_list_exactly_the_implemented_endpoints() {
    let data = DataDir::new();
    let server = Server::start(&data);
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = Resp::from(http().get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(r.status, 200, "{path}");
        let d = &r.body;
        assert_eq!(d["issuer"], server.base.as_str());
        assert_eq!(d["token_endpoint"], server.url("/oauth2/token").as_str());
        assert_eq!(d["jwks_uri"], server.url("/.well-known/jwks.json").as_str());
        assert_eq!(
            d["registration_endpoint"],
            server.url("/oauth2/register").as_str()
        );
        assert_eq!(
            d["introspection_endpoint"],
            server.url("/oauth2/introspect").as_str()
        );
        assert_eq!(d["revocation_endpoint"], server.url("/oauth2/revoke").as_str());
        assert_eq!(
            d["grant_types_supported"],
            serde_json::json!([
                "authorization_code",
                "client_credentials",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "urn:ietf:params:oauth:grant-type:device_code"
            ])
        );
        assert_eq!(
            d["device_authorization_endpoint"],
            server.url("/oauth2/device_authorization").as_str()
        );
        assert_eq!(
            d["authorization_grant_profiles_supported"],
            serde_json::json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
        );
        assert_eq!(
            d["token_endpoint_auth_methods_supported"],
            serde_json::json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
                "none"
            ])
        );
        assert_eq!(
            d["introspection_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
        );
        assert_eq!(
            d["authorization_endpoint"],
            server.url("/oauth2/authorize").as_str()
        );
        assert_eq!(d["userinfo_endpoint"], server.url("/oauth2/userinfo").as_str());
        assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(d["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            d["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
        assert!(
            d.get("end_session_endpoint").is_none(),
            "not implemented, so not listed"
        );
        // Every advertised endpoint exists: a POST without credentials is an OAuth error, not a 404.
        for key in ["token_endpoint", "introspection_endpoint", "revocation_endpoint"] {
            let r = post_form(d[key].as_str().unwrap(), None, &[("x", "y")]).await;
            assert!(r.status == 400 || r.status == 401, "{key}: {}", r.status);
        }
        let r = Resp::from(
            http()
                .get(d["userinfo_endpoint"].as_str().unwrap())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401, "userinfo without a token: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|c| c.starts_with("Bearer"))
        );
        let r = http()
            .get(d["authorization_endpoint"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            400,
            "an authorization request without a client is an error page"
        );
    }
}

#[tokio::test]
async fn jwks_publishes_es256_public_keys_only_with_caching() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let r = Resp::from(
        http()
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    let keys = r.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["use"], "sig");
    assert!(k["kid"].is_string() && k["x"].is_string() && k["y"].is_string());
    assert!(k.get("d").is_none(), "never the private key");
    // Rotation publishes both.
    data.rotate_keys();
    let server = if data.is_dynamodb() {
        drop(server);
        Server::start(&data)
    } else {
        server
    };
    let r = Resp::from(
        http()
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.body["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn browser_apps_may_call_the_token_userinfo_revoke_jwks_and_discovery_endpoints_cross_origin() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let origin = "https://spa.example";
    for path in [
        "/oauth2/token",
        "/oauth2/revoke",
        "/oauth2/userinfo",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let pre = http()
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(pre.status(), 200, "{path}");
        let h = pre.headers();
        assert_eq!(h["access-control-allow-origin"], "*", "{path}");
        assert!(
            h["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
        assert!(
            h["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("authorization")
        );
        assert!(
            h.get("access-control-allow-credentials").is_none(),
            "never with credentials"
        );
    }
    let r = http()
        .post(server.url("/oauth2/token"))
        .header("origin", origin)
        .basic_auth(&c.id, Some(&c.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // Not for pages, introspection or registration.
    for (method, path) in [
        (reqwest::Method::GET, "/oauth2/authorize"),
        (reqwest::Method::GET, "/account?tenant=acme"),
        (reqwest::Method::POST, "/oauth2/introspect"),
        (reqwest::Method::POST, "/oauth2/register"),
    ] {
        let r = http()
            .request(method, server.url(path))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("access-control-allow-origin").is_none(), "{path}");
    }
}
