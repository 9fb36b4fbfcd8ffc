//! Login rules (generic errors, throttling, CSRF), sessions bound to a tenant, user
//! deactivation, and the account page (connected apps, revoke, sign out).

use crate::flow::*;
use crate::support::*;

#[tokio::test]
async fn wrong_passwords_get_one_generic_answer_and_repeated_failures_lock_the_username() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let url = authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]);
    let page = b.get(&url).await;
    let wrong = b.login(&server, &page, "alice", "not the password").await;
    assert_eq!(wrong.status, 401);
    wrong.assert_secure_page();
    assert!(wrong.has("The username or password is incorrect."));
    assert!(wrong.has("value=\"alice\""), "the username stays filled in");
    let unknown = b.login(&server, &page, "mallory", "whatever pass").await;
    assert_eq!(unknown.status, 401);
    assert!(
        unknown.has("The username or password is incorrect."),
        "no user enumeration"
    );

    // 5 failures for one username in 15 minutes lock it, counted in the store: a second server
    // instance over the same store sees the same count.
    let other = Server::start(&data);
    let b2 = Browser::new();
    let page2 = b2
        .get(&authorize_url(&other, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    for _ in 0..4 {
        b2.login(&other, &page2, "alice", "still wrong").await;
    }
    let page = b.get(&url).await;
    let locked = b.login(&server, &page, "alice", PASSWORD).await;
    assert_eq!(locked.status, 401, "{}", locked.html);
    assert!(locked.has("Too many failed sign-in attempts"), "{}", locked.html);
    // Another user is not affected.
    let bob = user(&data, &w.tenant, "bob");
    assert!(!bob.is_empty());
    let page = b.get(&url).await;
    let ok = b.login(&server, &page, "Bob", PASSWORD).await;
    assert!(
        ok.status == 200 || ok.status == 303,
        "usernames are case-insensitive; bob is not locked: {}",
        ok.html
    );
    // After the window, alice may log in again (an instance 16 minutes ahead).
    let later = Server::start_with(&data, &[], &[("BULWARK_CLOCK_OFFSET_SECS", "960")]);
    let b3 = Browser::new();
    let page = b3
        .get(&authorize_url(&later, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    let ok = b3.login(&later, &page, "alice", PASSWORD).await;
    assert_eq!(ok.status, 200, "consent page after the lock ends: {}", ok.html);
    let kinds = data.cli(&["audit", "list", "--tenant", &w.tenant]).to_string();
    assert!(kinds.contains("login.failed") && kinds.contains("login.locked"));
}

#[tokio::test]
async fn forms_are_bound_to_the_browser_that_got_them() {
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
    // A cross-site POST arrives without the SameSite=Lax cookie.
    let attacker = Browser::new();
    let r = attacker
        .post(
            &server.url("/oauth2/authorize"),
            &[
                ("action", "login"),
                ("interaction", &interaction),
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.html);
    assert!(r.header("location").is_none());
    // The right cookie with a wrong token.
    let r = b
        .post(
            &server.url("/oauth2/authorize"),
            &[
                ("action", "login"),
                ("interaction", &interaction),
                ("csrf", "forged"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    // The consent form of one login cannot be answered by a browser that has only the session.
    let consent = b.login(&server, &page, "alice", PASSWORD).await;
    let thief = Browser::new();
    let r = thief.consent(&server, &consent, "approve").await;
    assert_eq!(r.status, 400, "{}", r.html);
    // And it answers once.
    let ok = b.consent(&server, &consent, "approve").await;
    assert_eq!(ok.status, 303);
    let again = b.consent(&server, &consent, "approve").await;
    assert_eq!(again.status, 400, "a pending request answers once");
    // A login form posted as JSON or garbage is an error page, not a 500.
    let r = http()
        .post(server.url("/oauth2/authorize"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn sessions_users_and_consents_never_cross_tenants() {
    let data = DataDir::new();
    let a = world(&data);
    let bw = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    get_code(&b, &server, &a, "openid", &p).await;
    // Tenant A's session does not sign the browser in at tenant B: B shows its login page.
    let page = b
        .get(&authorize_url(
            &server,
            &bw.client.id,
            "openid",
            &p.challenge,
            &[],
        ))
        .await;
    assert!(page.has("name=\"password\""), "{}", page.html);
    // B's alice is a different user with a different sub.
    assert_ne!(a.sub, bw.sub);
    let c = b.login(&server, &page, "alice", PASSWORD).await;
    let q = b.consent(&server, &c, "approve").await.redirect_params();
    let r = redeem(&server, &bw.client, &q["code"], &p.verifier).await;
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["sub"],
        bw.sub.as_str()
    );
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["tid"],
        bw.tenant.as_str()
    );
    // A's code cannot be redeemed by B's client.
    let code = get_code(&b, &server, &a, "openid", &p).await;
    redeem(&server, &bw.client, &code, &p.verifier)
        .await
        .assert_error(400, "invalid_grant");
    // A user of tenant B cannot sign in to tenant A.
    let tenant_b_only = user(&data, &bw.tenant, "carol");
    assert!(!tenant_b_only.is_empty());
    let fresh = Browser::new();
    let page = fresh
        .get(&authorize_url(&server, &a.client.id, "openid", &p.challenge, &[]))
        .await;
    let r = fresh.login(&server, &page, "carol", PASSWORD).await;
    assert!(r.has("The username or password is incorrect."));
}

#[tokio::test]
async fn account_page_lists_connected_apps_and_revoke_ends_their_tokens() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid profile offline_access api:read", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();

    // A fresh browser: the account page asks to sign in first.
    let me = Browser::new();
    let account = server.url(&format!("/account?tenant={}", w.tenant));
    let login = me.get(&account).await;
    assert_eq!(login.status, 200);
    login.assert_secure_page();
    assert!(login.has("name=\"password\""));
    let csrf = login.hidden("csrf").unwrap();
    let r = me
        .post(
            &server.url("/account/login"),
            &[
                ("tenant", &w.tenant),
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", "nope nope"),
            ],
        )
        .await;
    assert!(r.has("The username or password is incorrect."));
    let r = me
        .post(
            &server.url("/account/login"),
            &[
                ("tenant", &w.tenant),
                ("csrf", &csrf),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    let page = me.get(&account).await;
    assert_eq!(page.status, 200);
    page.assert_secure_page();
    assert!(page.has("Acme Notes"), "{}", page.html);
    assert!(page.has("Read your documents") && page.has("See your name and basic profile"));
    assert!(page.has("Allowed ") && page.has("last used"));
    // The Revoke form names the app in its query string.
    let (revoke, _) = page.form("Revoke");
    assert_eq!(
        revoke,
        server.url(&format!("/account/apps/revoke?client_id={}", w.client.id))
    );

    // Revoke needs the page's CSRF token.
    let csrf = page.hidden("csrf").unwrap();
    let r = me
        .post(&revoke, &[("tenant", &w.tenant), ("csrf", "forged")])
        .await;
    assert_eq!(r.status, 400);
    assert!(active(&server, &w.client, &at).await);
    let r = me.submit(&page, "Revoke").await;
    assert_eq!(r.status, 303);
    let page = me.get(r.header("location").unwrap()).await;
    assert!(page.has("Access removed"), "{}", page.html);
    assert!(!page.has("Acme Notes"));
    assert!(
        !active(&server, &w.client, &at).await,
        "access token inactive after revoke"
    );
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    let audit = data.cli(&["audit", "list", "--tenant", &w.tenant]).to_string();
    assert!(audit.contains("consent.revoked"));
    // Consent is gone: the next authorization asks again.
    let again = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    assert!(again.has("name=\"decision\""), "{}", again.html);

    // Sign out ends the session (server-side, not only the cookie).
    let stolen = me.clone_jar();
    let r = me
        .post(
            &server.url("/account/logout"),
            &[("tenant", &w.tenant), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(me.get(&account).await.has("name=\"password\""));
    assert!(
        stolen.get(&account).await.has("name=\"password\""),
        "the old cookie is dead"
    );
    // Unknown tenant: an error page.
    assert_eq!(me.get(&server.url("/account?tenant=nope")).await.status, 404);
}

#[tokio::test]
async fn deactivating_a_user_ends_sessions_and_grants() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let code = get_code(&b, &server, &w, "openid offline_access", &p).await;
    let r = redeem(&server, &w.client, &code, &p.verifier).await;
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    let v = data.cli(&["user", "deactivate", "--tenant", &w.tenant, "--username", "alice"]);
    assert_eq!(v["active"], false);
    assert!(!active(&server, &w.client, &at).await);
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    let page = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    assert!(page.has("name=\"password\""), "session ended");
    let r = b.login(&server, &page, "alice", PASSWORD).await;
    assert!(
        r.has("The username or password is incorrect."),
        "deactivated users cannot log in"
    );
    // The CLI refuses a duplicate username and a short password.
    let (ok, _, _) = data.cli_raw(
        &[
            "user",
            "create",
            "--tenant",
            &w.tenant,
            "--username",
            "ALICE",
            "--password-stdin",
        ],
        &[],
    );
    assert!(!ok);
}

#[tokio::test]
async fn a_new_login_replaces_the_previous_session() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    get_code(&b, &server, &w, "openid", &p).await;
    let old = b.clone_jar();
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("prompt", "login")],
        ))
        .await;
    let done = b.login(&server, &page, "alice", PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.html);
    let with_old = old
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    assert!(with_old.has("name=\"password\""), "the previous session ended");
    let with_new = b
        .get(&authorize_url(&server, &w.client.id, "openid", &p.challenge, &[]))
        .await;
    assert_eq!(with_new.status, 303, "the new session works");
}

/// A metadata-document app (its client id the URL of its document) that a user authorized at
/// the tenant's issuer is revoked from the account page through the form the page renders: its
/// refresh token is refused and its access token introspects inactive. (The OAuth flow goes to
/// the tenant's issuer, the only one that knows such an app, in every run of the suite; the
/// account page is `server.url`'s, so the tenant-issuer run revokes through `/t/{tenant}`.)
#[tokio::test]
async fn a_cimd_app_is_revoked_from_the_account_page_and_its_tokens_end() {
    let data = DataDir::new();
    let w = world(&data);
    let rs = data.resource_server(&w.tenant, &[]);
    data.cli(&["tenant", "set-policy", &w.tenant, "--cimd", "127.0.0.1"]);
    let (client_id, _hits, task) = crate::cimd::document_host(CALLBACK).await;
    let server = Server::start(&data);
    let issuer = format!("{}/t/{}", server.base, w.tenant);

    let b = Browser::new();
    let p = pkce();
    let scope = "openid api:read offline_access";
    let mut url = url::Url::parse(&authorize_url(&server, &client_id, scope, &p.challenge, &[])).unwrap();
    url.set_path(&format!("/t/{}/oauth2/authorize", w.tenant));
    let login = b.get(url.as_str()).await;
    assert_eq!(login.status, 200, "{}", login.html);
    let consent = b.login(&server, &login, "alice", PASSWORD).await;
    let q = b.consent(&server, &consent, "approve").await.redirect_params();
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
    let rt = t.body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&at, 1)["client_id"], client_id.as_str());
    assert!(active(&server, &rs, &at).await);

    // The same browser, signed in by that login, on its account page.
    let page = b.get(&server.url(&format!("/account?tenant={}", w.tenant))).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.has("<div class=\"name\">127.0.0.1</div>"),
        "the app is listed by its host: {}",
        page.html
    );
    let encoded: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    assert!(
        encoded.starts_with("http%3A%2F%2F127.0.0.1%3A") && page.has(&encoded),
        "the Revoke form names the app encoded ({encoded}): {}",
        page.html
    );
    let r = b.submit(&page, "Revoke").await;
    assert_eq!(
        r.status, 303,
        "the page's Revoke form reaches its handler: {}",
        r.html
    );
    let after = b.get(r.header("location").unwrap()).await;
    assert!(after.has("Access removed"), "{}", after.html);
    assert!(!after.has(&encoded), "{}", after.html);

    post_form(
        &format!("{issuer}/oauth2/token"),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &rt),
        ],
    )
    .await
    .assert_error(400, "invalid_grant");
    assert!(
        !active(&server, &rs, &at).await,
        "the access token introspects inactive after revoke"
    );
    let audit = data.cli(&["audit", "list", "--tenant", &w.tenant]).to_string();
    assert!(audit.contains("consent.revoked"), "{audit}");
    task.abort();
}
