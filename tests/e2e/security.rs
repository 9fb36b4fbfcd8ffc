//! What a black-box security review found (issue "Close what a security review found"), each
//! as an attacker would try it over HTTP against `bulwark serve`, on both backends.

use serde_json::{Value, json};

use crate::flow::*;
use crate::support::*;

async fn dcr(server: &Server, tenant: &str, iat: Option<&str>, body: &Value) -> Resp {
    let mut req = http()
        .post(server.url("/oauth2/register"))
        .header("x-bulwark-tenant", tenant)
        .json(body);
    if let Some(t) = iat {
        req = req.bearer_auth(t);
    }
    Resp::from(req.send().await.unwrap()).await
}

async fn put_registration(uri: &str, rat: &str, body: &Value) -> Resp {
    Resp::from(http().put(uri).bearer_auth(rat).json(body).send().await.unwrap()).await
}

/// A public app registered through DCR (with an initial access token) in `w`'s tenant: `w`
/// with that app as its client, and the registration response.
async fn dcr_app(data: &DataDir, server: &Server, w: &World, md: &Value) -> (World, Resp) {
    let iat = data.cli(&["iat", "create", "--tenant", &w.tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let reg = dcr(server, &w.tenant, Some(&iat), md).await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let client = TestClient::from_registration(&json!({
        "client_id": reg.body["client_id"], "client_secret": "",
        "registration_access_token": reg.body["registration_access_token"]
    }));
    let world = World {
        tenant: w.tenant.clone(),
        client,
        sub: w.sub.clone(),
    };
    (world, reg)
}

fn audit_kinds(data: &DataDir, tenant: &str) -> Vec<String> {
    data.cli(&["audit", "list", "--tenant", tenant])["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn public_code_client_metadata() -> Value {
    json!({
        "client_name": "Notes",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": [CALLBACK],
        "token_endpoint_auth_method": "none",
        "scope": "openid profile offline_access api:read",
    })
}

/// Finding 1: RFC 7592 let a client widen itself (scopes, grants) and move an operator-made,
/// first-party client's redirect URI to an attacker. Operator-made clients now have no
/// registration access token; a self-registered client may narrow but never widen; a new
/// redirect URI ends its consents.
#[tokio::test]
async fn rfc7592_cannot_widen_a_client_or_take_over_an_operator_made_one() {
    let data = DataDir::new();
    let w = world(&data);
    data.cli(&["scope", "add", "--tenant", &w.tenant, "api:admin", "Administer"]);
    let server = Server::start(&data);

    // Operator-made (and first-party) clients: no registration access token, no URI, and
    // RFC 7592 refuses any bearer for them.
    let fp = code_client(
        &data,
        &w.tenant,
        "First",
        "client_secret_basic",
        &["--first-party"],
    );
    let created = data.cli(&[
        "client", "create", "--tenant", &w.tenant, "--name", "ops", "--scope", "api:read",
    ]);
    assert!(created.get("registration_access_token").is_none(), "{created}");
    assert!(created.get("registration_client_uri").is_none(), "{created}");
    assert!(fp.registration_token.is_none());
    for (id, secret) in [
        (fp.id.as_str(), fp.secret.as_str()),
        (
            created["client_id"].as_str().unwrap(),
            created["client_secret"].as_str().unwrap(),
        ),
    ] {
        let uri = server.url(&format!("/oauth2/register/{id}"));
        let body = json!({"client_id": id, "redirect_uris": ["https://attacker.example/cb"],
            "grant_types": ["authorization_code"], "scope": "openid api:admin agent:act"});
        for bearer in [secret, "anything"] {
            put_registration(&uri, bearer, &body)
                .await
                .assert_error(401, "invalid_token");
            Resp::from(http().get(&uri).bearer_auth(bearer).send().await.unwrap())
                .await
                .assert_error(401, "invalid_token");
            Resp::from(http().delete(&uri).bearer_auth(bearer).send().await.unwrap())
                .await
                .assert_error(401, "invalid_token");
        }
    }

    // A self-registered client may rename or narrow itself, never widen.
    let iat = data.cli(&["iat", "create", "--tenant", &w.tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = dcr(
        &server,
        &w.tenant,
        Some(&iat),
        &json!({
            "client_name": "bot", "grant_types": ["client_credentials"], "scope": "api:read"
        }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bot = TestClient::from_registration(&r.body);
    let rat = bot.registration_token.clone().unwrap();
    let uri = r.body["registration_client_uri"].as_str().unwrap().to_string();
    let update = |extra: Value| {
        let mut b = json!({"client_id": bot.id, "client_name": "bot",
            "grant_types": ["client_credentials"], "scope": "api:read"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for widen in [
        json!({"scope": "api:read api:admin"}),
        json!({"scope": "api:read agent:act"}),
        json!({"scope": "api:read openid"}),
        json!({"grant_types": ["client_credentials", "authorization_code"], "redirect_uris": ["https://attacker.example/cb"]}),
    ] {
        put_registration(&uri, &rat, &update(widen))
            .await
            .assert_error(400, "invalid_client_metadata");
    }
    let t = token(&server, &bot, &[]).await;
    assert_eq!(t["scope"], "api:read", "nothing was added: {t}");
    let ok = put_registration(&uri, &rat, &update(json!({"client_name": "renamed bot"}))).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["registration_client_uri"], uri.as_str());
}

/// Finding 1 (consent): a self-registered code-flow client that adds a redirect URI through
/// RFC 7592 does not inherit its users' consents there: they are asked again.
#[tokio::test]
async fn a_new_redirect_uri_through_rfc7592_means_users_consent_again() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let iat = data.cli(&["iat", "create", "--tenant", &w.tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = dcr(&server, &w.tenant, Some(&iat), &public_code_client_metadata()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["client_id"].as_str().unwrap().to_string();
    let rat = r.body["registration_access_token"].as_str().unwrap().to_string();
    let uri = r.body["registration_client_uri"].as_str().unwrap().to_string();
    let b = Browser::new();
    let p = pkce();
    let url = authorize_url(&server, &id, "openid api:read", &p.challenge, &[]);
    let consent = b.login(&server, &b.get(&url).await, "alice", PASSWORD).await;
    let done = b.consent(&server, &consent, "approve").await;
    assert_eq!(done.status, 303, "{}", done.html);
    // Remembered: the next request is answered at once.
    assert_eq!(b.get(&url).await.status, 303);

    let mut md = public_code_client_metadata();
    md["client_id"] = json!(id);
    md["redirect_uris"] = json!([CALLBACK, "https://new.example/cb"]);
    let up = put_registration(&uri, &rat, &md).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let again = b.get(&url).await;
    assert_eq!(again.status, 200, "asked again: {}", again.html);
    assert!(again.has("name=\"decision\""), "{}", again.html);
    let silent = b
        .get(&authorize_url(
            &server,
            &id,
            "openid api:read",
            &p.challenge,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(silent.redirect_params()["error"], "consent_required");
    assert!(audit_kinds(&data, &w.tenant).contains(&"consent.reset".to_string()));
}

/// Finding 2: restricted scopes are for operator/admin-made clients only.
#[tokio::test]
async fn restricted_scopes_are_refused_to_dcr_and_rfc7592_and_stop_being_issued_to_dcr_clients() {
    let data = DataDir::new();
    data.cli(&["tenant", "create", "acme", "--dcr", "open"]);
    data.cli(&["scope", "add", "--tenant", "acme", "api:read", "Read"]);
    let t = data.cli(&[
        "scope",
        "add",
        "--tenant",
        "acme",
        "api:admin",
        "Administer",
        "--restricted",
    ]);
    assert_eq!(t["restricted_scopes"], json!(["api:admin"]));
    let server = Server::start(&data);
    let cc = |scope: &str| json!({"grant_types": ["client_credentials"], "scope": scope});

    // Open DCR and an IAT holder alike.
    let public = json!({"grant_types": ["authorization_code"], "redirect_uris": [CALLBACK],
        "token_endpoint_auth_method": "none", "scope": "api:read api:admin"});
    let r = dcr(&server, "acme", None, &public).await;
    r.assert_error(400, "invalid_client_metadata");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("api:admin")
    );
    let iat = data.cli(&["iat", "create", "--tenant", "acme"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    dcr(&server, "acme", Some(&iat), &cc("api:admin"))
        .await
        .assert_error(400, "invalid_client_metadata");
    // The operator may.
    let ops = data.client("acme", "api:read api:admin", "client_secret_basic");
    assert_eq!(token(&server, &ops, &[]).await["scope"], "api:admin api:read");

    // A scope restricted after a DCR client registered it is no longer issued to that client,
    // and the client cannot keep it through RFC 7592.
    let r = dcr(&server, "acme", Some(&iat), &cc("api:read")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bot = TestClient::from_registration(&r.body);
    assert_eq!(token(&server, &bot, &[]).await["scope"], "api:read");
    data.cli(&["scope", "set-restricted", "--tenant", "acme", "api:read", "true"]);
    after_tenant_change().await;
    let t = token(&server, &bot, &[]).await;
    assert!(t.get("scope").is_none(), "api:read is no longer issued: {t}");
    post_form(
        &server.url("/oauth2/token"),
        Some((&bot.id, &bot.secret)),
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await
    .assert_error(400, "invalid_scope");
    let uri = r.body["registration_client_uri"].as_str().unwrap();
    let mut md = cc("api:read");
    md["client_id"] = json!(bot.id);
    put_registration(uri, bot.registration_token.as_deref().unwrap(), &md)
        .await
        .assert_error(400, "invalid_client_metadata");
    assert_eq!(token(&server, &ops, &[]).await["scope"], "api:admin api:read");
    data.cli(&["scope", "set-restricted", "--tenant", "acme", "api:read", "false"]);
    after_tenant_change().await;
    assert_eq!(token(&server, &bot, &[]).await["scope"], "api:read");
    // The standard scopes every app may ask users for cannot be restricted.
    let (ok, _, err) = data.cli_raw(
        &["scope", "set-restricted", "--tenant", "acme", "openid", "true"],
        &[],
    );
    assert!(!ok && err.contains("cannot be restricted"), "{err}");
    let kinds = audit_kinds(&data, "acme");
    assert!(
        kinds.contains(&"scope.restricted".to_string()) && kinds.contains(&"scope.unrestricted".to_string())
    );
}

/// Finding 3: deactivating a user ends what was already issued — a code minted before, the
/// refresh token, the access token at introspection and userinfo.
#[tokio::test]
async fn deactivating_a_user_ends_codes_refresh_tokens_and_access_tokens_already_issued() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access api:read", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // A second code, minted before the deactivation and redeemed after it.
    let p2 = pkce();
    let late_code = get_code(&b, &server, &w, "openid offline_access api:read", &p2).await;
    assert!(active(&server, &w.client, &at).await && active(&server, &w.client, &rt).await);

    data.cli(&["user", "deactivate", "--tenant", &w.tenant, "--username", "alice"]);

    redeem(&server, &w.client, &late_code, &p2.verifier)
        .await
        .assert_error(400, "invalid_grant");
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(!active(&server, &w.client, &at).await, "access token inactive");
    assert!(!active(&server, &w.client, &rt).await, "refresh token inactive");
    userinfo(&server, &at).await.assert_error(401, "invalid_token");
}

/// Finding 3 (listing): every grant of a user ends, however many there are (more than a page
/// of the store's listing).
#[tokio::test]
async fn deactivation_ends_every_grant_of_a_user_with_many() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let mut tokens = Vec::new();
    for i in 0..105 {
        let p = pkce();
        let code = get_code(&b, &server, &w, "openid api:read", &p).await;
        let r = redeem(&server, &w.client, &code, &p.verifier).await;
        assert_eq!(r.status, 200, "grant {i}: {}", r.body);
        tokens.push(r.body["access_token"].as_str().unwrap().to_string());
    }
    data.cli(&["user", "deactivate", "--tenant", &w.tenant, "--username", "alice"]);
    let revoked = audit_kinds(&data, &w.tenant)
        .iter()
        .filter(|k| *k == "grant.revoked")
        .count();
    assert_eq!(revoked, 105, "one grant.revoked event per grant");
    for at in [&tokens[0], &tokens[50], &tokens[104]] {
        assert!(!active(&server, &w.client, at).await);
    }
}

/// Finding 4: deleting a client ends its users' tokens, refresh tokens and consents, through
/// the CLI and through RFC 7592 DELETE.
#[tokio::test]
async fn deleting_a_client_ends_its_grants_everywhere() {
    let data = DataDir::new();
    let w = world(&data);
    data.cli(&["tenant", "create", &format!("{}x", w.tenant), "--dcr", "open"]);
    let server = Server::start(&data);
    let rs = data.resource_server(&w.tenant, &[]);

    // Through the CLI.
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access api:read", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&server, &at).await.status, 200);
    data.cli(&["client", "delete", "--tenant", &w.tenant, &w.client.id]);
    userinfo(&server, &at).await.assert_error(401, "invalid_token");
    assert!(!active(&server, &rs, &at).await);
    // (A refresh token is introspected by its own client only, which no longer exists: the
    // refresh below is what shows it ended.)
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(401, "invalid_client");

    // Through RFC 7592 DELETE, for a self-registered public client.
    let (w2, reg) = dcr_app(&data, &server, &w, &public_code_client_metadata()).await;
    let app = w2.client.clone();
    let p = pkce();
    let code = get_code(
        &Browser::new(),
        &server,
        &w2,
        "openid offline_access api:read",
        &p,
    )
    .await;
    let r = redeem(&server, &app, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let del = http()
        .delete(reg.body["registration_client_uri"].as_str().unwrap())
        .bearer_auth(app.registration_token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 204);
    userinfo(&server, &at).await.assert_error(401, "invalid_token");
    assert!(!active(&server, &rs, &at).await);
    refresh(&server, &app, &rt, &[])
        .await
        .assert_error(401, "invalid_client");
    // The account page no longer lists either app.
    let acct = b.get(&server.url(&format!("/account?tenant={}", w.tenant))).await;
    assert_eq!(acct.status, 200);
    assert!(acct.has("No apps have access"), "{}", acct.html);
}

/// Finding 5 (HTTP side; Chromium in `chromium.rs`): a login page whose answer may be a
/// redirect to the client allows that origin in `form-action`.
#[tokio::test]
async fn the_login_page_allows_its_redirect_origin_in_form_action() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let page = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' http://127.0.0.1;"), "{csp}");
    let wrong = b.login(&server, &page, "alice", "not the password").await;
    let csp = wrong.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' http://127.0.0.1;"), "{csp}");
    // The account page's login form answers on our own origin only.
    let acct = b.get(&server.url(&format!("/account?tenant={}", w.tenant))).await;
    let csp = acct.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self';"), "{csp}");
}

/// Finding 6: misleading redirect URIs and names are refused at registration.
#[tokio::test]
async fn misleading_redirect_uris_and_names_are_refused() {
    let data = DataDir::new();
    data.cli(&["tenant", "create", "acme", "--dcr", "open"]);
    let server = Server::start(&data);
    for uri in [
        "https://evil.example\\@good.example/cb",
        "https:evil.example/cb",
        "https:/\\evil.example/cb",
        "https://\u{0430}pple.com/cb",
        "HTTPS://app.example/cb",
        "https://app.example/x/../cb",
        "https://app.example./cb",
    ] {
        let mut md = public_code_client_metadata();
        md["scope"] = json!("openid");
        md["redirect_uris"] = json!([uri]);
        dcr(&server, "acme", None, &md)
            .await
            .assert_error(400, "invalid_redirect_uri");
    }
    for name in ["Acme \u{202E}gpj.exe", "Acme\u{200B}Notes", "A\u{0007}"] {
        let mut md = public_code_client_metadata();
        md["scope"] = json!("openid");
        md["client_name"] = json!(name);
        dcr(&server, "acme", None, &md)
            .await
            .assert_error(400, "invalid_client_metadata");
    }
    let mut md = public_code_client_metadata();
    md["scope"] = json!("openid");
    md["client_uri"] = json!("https://evil.example\\@good.example/");
    dcr(&server, "acme", None, &md)
        .await
        .assert_error(400, "invalid_client_metadata");
    // Punycode is how an internationalised host is registered.
    md["client_uri"] = json!("https://xn--pple-43d.com/");
    md["redirect_uris"] = json!(["https://xn--pple-43d.com/cb"]);
    assert_eq!(dcr(&server, "acme", None, &md).await.status, 201);
}

/// Finding 7: a loopback redirect URI matches with any port, and nothing else.
#[tokio::test]
async fn loopback_redirect_uris_match_by_string_with_only_the_port_free() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let try_uri = |uri: &'static str| {
        let url = authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]).replace(
            &format!("redirect_uri={}", urlencode(CALLBACK)),
            &format!("redirect_uri={}", urlencode(uri)),
        );
        let b = &b;
        async move { b.get(&url).await }
    };
    for uri in [
        "http://127.1/callback",
        "http://2130706433/callback",
        "http://0x7f.0.0.1/callback",
        "HTTP://127.0.0.1/callback",
        "http://127.0.0.1/x/../callback",
        "http://127.0.0.1./callback",
        "http://localhost/callback",
    ] {
        let page = try_uri(uri).await;
        assert_eq!(page.status, 400, "{uri}: {}", page.html);
        assert!(page.header("location").is_none(), "{uri}: never a redirect");
        assert!(page.has("not one this application registered"), "{uri}");
    }
    let page = try_uri("http://127.0.0.1:49152/callback").await;
    assert_eq!(page.status, 200, "another port is fine: {}", page.html);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Finding 8: the sign-in and consent forms are taken only by POST.
#[tokio::test]
async fn credentials_and_consent_answers_are_refused_in_a_url() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let page = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    let interaction = page.hidden("interaction").unwrap();
    let csrf = page.hidden("csrf").unwrap();
    let mut u = url::Url::parse(&server.url("/oauth2/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("action", "login")
        .append_pair("interaction", &interaction)
        .append_pair("csrf", &csrf)
        .append_pair("username", "alice")
        .append_pair("password", PASSWORD);
    let r = b.get(u.as_str()).await;
    assert_eq!(r.status, 400, "{}", r.html);
    assert!(r.has("accepted only from the form"), "{}", r.html);
    assert!(
        b.cookie(&format!("bulwark_session_{}", w.tenant)).is_none(),
        "no session"
    );
    let kinds = audit_kinds(&data, &w.tenant);
    assert!(
        !kinds.iter().any(|k| k.starts_with("login.")),
        "no login was even tried: {kinds:?}"
    );
    // The same form by POST works.
    let ok = b.login(&server, &page, "alice", PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.html);
}

/// Finding 9: parallel wrong passwords cannot overshoot the throttle: at most five passwords
/// are ever checked in a window, whatever the concurrency.
#[tokio::test]
async fn the_login_throttle_holds_under_parallel_attempts() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let page = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    let interaction = page.hidden("interaction").unwrap();
    let csrf = page.hidden("csrf").unwrap();
    let url = server.url("/oauth2/authorize");
    let b = std::sync::Arc::new(b);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (b, url, interaction, csrf) = (b.clone(), url.clone(), interaction.clone(), csrf.clone());
        tasks.push(tokio::spawn(async move {
            let pw = format!("wrong password {i}");
            b.post(
                &url,
                &[
                    ("action", "login"),
                    ("interaction", &interaction),
                    ("csrf", &csrf),
                    ("username", "alice"),
                    ("password", &pw),
                ],
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let kinds = audit_kinds(&data, &w.tenant);
    let checked = kinds.iter().filter(|k| *k == "login.failed").count();
    let locked = kinds.iter().filter(|k| *k == "login.locked").count();
    assert_eq!(checked, 5, "exactly five passwords were checked: {kinds:?}");
    assert_eq!(
        locked, 1,
        "the lockout is recorded once, not once per try: {kinds:?}"
    );
    // The right password is refused too until the window ends.
    let page = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    let r = b.login(&server, &page, "alice", PASSWORD).await;
    assert!(r.has("Too many failed sign-in attempts"), "{}", r.html);
}

/// Finding 10: refresh tokens go only to clients registered for the grant.
#[tokio::test]
async fn no_refresh_token_for_a_client_not_registered_for_the_grant() {
    let data = DataDir::new();
    let w = world(&data);
    let c = data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "Codes only",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid offline_access api:read",
        "--redirect-uri",
        CALLBACK,
    ]);
    let client = TestClient::from_registration(&c);
    let server = Server::start(&data);
    let w2 = World {
        tenant: w.tenant.clone(),
        client: client.clone(),
        sub: w.sub.clone(),
    };
    let p = pkce();
    let code = get_code(
        &Browser::new(),
        &server,
        &w2,
        "openid offline_access api:read",
        &p,
    )
    .await;
    let r = redeem(&server, &client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    assert_eq!(r.body["scope"], "api:read offline_access openid");
    // Someone else's refresh token, presented by this client: unauthorized_client.
    let p = pkce();
    let code = get_code(&Browser::new(), &server, &w, "openid offline_access", &p).await;
    let theirs = redeem(&server, &w.client, &code, &p.verifier).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    refresh(&server, &client, &theirs, &[])
        .await
        .assert_error(400, "unauthorized_client");
}

/// Finding 11: slow clients cannot hold connections: headers must arrive in time, idle
/// connections close, a request has a deadline (408), and connections are capped.
#[tokio::test]
async fn serve_closes_slow_and_idle_connections_and_caps_them() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = DataDir::new();
    let server = Server::start_with(
        &data,
        &[
            "--header-timeout",
            "2",
            "--request-timeout",
            "3",
            "--max-connections",
            "3",
        ],
        &[],
    );
    let addr = server.base.trim_start_matches("http://").to_string();

    // Headers dripped a byte a second: closed after ~2 s, not held.
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut closed_after = None;
    for b in b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n".iter() {
        if s.write_all(&[*b]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("the dripping connection was closed");
    assert!(closed_after < Duration::from_secs(6), "held for {closed_after:?}");

    // A body that never finishes: 408 when the request deadline passes.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered before 10 s")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");

    // Three clients that keep their connections busy fill the cap (and reconnect when
    // dropped): a fourth is still served promptly, because at capacity the open connections
    // are asked to finish after their current request.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut hogs = Vec::new();
    for _ in 0..3 {
        let (addr, stop) = (addr.clone(), stop.clone());
        hogs.push(tokio::spawn(async move {
            let mut reconnects = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                    break;
                };
                loop {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return reconnects;
                    }
                    let req = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n";
                    let mut buf = vec![0u8; 4096];
                    let alive = s.write_all(req).await.is_ok()
                        && matches!(
                            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
                            Ok(Ok(n)) if n > 0
                        );
                    if !alive {
                        reconnects += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            reconnects
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = Instant::now();
    let r = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("served while the cap is taken");
    assert_eq!(r.status().as_u16(), 200);
    let waited = started.elapsed();
    // Give the hogs time to find their connections closed before they stop.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reconnects = 0;
    for h in hogs {
        reconnects += h.await.unwrap();
    }
    assert!(
        waited < Duration::from_secs(4),
        "waited {waited:?} behind busy connections"
    );
    assert!(reconnects >= 1, "the busy connections were asked to finish");

    // Idle connections at the cap are closed at once for a newcomer.
    let idle = futures_idle(&addr, 3).await;
    let started = Instant::now();
    let r = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

async fn futures_idle(addr: &str, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Let the server accept them all.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    v
}

/// Review of the fixes: what a refresh issues is judged now, not when the grant began — a scope
/// restricted since, or dropped from the client through RFC 7592, is no longer issued.
#[tokio::test]
async fn refresh_issues_only_what_the_client_may_hold_now() {
    let data = DataDir::new();
    let w = world(&data);
    data.cli(&["tenant", "create", &format!("{}o", w.tenant), "--dcr", "open"]);
    data.cli(&[
        "scope",
        "add",
        "--tenant",
        &w.tenant,
        "api:write",
        "Change your documents",
    ]);
    let server = Server::start(&data);
    let mut md = public_code_client_metadata();
    md["scope"] = json!("openid offline_access api:read api:write");
    let (w2, reg) = dcr_app(&data, &server, &w, &md).await;
    let app = w2.client.clone();
    let p = pkce();
    let code = get_code(
        &Browser::new(),
        &server,
        &w2,
        "openid offline_access api:read api:write",
        &p,
    )
    .await;
    // Restricted between the authorization and the redemption: not in the first token either.
    data.cli(&[
        "scope",
        "set-restricted",
        "--tenant",
        &w.tenant,
        "api:write",
        "true",
    ]);
    let r = redeem(&server, &app, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "api:read offline_access openid");
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    data.cli(&[
        "scope",
        "set-restricted",
        "--tenant",
        &w.tenant,
        "api:write",
        "false",
    ]);
    let r = refresh(&server, &app, &rt, &[]).await;
    assert_eq!(r.body["scope"], "api:read offline_access openid", "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // Narrowed through RFC 7592: the next refresh follows.
    md["client_id"] = reg.body["client_id"].clone();
    md["scope"] = json!("openid offline_access");
    let up = put_registration(
        reg.body["registration_client_uri"].as_str().unwrap(),
        app.registration_token.as_deref().unwrap(),
        &md,
    )
    .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let r = refresh(&server, &app, &rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "offline_access openid");
    let claims = jwt_part(r.body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["scope"], "offline_access openid");
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    refresh(&server, &app, &rt, &[("scope", "api:read")])
        .await
        .assert_error(400, "invalid_scope");
}

/// Review of the fixes: a consent page approved after the client added a redirect URI does
/// not cover the new URI; a redirect URI removed meanwhile gets no code.
#[tokio::test]
async fn consent_is_tied_to_the_redirect_uris_the_user_saw() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let iat = data.cli(&["iat", "create", "--tenant", &w.tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let reg = dcr(&server, &w.tenant, Some(&iat), &public_code_client_metadata()).await;
    let id = reg.body["client_id"].as_str().unwrap().to_string();
    let rat = reg.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let uri = reg.body["registration_client_uri"].as_str().unwrap().to_string();
    let put = |uris: Value| {
        let mut md = public_code_client_metadata();
        md["client_id"] = json!(id);
        md["redirect_uris"] = uris;
        md
    };
    let b = Browser::new();
    let p = pkce();
    let consent = b
        .login(
            &server,
            &b.get(&authorize_url(&server, &id, "openid", &p.challenge, &[]))
                .await,
            "alice",
            PASSWORD,
        )
        .await;
    assert!(consent.has("name=\"decision\""), "{}", consent.html);
    // While the page is open, the client adds a redirect URI; then the user approves.
    let evil = "https://evil.example/cb";
    assert_eq!(
        put_registration(&uri, &rat, &put(json!([CALLBACK, evil])))
            .await
            .status,
        200
    );
    let done = b.consent(&server, &consent, "approve").await;
    assert_eq!(
        done.status, 303,
        "the code goes where the user saw: {}",
        done.html
    );
    assert!(done.header("location").unwrap().starts_with(CALLBACK));
    let silent = authorize_url(&server, &id, "openid", &p.challenge, &[("prompt", "none")])
        .replace(&urlencode(CALLBACK), &urlencode(evil));
    let r = b.get(&silent).await;
    assert_eq!(
        r.redirect_params()["error"],
        "consent_required",
        "{:?}",
        r.header("location")
    );

    // A request begun before its redirect URI was removed gets our error page, not a code.
    let pending = b
        .get(&authorize_url(
            &server,
            &id,
            "openid",
            &p.challenge,
            &[("prompt", "login")],
        ))
        .await;
    assert!(pending.has("name=\"password\""));
    assert_eq!(
        put_registration(&uri, &rat, &put(json!([evil]))).await.status,
        200
    );
    let r = b.login(&server, &pending, "alice", PASSWORD).await;
    assert_eq!(r.status, 400, "{}", r.html);
    assert!(r.header("location").is_none());
    assert!(r.has("changed its registration"), "{}", r.html);
}

/// Review of the fixes: taking an app back on the account page also voids the codes it was
/// issued just before; and a used code replayed by another client does not revoke the grant
/// of the client that redeemed it.
#[tokio::test]
async fn revoking_an_app_voids_its_outstanding_codes_and_replays_need_the_right_client() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access api:read", &p).await;
    let acct = b.get(&server.url(&format!("/account?tenant={}", w.tenant))).await;
    let csrf = acct.hidden("csrf").unwrap();
    let r = b
        .post(
            &server.url(&format!("/account/apps/{}/revoke", w.client.id)),
            &[("tenant", w.tenant.as_str()), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    redeem(&server, &w.client, &code, &p.verifier)
        .await
        .assert_error(400, "invalid_grant");
    let acct = b.get(&server.url(&format!("/account?tenant={}", w.tenant))).await;
    assert!(acct.has("No apps have access"), "{}", acct.html);

    // Consent again; the new code works (it was issued after the revocation).
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access api:read", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // Another client of the tenant replays the used code: refused, and the grant stands.
    let other = code_client(&data, &w.tenant, "Other", "client_secret_basic", &[]);
    redeem(&server, &other, &code, &p.verifier)
        .await
        .assert_error(400, "invalid_grant");
    let r = refresh(&server, &w.client, &rt, &[]).await;
    assert_eq!(r.status, 200, "the grant stands: {}", r.body);
}
