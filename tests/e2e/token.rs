//! `POST /oauth2/token` with client credentials, and JWT verification with an independent
//! library against the published JWKS.

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn client_credentials_with_basic_auth_returns_a_jwt_access_token() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3600);
    assert_eq!(
        r.body["scope"], "api:read api:write",
        "no scope requested means the registered set"
    );
    let at = r.body["access_token"].as_str().unwrap();
    let header = jwt_part(at, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());
    let claims = jwt_part(at, 1);
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["sub"], c.id.as_str());
    assert_eq!(claims["client_id"], c.id.as_str());
    assert_eq!(claims["tid"], "acme");
    assert_eq!(claims["aud"], "urn:bulwark:tenant:acme");
    assert_eq!(claims["scope"], "api:read api:write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 32));
}

#[tokio::test]
async fn client_secret_post_works_for_a_client_registered_for_it_and_not_otherwise() {
    let data = DataDir::new();
    let basic = data.tenant_with_client("acme");
    let post = data.client("acme", "api:read", "client_secret_post");
    let server = Server::start(&data);
    let url = server.url("/oauth2/token");
    let r = post_form(
        &url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &post.id),
            ("client_secret", &post.secret),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A client registered for client_secret_basic cannot use client_secret_post, and vice versa.
    let r = post_form(
        &url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &basic.id),
            ("client_secret", &basic.secret),
        ],
    )
    .await;
    r.assert_error(401, "invalid_client");
    let r = post_form(
        &url,
        Some((&post.id, &post.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    r.assert_error(401, "invalid_client");
    // Both methods at once is a malformed request.
    let r = post_form(
        &url,
        Some((&post.id, &post.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &post.secret),
        ],
    )
    .await;
    r.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn wrong_secret_unknown_client_and_no_credentials_are_401_invalid_client_with_basic_challenge() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let url = server.url("/oauth2/token");
    let cc = [("grant_type", "client_credentials")];
    let wrong_secret = format!("{}x", c.secret);
    for (who, basic) in [
        ("wrong secret", Some((c.id.as_str(), wrong_secret.as_str()))),
        (
            "unknown client",
            Some(("0123456789abcdef0123456789abcdef", c.secret.as_str())),
        ),
        ("empty secret", Some((c.id.as_str(), ""))),
        ("no credentials", None),
    ] {
        let r = post_form(&url, basic, &cc).await;
        assert_eq!(r.status, 401, "{who}: {}", r.body);
        assert_eq!(r.body["error"], "invalid_client", "{who}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"bulwark\""),
            "{who}"
        );
        assert!(
            !r.body.to_string().contains(&c.secret),
            "{who}: the body never echoes a secret"
        );
    }
    let r = Resp::from(
        http()
            .post(&url)
            .header("authorization", "Basic !!!notbase64")
            .form(&cc)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(401, "invalid_client");
}

#[tokio::test]
async fn scope_escalation_is_invalid_scope_and_narrowing_works() {
    let data = DataDir::new();
    data.tenant_with_client("acme");
    let c = data.client("acme", "api:read", "client_secret_basic");
    let server = Server::start(&data);
    let url = server.url("/oauth2/token");
    let t = token(&server, &c, &[("scope", "api:read")]).await;
    assert_eq!(t["scope"], "api:read");
    for scope in ["api:write", "api:read api:write", "admin", "openid"] {
        let r = post_form(
            &url,
            Some((&c.id, &c.secret)),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
        r.assert_error(400, "invalid_scope");
    }
    let r = post_form(
        &url,
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials"), ("scope", "bad\"scope")],
    )
    .await;
    r.assert_error(400, "invalid_scope");
}

#[tokio::test]
async fn grant_type_errors() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let url = server.url("/oauth2/token");
    let auth = Some((c.id.as_str(), c.secret.as_str()));
    post_form(
        &url,
        auth,
        &[("grant_type", "password"), ("username", "u"), ("password", "p")],
    )
    .await
    .assert_error(400, "unauthorized_client");
    post_form(&url, auth, &[("grant_type", "urn:made:up")])
        .await
        .assert_error(400, "unsupported_grant_type");
    post_form(&url, auth, &[("scope", "api:read")])
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn resource_indicator_sets_the_audience_and_unknown_resources_are_invalid_target() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    data.cli(&["resource", "add", "--tenant", "acme", "https://api.acme.example"]);
    let server = Server::start(&data);
    let t = token(&server, &c, &[("resource", "https://api.acme.example")]).await;
    assert_eq!(
        jwt_part(t["access_token"].as_str().unwrap(), 1)["aud"],
        "https://api.acme.example"
    );
    let url = server.url("/oauth2/token");
    let auth = Some((c.id.as_str(), c.secret.as_str()));
    post_form(
        &url,
        auth,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://evil.example"),
        ],
    )
    .await
    .assert_error(400, "invalid_target");
    post_form(
        &url,
        auth,
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://api.acme.example"),
            ("resource", "urn:bulwark:tenant:acme"),
        ],
    )
    .await
    .assert_error(400, "invalid_target");
}

#[tokio::test]
async fn a_deleted_client_can_no_longer_get_tokens() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    token(&server, &c, &[]).await;
    data.cli(&["client", "delete", "--tenant", "acme", &c.id]);
    post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
}

/// Verify with `jsonwebtoken`, using only the JWK the server publishes.
async fn verify_independently(server: &Server, token: &str, audience: &str) -> Value {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
    crate::support::jwt();
    let jwks: JwkSet = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = decode_header(token).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("kid");
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk).expect("decoding key from JWK");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[server.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(token, &key, &validation)
        .expect("the token verifies against the JWKS")
        .claims
}

#[tokio::test]
async fn access_tokens_verify_against_the_jwks_with_jsonwebtoken_before_and_after_key_rotation() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let aud = "urn:bulwark:tenant:acme";
    let before = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let claims = verify_independently(&server, &before, aud).await;
    assert_eq!(claims["client_id"], c.id.as_str());
    let old_kid = jwt_part(&before, 0)["kid"].as_str().unwrap().to_string();

    // A tampered token must not verify: proves the check above is real.
    let mut parts: Vec<String> = before.split('.').map(str::to_string).collect();
    let mut forged = jwt_part(&before, 1);
    forged["scope"] = "admin".into();
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let tampered = parts.join(".");
    let jwks: jsonwebtoken::jwk::JwkSet = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    crate::support::jwt();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&old_kid).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[aud]);
    assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &v).is_err());

    // Rotate. Embedded: `bulwark keys rotate` while the server runs. DynamoDB/KMS: a new KMS key
    // first in the list, picked up by a new cold start (as a redeployed stack would).
    let rotated_kid = data.rotate_keys();
    let server = if data.is_dynamodb() {
        let issuer = server.issuer.clone();
        drop(server);
        Server::start_with(&data, &["--issuer", &issuer], &[])
    } else {
        server
    };
    let jwks: Value = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(published.len(), 2, "{published:?}");
    assert!(
        published.contains(&old_kid.as_str()),
        "the old key stays published"
    );
    let new_kid = rotated_kid.unwrap_or_else(|| published[0].to_string());
    assert_ne!(new_kid, old_kid);
    assert!(published.contains(&new_kid.as_str()));

    let after = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        jwt_part(&after, 0)["kid"],
        new_kid.as_str(),
        "the server signs with the new key"
    );
    verify_independently(&server, &after, aud).await;
    verify_independently(&server, &before, aud).await;
    // And both still introspect active.
    assert_eq!(introspect(&server, &c, &before).await["active"], true);
    assert_eq!(introspect(&server, &c, &after).await["active"], true);
}
