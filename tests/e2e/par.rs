//! Pushed authorization requests (RFC 9126): a client pushes its authorization request to
//! `/oauth2/par` (authenticated as at the token endpoint, checked as at the authorization
//! endpoint) and sends the browser with only `client_id` + `request_uri`. The request_uri is
//! used once, by its client, at its issuer; a DPoP proof at PAR binds the code; clients and
//! tenants may require PAR. Both backends, both issuers. (Expiry: the service tests, on a
//! manual clock.)

use serde_json::{Value, json};

use crate::dpop::DpopKey;
use crate::flow::*;
use crate::support::*;

/// The authorization parameters a client pushes (with `extra`).
fn params<'a>(c: &'a TestClient, p: &'a Pkce, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("response_type", "code"),
        ("client_id", c.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", "openid api:read"),
        ("state", "st-par"),
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    form.extend_from_slice(extra);
    form
}

/// `POST` `form` to the PAR endpoint at `url`, authenticated as `c` (Basic for a confidential
/// client), with these `DPoP` headers.
async fn push_to(url: &str, c: &TestClient, form: &[(&str, &str)], proofs: &[&str]) -> Resp {
    let mut req = http().post(url).form(form);
    if !c.secret.is_empty() {
        req = req.basic_auth(&c.id, Some(&c.secret));
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    Resp::from(req.send().await.unwrap()).await
}

/// Push and expect 201: the request_uri.
async fn pushed(url: &str, c: &TestClient, form: &[(&str, &str)], proofs: &[&str]) -> String {
    let r = push_to(url, c, form, proofs).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["expires_in"], 60, "{}", r.body);
    let uri = r.body["request_uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{uri}");
    uri
}

/// The authorization endpoint at `url` with `client_id`, `request_uri` and `extra`.
fn by_reference(url: &str, client_id: &str, request_uri: &str, extra: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(url).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("client_id", client_id)
            .append_pair("request_uri", request_uri);
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// Sign in and approve from `page`: the redirect.
async fn sign_in(b: &Browser, server: &Server, page: Page) -> Page {
    let page = if page.has("name=\"password\"") {
        b.login(server, &page, "alice", PASSWORD).await
    } else {
        page
    };
    if page.has("name=\"decision\"") {
        b.consent(server, &page, "approve").await
    } else {
        page
    }
}

/// Our error page: 400, HTML, and no redirect anywhere.
#[track_caller]
fn assert_error_page(page: &Page, why: &str) {
    assert_eq!(page.status, 400, "{why}: {}", page.html);
    assert!(page.location().is_none(), "{why}: never a redirect");
    assert!(
        page.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{why}"
    );
}

#[tokio::test]
async fn a_confidential_and_a_public_client_push_their_request_and_sign_a_user_in() {
    let data = DataDir::new();
    let w = world(&data);
    let public = code_client(&data, &w.tenant, "Agent CLI", "none", &[]);
    let server = Server::start(&data);
    let disc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let par_url = server.url("/oauth2/par");
    assert_eq!(disc["pushed_authorization_request_endpoint"], par_url.as_str());
    assert_eq!(disc["require_pushed_authorization_requests"], false);
    let b = Browser::new();
    for c in [&w.client, &public] {
        let p = pkce();
        let uri = pushed(&par_url, c, &params(c, &p, &[("nonce", "n-par")]), &[]).await;
        // Only the pushed parameters count (RFC 9126 §4): what the query adds is ignored.
        let page = b
            .get(&by_reference(
                &server.url("/oauth2/authorize"),
                &c.id,
                &uri,
                &[("redirect_uri", "https://evil.example/cb"), ("state", "forged")],
            ))
            .await;
        let done = sign_in(&b, &server, page).await;
        assert_eq!(done.status, 303, "{}", done.html);
        assert!(
            done.header("location").unwrap().starts_with(CALLBACK),
            "{:?}",
            done.location()
        );
        let q = done.redirect_params();
        assert_eq!(q.get("state").map(String::as_str), Some("st-par"));
        assert_eq!(q.get("iss").map(String::as_str), Some(server.issuer.as_str()));
        let r = redeem(&server, c, &q["code"], &p.verifier).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            jwt_part(r.body["id_token"].as_str().unwrap(), 1)["nonce"],
            "n-par"
        );
    }
}

#[tokio::test]
async fn a_dpop_proof_at_par_binds_the_code_to_its_key() {
    let data = DataDir::new();
    let mut w = world(&data);
    w.client = code_client(&data, &w.tenant, "Agent CLI", "none", &[]);
    let server = Server::start(&data);
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let (par_url, token_url) = (server.url("/oauth2/par"), server.url("/oauth2/token"));
    let b = Browser::new();
    let p = pkce();
    let form = params(&w.client, &p, &[]);

    // A bad proof, or a dpop_jkt of another key than the proof's, is refused.
    push_to(
        &par_url,
        &w.client,
        &form,
        &[&key.proof("POST", &token_url, None)],
    )
    .await
    .assert_error(400, "invalid_dpop_proof");
    let other_jkt = other.jkt();
    let mut mismatched = form.clone();
    mismatched.push(("dpop_jkt", &other_jkt));
    push_to(
        &par_url,
        &w.client,
        &mismatched,
        &[&key.proof("POST", &par_url, None)],
    )
    .await
    .assert_error(400, "invalid_request");

    let jkt = key.jkt();
    let mut matching = form.clone();
    matching.push(("dpop_jkt", &jkt));
    for form in [&form, &matching] {
        let uri = pushed(&par_url, &w.client, form, &[&key.proof("POST", &par_url, None)]).await;
        let page = b
            .get(&by_reference(
                &server.url("/oauth2/authorize"),
                &w.client.id,
                &uri,
                &[],
            ))
            .await;
        let done = sign_in(&b, &server, page).await;
        let code = done.redirect_params()["code"].clone();
        let redeem_with = |proof: String| {
            let form = [
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", CALLBACK),
                ("code_verifier", p.verifier.as_str()),
                ("client_id", w.client.id.as_str()),
            ];
            let req = http().post(&token_url).form(&form).header("DPoP", proof);
            async move { Resp::from(req.send().await.unwrap()).await }
        };
        // Another key: refused, and the code is not used up.
        redeem_with(other.proof("POST", &token_url, None))
            .await
            .assert_error(400, "invalid_grant");
        let r = redeem_with(key.proof("POST", &token_url, None)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["token_type"], "DPoP");
        assert_eq!(
            jwt_part(r.body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
            jkt.as_str()
        );
    }
}

#[tokio::test]
async fn a_request_uri_is_used_once_and_only_by_the_client_that_pushed_it() {
    let data = DataDir::new();
    let w = world(&data);
    let other = code_client(&data, &w.tenant, "Other App", "none", &[]);
    let server = Server::start(&data);
    let par_url = server.url("/oauth2/par");
    let authorize = server.url("/oauth2/authorize");
    let b = Browser::new();
    let p = pkce();

    let uri = pushed(&par_url, &w.client, &params(&w.client, &p, &[]), &[]).await;
    let first = b.get(&by_reference(&authorize, &w.client.id, &uri, &[])).await;
    assert_eq!(first.status, 200, "{}", first.html);
    assert!(first.has("name=\"password\""));
    let again = b.get(&by_reference(&authorize, &w.client.id, &uri, &[])).await;
    assert_error_page(&again, "reused");
    assert!(again.has("already used"), "{}", again.html);

    let uri = pushed(&par_url, &w.client, &params(&w.client, &p, &[]), &[]).await;
    let stolen = b.get(&by_reference(&authorize, &other.id, &uri, &[])).await;
    assert_error_page(&stolen, "another client's request_uri");
    for made_up in [
        "urn:ietf:params:oauth:request_uri:made-up",
        "https://client.example/request.jwt",
    ] {
        let page = b.get(&by_reference(&authorize, &w.client.id, made_up, &[])).await;
        assert_error_page(&page, made_up);
    }
}

#[tokio::test]
async fn par_authenticates_the_client_and_checks_the_request_as_the_authorization_endpoint_does() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let par_url = server.url("/oauth2/par");
    let p = pkce();
    let form = params(&w.client, &p, &[]);
    let wrong = TestClient {
        secret: "not-the-secret".into(),
        ..w.client.clone()
    };
    let r = push_to(&par_url, &wrong, &form, &[]).await;
    r.assert_error(401, "invalid_client");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Basic"))
    );
    // A confidential client without its credentials is not a public one.
    let bare = TestClient {
        secret: String::new(),
        ..w.client.clone()
    };
    push_to(&par_url, &bare, &form, &[])
        .await
        .assert_error(401, "invalid_client");

    let no_pkce: Vec<(&str, &str)> = form
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    let mut bad_redirect: Vec<(&str, &str)> = form
        .iter()
        .copied()
        .filter(|(k, _)| *k != "redirect_uri")
        .collect();
    bad_redirect.push(("redirect_uri", "https://evil.example/cb"));
    let mut nested = form.clone();
    nested.push(("request_uri", "urn:ietf:params:oauth:request_uri:x"));
    let mut with_object = form.clone();
    with_object.push(("request", "eyJhbGciOiJub25lIn0.e30."));
    for (why, f, error) in [
        ("no PKCE", no_pkce, "invalid_request"),
        ("an unregistered redirect_uri", bad_redirect, "invalid_request"),
        ("a request_uri inside a push", nested, "invalid_request"),
        ("a request object", with_object, "request_not_supported"),
    ] {
        let r = push_to(&par_url, &w.client, &f, &[]).await;
        assert_eq!(r.header("content-type"), Some("application/json"), "{why}");
        assert!(r.body.get("request_uri").is_none(), "{why}: {}", r.body);
        r.assert_error(400, error);
    }
}

#[tokio::test]
async fn a_client_or_tenant_that_requires_par_gets_our_error_page_for_a_plain_request() {
    let data = DataDir::new();
    let w = world(&data);
    let strict = code_client(&data, &w.tenant, "Strict App", "none", &["--require-par"]);
    // A second tenant whose policy requires PAR of every client.
    let t2 = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &t2]);
    data.cli(&["scope", "add", "--tenant", &t2, "api:read", "Read your documents"]);
    let shown = data.cli(&["tenant", "set-policy", &t2, "--par", "required"]);
    assert_eq!(shown["par"], "required", "{shown}");
    user(&data, &t2, "alice");
    let plain_client = code_client(&data, &t2, "Plain App", "none", &[]);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();

    // Both at the tenant's own issuer, where the policy is in discovery.
    for (tenant, c) in [(&w.tenant, &strict), (&t2, &plain_client)] {
        let base = server.shared_url(&format!("/t/{tenant}"));
        let plain = b
            .get(
                &authorize_url(&server, &c.id, "openid", &p.challenge, &[]).replace(
                    &server.url("/oauth2/authorize"),
                    &format!("{base}/oauth2/authorize"),
                ),
            )
            .await;
        assert_error_page(&plain, "a plain request");
        assert!(plain.has("pushed authorization request"), "{}", plain.html);
        // Pushed, the same request goes.
        let uri = pushed(&format!("{base}/oauth2/par"), c, &params(c, &p, &[]), &[]).await;
        let page = b
            .get(&by_reference(
                &format!("{base}/oauth2/authorize"),
                &c.id,
                &uri,
                &[],
            ))
            .await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.has("name=\"password\""));
    }
    let disc: Value = http()
        .get(server.shared_url(&format!("/t/{t2}/.well-known/openid-configuration")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disc["require_pushed_authorization_requests"], true, "{disc}");
    // The optional tenant's clients still send plain requests.
    let page = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
}

#[tokio::test]
async fn a_request_uri_pushed_to_a_tenant_issuer_is_not_usable_at_the_shared_issuer() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let tenant_base = server.shared_url(&format!("/t/{}", w.tenant));
    let shared_base = server.shared_url("");
    let b = Browser::new();
    let p = pkce();
    for (pushed_at, used_at) in [(&tenant_base, &shared_base), (&shared_base, &tenant_base)] {
        let uri = pushed(
            &format!("{pushed_at}/oauth2/par"),
            &w.client,
            &params(&w.client, &p, &[]),
            &[],
        )
        .await;
        let page = b
            .get(&by_reference(
                &format!("{used_at}/oauth2/authorize"),
                &w.client.id,
                &uri,
                &[],
            ))
            .await;
        assert_error_page(&page, &format!("pushed at {pushed_at}, used at {used_at}"));
    }
}

/// RFC 9126 §2: a `private_key_jwt` client's assertion at the PAR endpoint may name the issuer,
/// the PAR endpoint or the token endpoint as its audience — and nothing else (not another
/// endpoint, not another issuer).
#[tokio::test]
async fn a_private_key_jwt_client_pushes_with_an_assertion_for_the_token_endpoint() {
    let data = DataDir::new();
    let w = world(&data);
    let key = crate::keyless::key("k1");
    let jwks = data.path().join(format!("jwks-{}.json", unique()));
    std::fs::write(&jwks, json!({"keys": [key.jwk]}).to_string()).unwrap();
    let v = data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "Keyless web",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid api:read",
        "--redirect-uri",
        CALLBACK,
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        jwks.to_str().unwrap(),
    ]);
    // No secret: it authenticates with its key.
    let c = TestClient {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: String::new(),
        registration_token: None,
        serves: Vec::new(),
    };
    let server = Server::start(&data);
    let par = server.url("/oauth2/par");
    let p = pkce();
    let push_with_aud = |aud: String| {
        let a = crate::keyless::assertion(&key, &c.id, &aud, None, json!({}));
        let mut form: Vec<(String, String)> = params(&c, &p, &[])
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        form.push((
            "client_assertion_type".into(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ));
        form.push(("client_assertion".into(), a));
        let par = par.clone();
        async move { Resp::from(http().post(&par).form(&form).send().await.unwrap()).await }
    };
    for aud in [server.issuer.clone(), par.clone(), server.url("/oauth2/token")] {
        let r = push_with_aud(aud.clone()).await;
        assert_eq!(r.status, 201, "aud {aud}: {}", r.body);
    }
    for aud in [
        server.url("/oauth2/introspect"),
        "https://other.example".to_string(),
    ] {
        push_with_aud(aud.clone())
            .await
            .assert_error(401, "invalid_client");
    }
}
