//! Authorization code + PKCE, consent, refresh-token rotation, ID token and userinfo, over
//! HTTP against `bulwark serve` (run on both backends by the test script).

use serde_json::Value;

use crate::flow::*;
use crate::support::*;

#[tokio::test]
async fn code_flow_with_consent_id_token_userinfo_and_refresh_rotation() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();

    // The login page: our own form, secure headers, a browser-binding cookie.
    let url = authorize_url(
        &server,
        &w.client.id,
        "openid profile email offline_access api:read",
        &p.challenge,
        &[("nonce", "n-1")],
    );
    let login = b.get(&url).await;
    assert_eq!(login.status, 200, "{}", login.html);
    login.assert_secure_page();
    assert!(login.has("<label for=\"username\">") && login.has("<label for=\"password\">"));
    assert!(login.has("Acme Notes"), "names the app");
    assert!(login.hidden("csrf").is_some());
    let bid = b.cookie_names();
    assert_eq!(
        bid,
        vec!["bulwark_bid".to_string()],
        "loopback http issuer: no __Host- prefix"
    );
    let set = login.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"),
        "{set}"
    );

    // Log in: the consent page lists the scopes with their catalog descriptions.
    let consent = b.login(&server, &login, "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.html);
    consent.assert_secure_page();
    let session_cookie = format!("bulwark_session_{}", w.tenant);
    assert!(
        b.cookie(&session_cookie).is_some(),
        "session cookie set: {:?}",
        b.cookie_names()
    );
    assert!(consent.has("Read your documents") && consent.has("See your email address"));
    assert!(consent.has("value=\"approve\"") && consent.has("value=\"deny\""));
    assert!(consent.has(CALLBACK));
    let csp = consent.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' http://127.0.0.1"), "{csp}");

    // Approve: 303 to the registered redirect URI with code, state and iss (RFC 9207).
    let done = b.consent(&server, &consent, "approve").await;
    assert_eq!(done.status, 303);
    let loc = done.location().unwrap();
    assert_eq!(
        format!("{}://{}{}", loc.scheme(), loc.host_str().unwrap(), loc.path()),
        CALLBACK
    );
    let q = done.redirect_params();
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], server.issuer);
    let code = &q["code"];
    assert!(code.len() >= 43);

    // Redeem.
    let r = redeem(&server, &w.client, code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let idt = r.body["id_token"].as_str().unwrap().to_string();
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["scope"], "api:read email offline_access openid profile");
    let claims = jwt_part(&at, 1);
    assert_eq!(jwt_part(&at, 0)["typ"], "at+jwt");
    assert_eq!(claims["sub"], w.sub.as_str());
    assert_eq!(claims["client_id"], w.client.id.as_str());
    assert_eq!(claims["tid"], w.tenant.as_str());
    assert!(
        claims["gid"].is_string() && claims["auth_time"].is_i64(),
        "{claims}"
    );

    // The ID token: ES256 from the JWKS, nonce, auth_time, at_hash, aud = client.
    let header = jwt_part(&idt, 0);
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("ES256"), Some("JWT"))
    );
    let jwks = Resp::from(
        http()
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let jwk = jwks.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("kid published")
        .clone();
    crate::support::jwt();
    let key = jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[w.client.id.as_str()]);
    v.set_issuer(&[server.issuer.as_str()]);
    let id = jsonwebtoken::decode::<Value>(&idt, &key, &v)
        .expect("id_token verifies")
        .claims;
    assert_eq!(id["sub"], w.sub.as_str());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["auth_time"], claims["auth_time"]);
    {
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let h = Sha256::digest(at.as_bytes());
        assert_eq!(
            id["at_hash"],
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h[..16])
        );
    }

    // userinfo by scope.
    let u = userinfo(&server, &at).await;
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.body["sub"], w.sub.as_str());
    assert_eq!(u.body["preferred_username"], "alice");
    assert_eq!(u.body["name"], "alice Example");
    assert_eq!(u.body["email"], "alice@example.com");
    let post = Resp::from(
        http()
            .post(server.url("/oauth2/userinfo"))
            .bearer_auth(&at)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, 200, "POST userinfo too");

    // Introspection: active, with auth_time; the refresh token too.
    let i = introspect(&server, &w.client, &at).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], w.sub.as_str());
    let i = introspect(&server, &w.client, &rt).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["token_type"], "refresh_token");

    // Refresh: rotated; the scope may narrow, never widen.
    refresh(&server, &w.client, &rt, &[("scope", "openid admin")])
        .await
        .assert_error(400, "invalid_scope");
    let r2 = refresh(&server, &w.client, &rt, &[("scope", "openid api:read")]).await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(r2.body["scope"], "api:read openid");
    let rt2 = r2.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt, rt2);
    let at2 = r2.body["access_token"].as_str().unwrap().to_string();
    assert!(r2.body["id_token"].is_string());
    assert_eq!(jwt_part(&at2, 1)["gid"], claims["gid"], "same grant");
    assert!(!active(&server, &w.client, &rt).await, "the used token is spent");
    let r3 = refresh(&server, &w.client, &rt2, &[]).await;
    assert_eq!(r3.status, 200, "{}", r3.body);
    assert_eq!(
        r3.body["scope"], "api:read email offline_access openid profile",
        "the family keeps its scope"
    );
    let rt3 = r3.body["refresh_token"].as_str().unwrap().to_string();

    // Reuse of a rotated token: invalid_grant, and the whole family is revoked.
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    refresh(&server, &w.client, &rt3, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(
        !active(&server, &w.client, &at).await,
        "access tokens of the family are inactive"
    );
    userinfo(&server, &at2).await.assert_error(401, "invalid_token");
    let events = data.cli(&["audit", "list", "--tenant", &w.tenant]);
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "login.succeeded",
        "consent.granted",
        "grant.created",
        "refresh.reused",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    for secret in [
        at.as_str(),
        rt.as_str(),
        code.as_str(),
        PASSWORD,
        p.verifier.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn consent_is_remembered_new_scopes_ask_only_for_themselves_and_prompts_are_honoured() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    get_code(&b, &server, &w, "openid profile", &p).await;

    // Same scopes again: signed in, consented → straight back with a code.
    let again = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    assert_eq!(again.status, 303, "{}", again.html);
    assert!(again.redirect_params().contains_key("code"));

    // A new scope: the page asks for it and shows the rest as already granted.
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid profile email",
            &p.challenge,
            &[],
        ))
        .await;
    assert!(
        page.has("It asks for new access") && page.has("You already allowed"),
        "{}",
        page.html
    );
    let new_part = &page.html
        [page.html.find("It asks for new access").unwrap()..page.html.find("You already allowed").unwrap()];
    assert!(
        new_part.contains("See your email address") && !new_part.contains("See your name"),
        "{new_part}"
    );
    let done = b.consent(&server, &page, "approve").await;
    assert!(done.redirect_params().contains_key("code"));

    // prompt=consent asks again; prompt=login asks for the password again.
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("prompt", "consent")],
        ))
        .await;
    assert!(page.has("name=\"decision\""), "{}", page.html);
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("prompt", "login"), ("login_hint", "alice")],
        ))
        .await;
    assert!(page.has("name=\"password\""), "{}", page.html);
    assert!(page.has("value=\"alice\""), "login_hint prefills the username");
    let back = b.login(&server, &page, "alice", PASSWORD).await;
    assert_eq!(back.status, 303, "{}", back.html);

    // max_age=0 needs a fresh login too (the last one is not "now" after a second).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("max_age", "0")],
        ))
        .await;
    assert!(page.has("name=\"password\""), "{}", page.html);

    // prompt=none: fine when signed in and consented; errors otherwise, never a page.
    let ok = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("prompt", "none")],
        ))
        .await;
    assert!(ok.redirect_params().contains_key("code"));
    let q = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid api:read",
            &p.challenge,
            &[("prompt", "none")],
        ))
        .await
        .redirect_params();
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("consent_required", "st-123")
    );
    let stranger = Browser::new();
    let q = stranger
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("prompt", "none")],
        ))
        .await
        .redirect_params();
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["iss"], server.issuer);

    // Deny: access_denied with state and iss.
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid api:read",
            &p.challenge,
            &[],
        ))
        .await;
    let q = b.consent(&server, &page, "deny").await.redirect_params();
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "st-123")
    );
    assert_eq!(q["iss"], server.issuer);
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn requests_that_cannot_be_trusted_get_our_error_page_and_the_rest_redirect_an_error() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let page_error = |page: &Page| {
        assert_eq!(page.status, 400, "{}", page.html);
        assert!(page.header("location").is_none(), "never a redirect");
        page.assert_secure_page();
    };
    // Unknown client, no client, wrong redirect URIs (RFC 9700 §4.1: exact match only).
    page_error(
        &b.get(&authorize_url(&server, "nope", "openid", &p.challenge, &[]))
            .await,
    );
    page_error(&b.get(&server.url("/oauth2/authorize?response_type=code")).await);
    for evil in [
        "https://evil.example/callback",
        "http://127.0.0.1/callback/",
        "http://127.0.0.1/callback?x=1",
        "http://127.0.0.1/callbackx",
        "http://localhost/callback",
        "http://127.0.0.1/other",
    ] {
        let url = authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]).replace(
            &url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>(),
            &url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>(),
        );
        let encoded: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        assert!(url.contains(&encoded), "{url}");
        let page = b.get(&url).await;
        page_error(&page);
        assert!(page.has("redirect_uri"), "{evil}: {}", page.html);
    }
    // Loopback redirect URIs may use any port (RFC 8252 §7.3).
    let url = authorize_url(&server, &w.client.id, "openid", &p.challenge, &[])
        .replace("127.0.0.1%2Fcallback", "127.0.0.1%3A49152%2Fcallback");
    assert!(url.contains("49152"));
    let page = b.get(&url).await;
    assert_eq!(page.status, 200, "{}", page.html);

    // A verified redirect URI gets errors back, with state and iss.
    let base = |q: &str| {
        format!(
            "{}?client_id={}&redirect_uri={}&state=s1&{q}",
            server.url("/oauth2/authorize"),
            w.client.id,
            CALLBACK
        )
    };
    for (q, error) in [
        ("response_type=code".to_string(), "invalid_request"), // no PKCE
        (
            format!("response_type=code&code_challenge={}", p.challenge),
            "invalid_request",
        ), // method plain by default
        (
            format!(
                "response_type=code&code_challenge={}&code_challenge_method=plain",
                p.challenge
            ),
            "invalid_request",
        ),
        (
            format!(
                "response_type=token&code_challenge={}&code_challenge_method=S256",
                p.challenge
            ),
            "unsupported_response_type",
        ),
        (
            format!(
                "response_type=code&code_challenge={}&code_challenge_method=S256&scope=admin",
                p.challenge
            ),
            "invalid_scope",
        ),
        (
            format!(
                "response_type=code&code_challenge={}&code_challenge_method=S256&request=eyJ",
                p.challenge
            ),
            "request_not_supported",
        ),
    ] {
        let r = b.get(&base(&q)).await;
        assert_eq!(r.status, 303, "{q}: {}", r.html);
        let got = r.redirect_params();
        assert_eq!(got["error"], error, "{q}");
        assert_eq!(got["state"], "s1");
        assert_eq!(got["iss"], server.issuer);
        assert!(r.header("location").unwrap().starts_with(CALLBACK));
    }
    // A repeated parameter is refused on our page.
    page_error(
        &b.get(&format!("{}&client_id=x", base("response_type=code")))
            .await,
    );
    // A client without the code grant.
    let cc = data.client(&w.tenant, "api:read", "client_secret_basic");
    let r = b
        .get(&authorize_url(&server, &cc.id, "api:read", &p.challenge, &[]))
        .await;
    page_error(&r);
}

#[tokio::test]
async fn codes_are_single_use_bound_to_client_redirect_and_verifier_and_a_replay_revokes() {
    let data = DataDir::new();
    let w = world(&data);
    let other = code_client(&data, &w.tenant, "Other", "client_secret_basic", &[]);
    let server = Server::start(&data);
    let b = Browser::new();

    // Wrong verifier, missing verifier, other client, wrong redirect URI: invalid_grant, and the
    // code is not spent (only a redemption that passes every check takes it: whoever holds a
    // stolen code cannot use it up for its client).
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid", &p).await;
    redeem(&server, &w.client, &code, &pkce().verifier)
        .await
        .assert_error(400, "invalid_grant");
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&w.client.id, &w.client.secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    r.assert_error(400, "invalid_grant");
    redeem(&server, &other, &code, &p.verifier)
        .await
        .assert_error(400, "invalid_grant");
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&w.client.id, &w.client.secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/callback"),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    r.assert_error(400, "invalid_grant");
    // Wrong client secret: invalid_client.
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&w.client.id, "wrong")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    r.assert_error(401, "invalid_client");
    // After all that, the code still redeems, once, for its own client.
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Replay: the second redemption fails and what the first issued is revoked.
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let first = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let at = first.body["access_token"].as_str().unwrap();
    let rt = first.body["refresh_token"].as_str().unwrap();
    assert!(active(&server, &w.client, at).await);
    redeem(&server, &w.client, &code, &p.verifier)
        .await
        .assert_error(400, "invalid_grant");
    assert!(
        !active(&server, &w.client, at).await,
        "replay revoked the access token"
    );
    refresh(&server, &w.client, rt, &[])
        .await
        .assert_error(400, "invalid_grant");

    // Codes live 60 s: a server whose clock is 2 minutes ahead (another instance) refuses it.
    let code = get_code(&b, &server, &w, "openid", &p).await;
    let later = Server::start_with(&data, &[], &[("BULWARK_CLOCK_OFFSET_SECS", "120")]);
    let r = post_form(
        &later.url("/oauth2/token"),
        Some((&w.client.id, &w.client.secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    r.assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn public_clients_use_pkce_without_a_secret_and_get_rotating_refresh_tokens() {
    let data = DataDir::new();
    let mut w = world(&data);
    w.client = code_client(&data, &w.tenant, "Mobile", "none", &[]);
    assert!(w.client.secret.is_empty(), "no secret for a public client");
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let r2 = refresh(&server, &w.client, &rt, &[]).await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    let rt2 = r2.body["refresh_token"].as_str().unwrap().to_string();
    // Presented again at once (a retry after a lost answer): the same pair ...
    let again = refresh(&server, &w.client, &rt, &[]).await;
    assert_eq!(again.body["refresh_token"], rt2.as_str(), "{}", again.body);
    // ... until the client has used the new one.
    assert_eq!(refresh(&server, &w.client, &rt2, &[]).await.status, 200);
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    // A public client cannot use client_credentials, nor introspect.
    post_form(
        &server.url("/oauth2/token"),
        None,
        &[("grant_type", "client_credentials"), ("client_id", &w.client.id)],
    )
    .await
    .assert_error(400, "unauthorized_client");
    post_form(
        &server.url("/oauth2/introspect"),
        None,
        &[("token", &rt), ("client_id", &w.client.id)],
    )
    .await
    .assert_error(401, "invalid_client");
    // A confidential client cannot skip its secret.
    let conf = code_client(&data, &w.tenant, "Web", "client_secret_basic", &[]);
    post_form(
        &server.url("/oauth2/token"),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &conf.id),
        ],
    )
    .await
    .assert_error(401, "invalid_client");
    // A public client registers through DCR without a secret; client_credentials is refused.
    let bad = data.cli_raw(
        &[
            "client",
            "create",
            "--tenant",
            &w.tenant,
            "--name",
            "x",
            "--auth-method",
            "none",
        ],
        &[],
    );
    assert!(!bad.0, "public + client_credentials refused");
}

#[tokio::test]
async fn refresh_tokens_revoke_and_introspect_and_expire_idle() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();

    // Idle lifetime (30 days): an instance 31 days ahead refuses it; one 29 days ahead does not
    // (and rotates it).
    let later = Server::start_with(
        &data,
        &[],
        &[("BULWARK_CLOCK_OFFSET_SECS", &(31 * 86_400).to_string())],
    );
    refresh(&later, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    drop(later);
    let soon = Server::start_with(
        &data,
        &[],
        &[("BULWARK_CLOCK_OFFSET_SECS", &(29 * 86_400).to_string())],
    );
    let r2 = refresh(&soon, &w.client, &rt, &[]).await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    let rt2 = r2.body["refresh_token"].as_str().unwrap().to_string();
    drop(soon);

    // Absolute lifetime (90 days): refreshing every 29 days keeps the family alive only until
    // day 90 after the login, however recently it was used.
    let mut current = rt2.clone();
    for day in [58, 87] {
        let s = Server::start_with(
            &data,
            &[],
            &[("BULWARK_CLOCK_OFFSET_SECS", &(day * 86_400).to_string())],
        );
        let r = refresh(&s, &w.client, &current, &[]).await;
        assert_eq!(r.status, 200, "day {day}: {}", r.body);
        current = r.body["refresh_token"].as_str().unwrap().to_string();
    }
    let day91 = Server::start_with(
        &data,
        &[],
        &[("BULWARK_CLOCK_OFFSET_SECS", &(91 * 86_400).to_string())],
    );
    refresh(&day91, &w.client, &current, &[])
        .await
        .assert_error(400, "invalid_grant");
    drop(day91);
    let rt2 = current;

    // RFC 7009: revoking the refresh token ends the grant.
    let other = code_client(&data, &w.tenant, "Other", "client_secret_basic", &[]);
    let r = post_form(
        &server.url("/oauth2/revoke"),
        Some((&other.id, &other.secret)),
        &[("token", &rt2)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        active(&server, &w.client, &rt2).await,
        "another client cannot revoke it"
    );
    let r = post_form(
        &server.url("/oauth2/revoke"),
        Some((&w.client.id, &w.client.secret)),
        &[("token", &rt2), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!active(&server, &w.client, &rt2).await);
    assert!(
        !active(&server, &w.client, &at).await,
        "its grant's access tokens end too"
    );
    refresh(&server, &w.client, &rt2, &[])
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn first_party_apps_skip_consent_and_dcr_cannot_claim_to_be_one() {
    let data = DataDir::new();
    let mut w = world(&data);
    w.client = code_client(
        &data,
        &w.tenant,
        "Acme Portal",
        "client_secret_basic",
        &["--first-party"],
    );
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid profile",
            &p.challenge,
            &[],
        ))
        .await;
    let done = b.login(&server, &page, "alice", PASSWORD).await;
    assert_eq!(done.status, 303, "no consent page: {}", done.html);
    assert!(done.redirect_params().contains_key("code"));
    // prompt=consent still shows the page.
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("prompt", "consent")],
        ))
        .await;
    assert!(page.has("name=\"decision\""));
    // DCR refuses first_party.
    data.cli(&["tenant", "create", "dcr-open", "--dcr", "open"]);
    let r = Resp::from(
        http()
            .post(server.url("/oauth2/register"))
            .header("x-bulwark-tenant", "dcr-open")
            .json(&serde_json::json!({"redirect_uris": [CALLBACK], "first_party": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "invalid_client_metadata");
}

#[tokio::test]
async fn userinfo_needs_a_user_token_with_openid() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "api:read", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    assert!(r.body.get("id_token").is_none(), "no openid, no id_token");
    let at = r.body["access_token"].as_str().unwrap();
    let u = userinfo(&server, at).await;
    u.assert_error(403, "insufficient_scope");
    assert!(
        u.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    let code = get_code(&b, &server, &w, "openid", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let u = userinfo(&server, r.body["access_token"].as_str().unwrap()).await;
    assert_eq!(u.status, 200);
    assert!(
        u.body.get("email").is_none() && u.body.get("name").is_none(),
        "only what the scopes allow: {}",
        u.body
    );
    // A client-credentials token is not a user token; garbage is not a token.
    let cc = data.client(&w.tenant, "api:read", "client_secret_basic");
    let t = token(&server, &cc, &[]).await;
    userinfo(&server, t["access_token"].as_str().unwrap())
        .await
        .assert_error(401, "invalid_token");
    userinfo(&server, "garbage")
        .await
        .assert_error(401, "invalid_token");
    let none = Resp::from(http().get(server.url("/oauth2/userinfo")).send().await.unwrap()).await;
    // No credentials at all: the bare challenge, no error code (RFC 6750 §3.1).
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer realm=\"bulwark\""));
    assert!(none.body.get("error").is_none(), "{}", none.body);
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_give_exactly_one_token() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (url, c, code, v) = (
                server.url("/oauth2/token"),
                w.client.clone(),
                code.clone(),
                p.verifier.clone(),
            );
            tokio::spawn(async move {
                post_form(
                    &url,
                    Some((&c.id, &c.secret)),
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", CALLBACK),
                        ("code_verifier", &v),
                    ],
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok += 1,
            400 => assert_eq!(r.body["error"], "invalid_grant"),
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert_eq!(ok, 1, "exactly one redemption wins");
}

#[tokio::test]
async fn thirty_two_concurrent_uses_of_one_refresh_token_get_one_new_pair() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (url, c, rt) = (server.url("/oauth2/token"), w.client.clone(), rt.clone());
            tokio::spawn(async move {
                post_form(
                    &url,
                    Some((&c.id, &c.secret)),
                    &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                )
                .await
            })
        })
        .collect();
    // One rotation: every caller gets the same next refresh token (the losers within the reuse
    // grace; their access tokens are signed afresh, each of them live).
    let mut nexts = std::collections::BTreeSet::new();
    let mut ats = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        nexts.insert(r.body["refresh_token"].as_str().unwrap().to_string());
        ats.push(r.body["access_token"].as_str().unwrap().to_string());
    }
    assert_eq!(
        nexts.len(),
        1,
        "one rotation, one next refresh token for every caller"
    );
    for at in &ats {
        assert!(active(&server, &w.client, at).await);
    }
    let next = nexts.into_iter().next().unwrap();
    assert_eq!(
        refresh(&server, &w.client, &next, &[]).await.status,
        200,
        "the family goes on"
    );
}

#[tokio::test]
async fn a_tenant_sets_its_own_refresh_lifetimes() {
    let data = DataDir::new();
    let w = world(&data);
    let (ok, _, err) = data.cli_raw(
        &[
            "tenant",
            "set-lifetimes",
            &w.tenant,
            "--refresh-idle",
            "7200",
            "--refresh-absolute",
            "3600",
        ],
        &[],
    );
    assert!(!ok && err.contains("idle"), "{err}");
    let t = data.cli(&[
        "tenant",
        "set-lifetimes",
        &w.tenant,
        "--refresh-idle",
        "600",
        "--refresh-absolute",
        "1800",
    ]);
    assert_eq!(
        (t["refresh_idle_ttl"].as_i64(), t["refresh_absolute_ttl"].as_i64()),
        (Some(600), Some(1800))
    );
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let mut rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let at = |secs: i64| Server::start_with(&data, &[], &[("BULWARK_CLOCK_OFFSET_SECS", &secs.to_string())]);
    // Used every 500 s it lives, until 1800 s after the login.
    for secs in [500, 1000, 1500] {
        let s = at(secs);
        let r = refresh(&s, &w.client, &rt, &[]).await;
        assert_eq!(r.status, 200, "+{secs}s: {}", r.body);
        rt = r.body["refresh_token"].as_str().unwrap().to_string();
    }
    refresh(&at(1850), &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    // Unused for longer than 600 s, a fresh family's token expires.
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    refresh(&at(700), &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
}

/// One client refreshing from several places at once (an MCP client's parallel tool calls)
/// gets one new pair for all of them, not a revoked family; presenting the old token again
/// once the new one has been used is reuse, and ends the family.
#[tokio::test]
async fn concurrent_refreshes_with_one_token_get_one_new_pair_and_later_reuse_ends_the_family() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access api:read", &p).await;
    let t = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let rt = t.body["refresh_token"].as_str().unwrap().to_string();

    let (a, b2, c) = tokio::join!(
        refresh(&server, &w.client, &rt, &[]),
        refresh(&server, &w.client, &rt, &[]),
        refresh(&server, &w.client, &rt, &[]),
    );
    for r in [&a, &b2, &c] {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let next = a.body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next, rt);
    for r in [&b2, &c] {
        assert_eq!(r.body["refresh_token"], a.body["refresh_token"], "one new pair");
        assert!(active(&server, &w.client, r.body["access_token"].as_str().unwrap()).await);
    }
    let at = a.body["access_token"].as_str().unwrap().to_string();
    assert!(active(&server, &w.client, &at).await);

    // The client moves on with the new token; the old one is then reuse.
    let moved = refresh(&server, &w.client, &next, &[]).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    let newest = moved.body["refresh_token"].as_str().unwrap();
    refresh(&server, &w.client, newest, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(!active(&server, &w.client, &at).await, "the family ended");
}

/// RFC 8707 end to end: the resources an authorization request names are checked (an unknown
/// one is `invalid_target`, back to the client), shown on the consent page and kept in the
/// grant: its tokens and refreshes are for one of them and nothing else.
#[tokio::test]
async fn resources_named_at_authorization_bind_the_grant() {
    let data = DataDir::new();
    let w = world(&data);
    let files = "https://files.example/api";
    let mail = "https://mail.example/api";
    data.cli(&["resource", "add", "--tenant", &w.tenant, files]);
    data.cli(&["resource", "add", "--tenant", &w.tenant, mail]);
    // Added again with a name: the consent page shows the name, with the URI beside it.
    data.cli(&["resource", "add", "--tenant", &w.tenant, files, "Acme <Files>"]);
    let server = Server::start(&data);
    let p = pkce();
    let scope = "openid offline_access api:read";

    // An unknown resource: invalid_target, to the client.
    let b = Browser::new();
    let bad = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            scope,
            &p.challenge,
            &[("resource", "https://evil.example/")],
        ))
        .await;
    assert_eq!(bad.redirect_params()["error"], "invalid_target", "{}", bad.html);

    // Named at authorization: shown on the consent page, and the grant is bound to it.
    let login = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            scope,
            &p.challenge,
            &[("resource", files)],
        ))
        .await;
    let consent = b.login(&server, &login, "alice", PASSWORD).await;
    assert!(
        consent.has("Only to use") && consent.has(&format!("Acme &#60;Files&#62;<code>{files}</code>")),
        "{}",
        consent.html
    );
    assert!(!consent.has(mail));
    let code = b.consent(&server, &consent, "approve").await.redirect_params()["code"].clone();
    let t = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(
        jwt_part(t.body["access_token"].as_str().unwrap(), 1)["aud"],
        files
    );
    let rt = t.body["refresh_token"].as_str().unwrap().to_string();
    refresh(&server, &w.client, &rt, &[("resource", mail)])
        .await
        .assert_error(400, "invalid_target");
    let r = refresh(&server, &w.client, &rt, &[("resource", files)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["aud"],
        files
    );
    let rt2 = r.body["refresh_token"].as_str().unwrap();
    let r = refresh(&server, &w.client, rt2, &[]).await;
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["aud"],
        files
    );

    // The consent was for files only: a request for mail asks again (and lists mail) ...
    let b3 = Browser::new();
    let login = b3
        .get(&authorize_url(
            &server,
            &w.client.id,
            scope,
            &p.challenge,
            &[("resource", mail)],
        ))
        .await;
    let again = b3.login(&server, &login, "alice", PASSWORD).await;
    assert!(
        again.has("name=\"decision\"") && again.has(mail),
        "{} {}",
        again.status,
        again.html
    );
    let q = b3.consent(&server, &again, "approve").await.redirect_params();
    let t = redeem(&server, &w.client, &q["code"], &p.verifier).await;
    assert_eq!(jwt_part(t.body["access_token"].as_str().unwrap(), 1)["aud"], mail);
    // ... and then files or mail alone are covered, without a page.
    let b4 = Browser::new();
    let login = b4
        .get(&authorize_url(
            &server,
            &w.client.id,
            scope,
            &p.challenge,
            &[("resource", files)],
        ))
        .await;
    assert_eq!(b4.login(&server, &login, "alice", PASSWORD).await.status, 303);

    // Not named: a consent for some resources does not cover a request for any of them (its
    // grant could get tokens for every resource of the tenant): asked again; once approved,
    // any of the tenant's resources at the token endpoint, as before.
    let b2 = Browser::new();
    let login = b2
        .get(&authorize_url(&server, &w.client.id, scope, &p.challenge, &[]))
        .await;
    let page = b2.login(&server, &login, "alice", PASSWORD).await;
    assert!(page.has("name=\"decision\""), "{} {}", page.status, page.html);
    let after = b2.consent(&server, &page, "approve").await;
    let code = after.redirect_params()["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", p.verifier.as_str()),
        ("resource", mail),
    ];
    let t = post_form(
        &server.url("/oauth2/token"),
        Some((&w.client.id, &w.client.secret)),
        &form,
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(jwt_part(t.body["access_token"].as_str().unwrap(), 1)["aud"], mail);
}
