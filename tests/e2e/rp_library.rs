//! Interoperability: the `openidconnect` crate, a standard relying-party library, runs the
//! authorization code flow with PKCE, validates the ID token (signature, nonce, at_hash),
//! refreshes and calls userinfo against `bulwark serve`, configured from discovery alone.

use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::flow::*;
use crate::support::*;
use serde_json::Value;

#[tokio::test]
async fn the_openidconnect_crate_runs_code_pkce_refresh_and_userinfo_from_discovery() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    openidconnect_flow(&server, &w, &server.issuer).await;
}

/// The same against the tenant's own issuer (`{base}/t/{tenant}`): discovery, every endpoint
/// and the ID token's `iss` are that issuer's, and the library's checks keep tenants apart.
#[tokio::test]
async fn the_openidconnect_crate_runs_the_same_flow_against_a_tenants_own_issuer() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let issuer = format!("{}/t/{}", server.base, w.tenant);
    openidconnect_flow(&server, &w, &issuer).await;
}

async fn openidconnect_flow(server: &Server, w: &World, issuer: &str) {
    crate::support::tls();
    let http_client = openidconnect::reqwest::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.to_string()).unwrap(), &http_client)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(w.client.id.clone()),
        Some(ClientSecret::new(w.client.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.to_string()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The user's part, in our cookie-keeping browser.
    let b = Browser::new();
    let login = b.get(auth_url.as_str()).await;
    let consent = b.login(server, &login, "alice", PASSWORD).await;
    let done = b.consent(server, &consent, "approve").await;
    let q = done.redirect_params();
    assert_eq!(&q["state"], csrf.secret());
    assert_eq!(q["iss"], issuer, "RFC 9207: the issuer the client used");

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .expect("token endpoint from discovery")
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("the ID token validates");
    assert_eq!(claims.subject().as_str(), w.sub);
    assert!(claims.auth_time().is_some());
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected);

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().to_owned(), Some(claims.subject().clone()))
        .expect("userinfo endpoint from discovery")
        .request_async(&http_client)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), w.sub);
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    let rt = tokens.refresh_token().expect("a refresh token (offline_access)");
    let refreshed = client
        .exchange_refresh_token(rt)
        .expect("token endpoint")
        .request_async(&http_client)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        rt.secret(),
        "rotated"
    );
    // Presented again at once, the old token gives the same pair (the reuse grace); once the
    // new one has been used, the old one is spent.
    let again = client
        .exchange_refresh_token(rt)
        .unwrap()
        .request_async(&http_client)
        .await
        .expect("the same pair within the grace");
    assert_eq!(
        again.refresh_token().unwrap().secret(),
        refreshed.refresh_token().unwrap().secret()
    );
    client
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .expect("the new token works");
    let spent = client
        .exchange_refresh_token(rt)
        .unwrap()
        .request_async(&http_client)
        .await;
    assert!(spent.is_err(), "the rotated token is spent");
}

/// authlib (Python), configured from discovery, authenticates as an agent with
/// `client_secret_basic`, exchanges a user's token (RFC 8693) and introspects the result.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs authlib in .venv: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn authlib_exchanges_a_users_token_as_an_agent_from_discovery() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&[
        "scope",
        "add",
        "--tenant",
        &tenant,
        "api:read",
        "Read your documents",
    ]);
    let sub = user(&data, &tenant, "alice");
    let app = data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Acme Notes",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid api:read agent:act",
        "--redirect-uri",
        CALLBACK,
    ]);
    let agent = data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Notes Bot",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "--agent-of",
        app["client_id"].as_str().unwrap(),
        "--scope",
        "api:read",
    ]);
    let w = World {
        tenant: tenant.clone(),
        client: TestClient::from_registration(&app),
        sub: sub.clone(),
    };
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid api:read agent:act", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let subject = r.body["access_token"].as_str().unwrap();

    let out = std::process::Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/interop/authlib_exchange.py"))
        .args([
            server.issuer.as_str(),
            agent["client_id"].as_str().unwrap(),
            agent["client_secret"].as_str().unwrap(),
            subject,
            "api:read",
        ])
        .output()
        .expect("run .venv/bin/python (bash infra/venv.sh installs it)");
    assert!(
        out.status.success(),
        "authlib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let t = &v["token"];
    assert_eq!(
        t["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token",
        "{v}"
    );
    assert_eq!(
        (t["token_type"].as_str(), t["scope"].as_str()),
        (Some("Bearer"), Some("api:read"))
    );
    assert!(t.get("refresh_token").is_none(), "{t}");
    let i = &v["introspection"];
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], sub.as_str());
    assert_eq!(i["client_id"], agent["client_id"]);
    assert_eq!(i["act"], serde_json::json!({"sub": agent["client_id"]}));
}

/// authlib (Python), configured from discovery, authenticates as a `private_key_jwt` client
/// (ES256, its default `aud` and `typ`) for a client-credentials token and for introspection.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs authlib in .venv: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn authlib_authenticates_with_private_key_jwt_from_discovery() {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let mut jwk: serde_json::Value =
        serde_json::from_str(&p256::PublicKey::from(sk.verifying_key()).to_jwk_string()).unwrap();
    jwk["kid"] = serde_json::json!("authlib-1");
    let jwks_file = data.path().join("authlib-jwks.json");
    std::fs::write(&jwks_file, serde_json::json!({"keys": [jwk]}).to_string()).unwrap();
    let pem_file = data.path().join("authlib-key.pem");
    std::fs::write(&pem_file, sk.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let client = data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "authlib",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        jwks_file.to_str().unwrap(),
    ]);
    let id = client["client_id"].as_str().unwrap();
    let server = Server::start(&data);
    let out = std::process::Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/interop/authlib_private_key_jwt.py"))
        .args([
            server.issuer.as_str(),
            id,
            pem_file.to_str().unwrap(),
            "authlib-1",
        ])
        .output()
        .expect("run .venv/bin/python (bash infra/venv.sh installs it)");
    assert!(
        out.status.success(),
        "authlib failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["token"]["token_type"], "Bearer", "{v}");
    // authlib's own default: assertions valid for an hour (accepted out of the box).
    assert_eq!(v["assertion_lifetimes"], serde_json::json!([3600, 3600]), "{v}");
    let at = v["token"]["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 1)["client_id"], id);
    assert_eq!(v["introspection"]["active"], true, "{v}");
    assert_eq!(v["introspection"]["client_id"], id);

    // A tenant may accept less: then the same hour-long assertion is refused.
    let t = data.cli(&[
        "tenant",
        "set-policy",
        &tenant,
        "--client-assertion-max-lifetime",
        "300",
    ]);
    assert_eq!(t["client_assertion_max_lifetime"], 300, "{t}");
    after_tenant_change().await;
    let out = std::process::Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/interop/authlib_private_key_jwt.py"))
        .args([
            server.issuer.as_str(),
            id,
            pem_file.to_str().unwrap(),
            "authlib-1",
            "refused",
        ])
        .output()
        .expect("run .venv/bin/python");
    assert!(
        out.status.success(),
        "authlib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["refused"], "invalid_client", "{v}");
}

/// panva's openid-client 6 (Node), configured from discovery alone: a DPoP client_credentials
/// grant, and a DPoP authorization code flow — redemption, refresh and userinfo, every token
/// bound to the library's own key. The script is `tests/interop/node/openid_client.mjs`; its
/// pinned dependencies are installed by `infra/node.sh` (run by `infra/test.sh`).
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs openid-client in tests/interop/node: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn openid_client_gets_dpop_bound_tokens_from_discovery() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    openid_client_dpop(&data, &server, &w, &server.issuer, false).await;
}

/// The same at the tenant's own issuer.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs openid-client in tests/interop/node: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn openid_client_gets_dpop_bound_tokens_at_a_tenants_own_issuer() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let issuer = format!("{}/t/{}", server.base, w.tenant);
    openid_client_dpop(&data, &server, &w, &issuer, false).await;
}

pub(crate) fn node_script() -> std::process::Command {
    let dir = repo().join("tests/interop/node");
    assert!(
        dir.join("node_modules/openid-client").is_dir(),
        "openid-client is not installed: run `bash infra/node.sh`"
    );
    let mut cmd = std::process::Command::new("node");
    cmd.arg(dir.join("openid_client.mjs"));
    cmd
}

pub(crate) async fn openid_client_dpop(data: &DataDir, server: &Server, w: &World, issuer: &str, par: bool) {
    use std::io::{BufRead, Write};
    // client_credentials, confidential.
    let machine = data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "Node worker",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
    ]);
    let out = node_script()
        .args([
            "cc",
            issuer,
            machine["client_id"].as_str().unwrap(),
            machine["client_secret"].as_str().unwrap(),
            "api:read",
        ])
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "openid-client cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(
        v["cc"]["token_type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("dpop"),
        "{v}"
    );
    let at = v["cc"]["access_token"].as_str().unwrap();
    assert!(jwt_part(at, 1)["cnf"]["jkt"].is_string(), "{v}");
    assert_eq!(jwt_part(at, 1)["iss"], issuer);

    // The code flow, a public client (the library's DPoP key is all that holds its tokens).
    let public = code_client(data, &w.tenant, "Node CLI", "none", &[]);
    let mut args = vec![
        "code",
        issuer,
        public.id.as_str(),
        "-",
        "openid profile offline_access",
        CALLBACK,
    ];
    if par {
        args.push("par");
    }
    let mut child = node_script()
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let Ok(start) = serde_json::from_str::<Value>(&first) else {
        let out = child.wait_with_output().unwrap();
        panic!("openid-client: {first} {}", String::from_utf8_lossy(&out.stderr));
    };
    let authorize = start["authorize"].as_str().expect("authorize URL");
    if par {
        assert!(authorize.contains("request_uri="), "{authorize}");
        assert!(!authorize.contains("code_challenge"), "pushed: {authorize}");
    }
    let b = Browser::new();
    let page = b.get(authorize).await;
    let page = b.login(server, &page, "alice", PASSWORD).await;
    let page = if page.has("name=\"decision\"") {
        b.consent(server, &page, "approve").await
    } else {
        page
    };
    assert_eq!(page.status, 303, "{}", page.html);
    let callback = page.location().expect("redirect").to_string();
    writeln!(child.stdin.take().unwrap(), "{callback}").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "openid-client code flow: {err}");
    let v: Value = serde_json::from_str(rest.trim()).expect("one JSON object");
    let jkt = jwt_part(v["code"]["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"].clone();
    assert!(jkt.is_string(), "{v}");
    for step in ["code", "refresh"] {
        assert_eq!(
            v[step]["token_type"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("dpop"),
            "{step}: {v}"
        );
        assert_eq!(
            jwt_part(v[step]["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
            jkt,
            "{step}"
        );
    }
    assert_eq!(v["userinfo"]["sub"], w.sub.as_str(), "{v}");
    assert_eq!(v["userinfo"]["preferred_username"], "alice", "{v}");
    // The refresh token is bound: without the library's key it is worth nothing.
    let rt = v["refresh"]["refresh_token"].as_str().unwrap();
    refresh(server, &public, rt, &[])
        .await
        .assert_error(400, "invalid_grant");
}

/// openid-client answers a `use_dpop_nonce` challenge by itself (RFC 9449 §8): with the tenant
/// requiring nonces, the same grants all succeed.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs openid-client in tests/interop/node: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn openid_client_follows_dpop_nonce_challenges() {
    let data = DataDir::new();
    let w = world(&data);
    data.cli(&["tenant", "set-policy", &w.tenant, "--dpop-nonce", "required"]);
    let server = Server::start(&data);
    openid_client_dpop(&data, &server, &w, &server.issuer, false).await;
}

/// openid-client pushes its authorization request (RFC 9126) with a DPoP proof, so the code is
/// bound to its key from the start; then the same DPoP redemption, refresh and userinfo.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs openid-client in tests/interop/node: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn openid_client_runs_a_par_and_dpop_code_flow_from_discovery() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    openid_client_dpop(&data, &server, &w, &server.issuer, true).await;
}

/// The same at the tenant's own issuer, with the tenant requiring PAR.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs openid-client in tests/interop/node: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn openid_client_runs_a_par_and_dpop_code_flow_at_a_tenant_issuer_that_requires_par() {
    let data = DataDir::new();
    let w = world(&data);
    data.cli(&["tenant", "set-policy", &w.tenant, "--par", "required"]);
    let server = Server::start(&data);
    let issuer = format!("{}/t/{}", server.base, w.tenant);
    openid_client_dpop(&data, &server, &w, &issuer, true).await;
}
