//! The Connected Apps console over HTTP (a cookie-keeping client that follows nothing by
//! itself): sign-in through our own authorization and token endpoints, every page, an app's
//! life (secret shown once, a token with it, rotation, disable, delete and the token's end),
//! and what a stranger, a non-admin, another tenant's admin, a demoted admin or a forged form
//! gets. Each test runs on both backends. (`chromium::` drives the same pages in a browser.)

use serde_json::{Value, json};

use crate::flow::*;
use crate::support::*;

fn admin_user(data: &DataDir, tenant: &str, username: &str) -> String {
    let v = data.cli_stdin(
        &[
            "user",
            "create",
            "--tenant",
            tenant,
            "--username",
            username,
            "--name",
            "Root Admin",
            "--password-stdin",
            "--admin",
        ],
        &format!("{PASSWORD}\n"),
    );
    v["sub"].as_str().unwrap().to_string()
}

/// Follow `page`'s redirect (same browser).
async fn follow(b: &Browser, page: &Page) -> Page {
    let to = page
        .location()
        .unwrap_or_else(|| panic!("expected a redirect, got {}: {}", page.status, page.html));
    b.get(to.as_str()).await
}

/// Sign in to `tenant`'s console as `username`: returns the last page (the apps page for an
/// administrator; the authorization endpoint's refusal for anyone else).
async fn sign_in(b: &Browser, server: &Server, tenant: &str, username: &str) -> Page {
    let start = b.get(&server.url(&format!("/console?tenant={tenant}"))).await;
    assert_eq!(start.status, 303, "{}", start.html);
    let to = start.location().unwrap();
    assert!(
        to.as_str().starts_with(&server.shared_url("/oauth2/authorize?")),
        "{to}"
    );
    let q: std::collections::BTreeMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], format!("bulwark-console.{tenant}"));
    assert_eq!(q["scope"], "bulwark:admin");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["max_age"], "3600",
        "administrators enter their password at least hourly"
    );
    let login = follow(b, &start).await;
    let after = b.login(server, &login, username, PASSWORD).await;
    if after.status != 303 {
        return after;
    }
    let callback = after.location().unwrap();
    assert!(
        callback.as_str().starts_with(&server.url("/console/callback?")),
        "{callback}"
    );
    let landed = follow(b, &after).await;
    assert_eq!(landed.status, 303, "{}", landed.html);
    follow(b, &landed).await
}

/// The console session's access token (its cookie).
fn session_token(b: &Browser, tenant: &str) -> String {
    b.cookie(&format!("bulwark_console_s_{tenant}"))
        .expect("a console session cookie")
}

/// The text of the element with `id` (the secret page's values).
fn element_text(html: &str, id: &str) -> String {
    let needle = format!("id=\"{id}\">");
    let start = html.find(&needle).unwrap_or_else(|| panic!("no #{id}: {html}")) + needle.len();
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_string()
}

async fn admin_api(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let mut req = http().request(method, server.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    Resp::from(req.send().await.unwrap()).await
}

async fn cc_token(server: &Server, id: &str, secret: &str) -> Resp {
    post_form(
        &server.url("/oauth2/token"),
        Some((id, secret)),
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await
}

#[tokio::test]
async fn an_administrator_creates_uses_rotates_disables_and_deletes_an_app_in_the_console() {
    let data = DataDir::new();
    let w = world(&data);
    let admin_sub = admin_user(&data, &w.tenant, "root");
    let rs = data.resource_server(&w.tenant, &[]);
    let server = Server::start(&data);
    let b = Browser::new();

    let apps = sign_in(&b, &server, &w.tenant, "root").await;
    assert_eq!(apps.status, 200, "{}", apps.html);
    apps.assert_secure_page();
    assert!(apps.has("Connected Apps") && apps.has("Acme Notes") && apps.has("Root Admin"));
    assert!(
        !apps.has("bulwark-console."),
        "the console's own client is not an app of the tenant"
    );
    let csrf = apps.hidden("csrf").expect("csrf");
    let token = session_token(&b, &w.tenant);

    // The console's token is an admin token for the API too (bulwark:admin, user = the admin).
    let api = admin_api(
        &server,
        &token,
        reqwest::Method::GET,
        "/admin/v1/clients?limit=200",
        None,
    )
    .await;
    assert_eq!(api.status, 200, "{}", api.body);
    assert!(
        api.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["client_id"].as_str().unwrap().starts_with("bulwark-console."))
    );
    let hidden = admin_api(
        &server,
        &token,
        reqwest::Method::GET,
        &format!("/admin/v1/clients/bulwark-console.{}", w.tenant),
        None,
    )
    .await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);

    // Create: a pipeline that acts on its own behalf. The secret is on this page only.
    let form = b
        .get(&server.url(&format!("/console/apps/new?tenant={}", w.tenant)))
        .await;
    assert!(form.has("Acts on its own behalf") && form.has("Read your documents"));
    let created = b
        .post(
            &server.url(&format!("/console/apps?tenant={}", w.tenant)),
            &[
                ("csrf", &csrf),
                ("name", "CI pipeline"),
                ("kind", "own"),
                ("scope.api:read", "on"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.html);
    created.assert_secure_page();
    assert!(created.has("shown only this once"));
    let id = element_text(&created.html, "client-id");
    let secret = element_text(&created.html, "client-secret");
    assert!(secret.len() >= 32);

    // A CLI (device flow): a public client, so no secret to show; straight to its page, and
    // it may ask for a device code.
    let cli = b
        .post(
            &server.url(&format!("/console/apps?tenant={}", w.tenant)),
            &[
                ("csrf", &csrf),
                ("name", "Ops CLI"),
                ("kind", "device"),
                ("scope.api:read", "on"),
            ],
        )
        .await;
    assert_eq!(cli.status, 303, "{}", cli.html);
    let cli_page = b.get(cli.location().unwrap().as_str()).await;
    assert!(
        cli_page.has("Ops CLI") && cli_page.has("Acts on behalf of users"),
        "{}",
        cli_page.html
    );
    let cli_id = cli
        .location()
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
        .expect("the app page names the client");
    let d = post_form(
        &server.url("/oauth2/device_authorization"),
        None,
        &[("client_id", &cli_id), ("scope", "api:read")],
    )
    .await;
    assert_eq!(d.status, 200, "{}", d.body);

    // A token with it, over HTTP; its app page now says when it was last used.
    let t = cc_token(&server, &id, &secret).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let at = t.body["access_token"].as_str().unwrap().to_string();
    assert!(active(&server, &rs, &at).await);
    let page = b
        .get(&server.url(&format!("/console/apps/{id}?tenant={}", w.tenant)))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.has("CI pipeline") && page.has("Acts on its own behalf"));
    assert!(!page.html.contains(&secret), "the secret is never shown again");
    assert!(!page.has("<dd>never</dd>"), "last used is known: {}", page.html);

    // Rotate, the previous secret ends at once: only the new one works.
    let rotated = b
        .post(
            &server.url(&format!("/console/apps/{id}/secret?tenant={}", w.tenant)),
            &[("csrf", &csrf), ("grace_seconds", "0")],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.html);
    let new_secret = element_text(&rotated.html, "client-secret");
    assert_ne!(new_secret, secret);
    assert_eq!(cc_token(&server, &id, &secret).await.status, 401);
    assert_eq!(cc_token(&server, &id, &new_secret).await.status, 200);

    // Disable: its token introspects inactive at once; enabling does not bring it back.
    let off = b
        .post(
            &server.url(&format!("/console/apps/{id}/disable?tenant={}", w.tenant)),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(off.status, 303, "{}", off.html);
    assert!(!active(&server, &rs, &at).await);
    assert_eq!(cc_token(&server, &id, &new_secret).await.status, 401);
    let on = b
        .post(
            &server.url(&format!("/console/apps/{id}/enable?tenant={}", w.tenant)),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(on.status, 303);
    assert!(!active(&server, &rs, &at).await);
    // Tokens issued in the second the app was disabled are ended too (whole seconds): the
    // next one is the first that counts.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let at2 = cc_token(&server, &id, &new_secret).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(active(&server, &rs, &at2).await);

    // Delete, after a confirmation page: the token ends, the app is gone.
    let confirm = b
        .get(&server.url(&format!("/console/apps/{id}/delete?tenant={}", w.tenant)))
        .await;
    assert!(confirm.has("Delete CI pipeline?") && confirm.has("cannot be undone"));
    let gone = b
        .post(
            &server.url(&format!("/console/apps/{id}/delete?tenant={}", w.tenant)),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(gone.status, 303);
    let list = follow(&b, &gone).await;
    assert!(list.has("Application deleted") && !list.has("CI pipeline"));
    assert!(!active(&server, &rs, &at2).await);
    assert_eq!(cc_token(&server, &id, &new_secret).await.status, 401);

    // Users, audit, policy: each page answers; the audit trail names the administrator.
    let users = b
        .get(&server.url(&format!("/console/users?tenant={}", w.tenant)))
        .await;
    assert!(users.has("alice") && users.has("Administrator"));
    let made = b
        .post(
            &server.url(&format!("/console/users?tenant={}", w.tenant)),
            &[
                ("csrf", &csrf),
                ("username", "bob"),
                ("name", "Bob Builder"),
                ("password", "a long enough password"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.html);
    let audit = b
        .get(&server.url(&format!("/console/audit?tenant={}&kind=client", w.tenant)))
        .await;
    assert!(audit.has("client.created") && audit.has("client.deleted") && audit.has(&admin_sub));
    assert!(!audit.has("user.created"), "the kind filter applies");
    assert!(!audit.html.contains(&new_secret) && !audit.html.contains(&secret));
    let policy = b
        .get(&server.url(&format!("/console/policy?tenant={}", w.tenant)))
        .await;
    assert!(policy.has("App allowlist") && policy.has("Acme Notes"));

    // Signing out revokes the session's token.
    let out = b
        .post(
            &server.url(&format!("/console/logout?tenant={}", w.tenant)),
            &[("csrf", &csrf)],
        )
        .await;
    assert!(out.has("signed out"), "{}", out.html);
    let after = admin_api(&server, &token, reqwest::Method::GET, "/admin/v1/clients", None).await;
    assert_eq!(after.status, 401);
    let back = b
        .get(&server.url(&format!("/console/apps?tenant={}", w.tenant)))
        .await;
    assert_eq!(back.status, 303, "signed out: back to sign-in");
    // ... and the single sign-on session ended with it: signing in again asks for the password.
    let again = follow(&b, &follow(&b, &back).await).await;
    assert!(again.has("name=\"password\""), "{} {}", again.status, again.html);
}

#[tokio::test]
async fn strangers_non_admins_other_tenants_forged_forms_and_demoted_admins_get_nothing() {
    let data = DataDir::new();
    let w = world(&data);
    let admin_sub = admin_user(&data, &w.tenant, "root");
    let other = format!("o{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &other]);
    admin_user(&data, &other, "root");
    let server = Server::start(&data);

    // No tenant, an unknown tenant: our error page.
    let b = Browser::new();
    assert_eq!(b.get(&server.url("/console")).await.status, 404);
    assert_eq!(b.get(&server.url("/console?tenant=nope")).await.status, 404);
    // Not signed in: every page sends the browser to sign in; every form is refused.
    let p = b
        .get(&server.url(&format!("/console/apps?tenant={}", w.tenant)))
        .await;
    assert_eq!(p.status, 303);
    assert!(
        p.header("location")
            .unwrap()
            .ends_with(&format!("/console?tenant={}", w.tenant))
    );
    let f = b
        .post(
            &server.url(&format!("/console/apps?tenant={}", w.tenant)),
            &[("csrf", "x"), ("name", "evil"), ("kind", "own")],
        )
        .await;
    assert_eq!(f.status, 401, "{}", f.html);

    // A user without the admin role: the authorization endpoint refuses (our page, no code).
    let alice = sign_in(&Browser::new(), &server, &w.tenant, "alice").await;
    assert_eq!(alice.status, 403, "{}", alice.html);
    assert!(alice.has("administrators"), "{}", alice.html);
    assert!(alice.location().is_none());

    // A forged callback: wrong state, or no sign-in started in this browser.
    let b = Browser::new();
    let start = b.get(&server.url(&format!("/console?tenant={}", w.tenant))).await;
    assert_eq!(start.status, 303);
    let forged = b
        .get(&server.url("/console/callback?code=abc&state=forged"))
        .await;
    assert_eq!(forged.status, 400);
    assert!(b.cookie(&format!("bulwark_console_s_{}", w.tenant)).is_none());
    assert_eq!(
        Browser::new()
            .get(&server.url("/console/callback?code=abc&state=x"))
            .await
            .status,
        400
    );

    // The administrator: a form without the session's CSRF token changes nothing.
    let b = Browser::new();
    let apps = sign_in(&b, &server, &w.tenant, "root").await;
    assert_eq!(apps.status, 200, "{}", apps.html);
    let csrf = apps.hidden("csrf").unwrap();
    for bad in ["", "x", &csrf[..csrf.len() - 1]] {
        let r = b
            .post(
                &server.url(&format!("/console/apps?tenant={}", w.tenant)),
                &[("csrf", bad), ("name", "Forged"), ("kind", "own")],
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.html);
    }
    let list = b
        .get(&server.url(&format!("/console/apps?tenant={}", w.tenant)))
        .await;
    assert!(!list.has("Forged"));

    // Its session is for its own tenant only: the other tenant's console asks it to sign in,
    // and its token is nothing there either.
    let session = session_token(&b, &w.tenant);
    let cross = b.clone_jar();
    cross.set_cookie(&format!("bulwark_console_s_{other}"), &session);
    let r = cross
        .get(&server.url(&format!("/console/apps?tenant={other}")))
        .await;
    assert_eq!(r.status, 303, "{}", r.html);

    // The app allowlist cannot lock the administrators out of the console.
    let saved = b
        .post(
            &server.url(&format!("/console/policy?tenant={}", w.tenant)),
            &[("csrf", &csrf), ("dcr", "closed"), ("allowlist", "on")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.html);
    let again = sign_in(&Browser::new(), &server, &w.tenant, "root").await;
    assert_eq!(again.status, 200, "{}", again.html);
    let policy = data.cli(&["tenant", "show", &w.tenant]);
    assert_eq!(policy["dcr_policy"], "closed", "{policy}");

    // A demoted administrator's session ends at once, in the console and at the API.
    let (_, ops) = {
        let v = data.cli(&[
            "client",
            "create",
            "--tenant",
            &w.tenant,
            "--name",
            "Ops",
            "--scope",
            "bulwark:admin",
        ]);
        let c = TestClient::from_registration(&v);
        let t = token(&server, &c, &[("scope", "bulwark:admin")]).await;
        (c, t["access_token"].as_str().unwrap().to_string())
    };
    let demote = admin_api(
        &server,
        &ops,
        reqwest::Method::PATCH,
        &format!("/admin/v1/users/{admin_sub}"),
        Some(json!({"admin": false})),
    )
    .await;
    assert_eq!(demote.status, 200, "{}", demote.body);
    let r = b
        .get(&server.url(&format!("/console/apps?tenant={}", w.tenant)))
        .await;
    assert_eq!(r.status, 303, "demoted: back to sign-in");
    let api = admin_api(&server, &session, reqwest::Method::GET, "/admin/v1/clients", None).await;
    assert_eq!(api.status, 401, "{}", api.body);
    let refused = sign_in(&Browser::new(), &server, &w.tenant, "root").await;
    assert_eq!(refused.status, 403, "{}", refused.html);
    // Made an administrator again, the old session does not come back; a new sign-in works.
    let promote = admin_api(
        &server,
        &ops,
        reqwest::Method::PATCH,
        &format!("/admin/v1/users/{admin_sub}"),
        Some(json!({"admin": true})),
    )
    .await;
    assert_eq!(promote.status, 200, "{}", promote.body);
    let r = b
        .get(&server.url(&format!("/console/apps?tenant={}", w.tenant)))
        .await;
    assert_eq!(r.status, 303, "the demoted session stays ended");
    let fresh = Browser::new();
    assert_eq!(sign_in(&fresh, &server, &w.tenant, "root").await.status, 200);
    // A new password (set by another administrator) ends the console session at once.
    let reset = admin_api(
        &server,
        &ops,
        reqwest::Method::PATCH,
        &format!("/admin/v1/users/{admin_sub}"),
        Some(json!({"password": "another long password"})),
    )
    .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let r = fresh
        .get(&server.url(&format!("/console/apps?tenant={}", w.tenant)))
        .await;
    assert_eq!(r.status, 303, "a new password ends the console session");
    let api = admin_api(
        &server,
        &session_token(&fresh, &w.tenant),
        reqwest::Method::GET,
        "/admin/v1/clients",
        None,
    )
    .await;
    assert_eq!(api.status, 401, "{}", api.body);
}

/// The console's password reset form: "Sign out everywhere" is checked by default; unchecked,
/// the reset ends the user's sessions only; checked, everything they hold (refresh token,
/// access token, an agent's delegated token) ends and they sign in with the new password.
#[tokio::test]
async fn a_console_password_reset_signs_out_everywhere_by_default() {
    use crate::sign_out::{ended_everywhere, fixture, only_sessions_ended, signed_out_events};
    let data = DataDir::new();
    let f = fixture(&data);
    let root = admin_user(&data, &f.w.tenant, "root");
    let server = Server::start(&data);
    let b = Browser::new();
    let apps = sign_in(&b, &server, &f.w.tenant, "root").await;
    assert_eq!(apps.status, 200, "{}", apps.html);
    let csrf = apps.hidden("csrf").unwrap();
    let (second, third) = ("a second long password", "a third long password");

    let users = b
        .get(&server.url(&format!("/console/users?tenant={}", f.w.tenant)))
        .await;
    let form_url = format!("/console/users/{}/password?tenant={}", f.w.sub, f.w.tenant);
    assert!(users.html.contains(&form_url), "{}", users.html);
    let form = b.get(&server.url(&form_url)).await;
    assert_eq!(form.status, 200, "{}", form.html);
    form.assert_secure_page();
    assert!(
        form.html
            .contains(r#"name="sign_out_everywhere" value="on" checked"#),
        "checked by default: {}",
        form.html
    );

    // Unchecked (a checkbox left out of the form): her session ends, her tokens live on.
    let held = crate::sign_out::sign_in(&server, &f, PASSWORD).await;
    let r = b
        .post(&server.url(&form_url), &[("csrf", &csrf), ("password", second)])
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert!(
        follow(&b, &r)
            .await
            .has("Password set. Their sessions have ended.")
    );
    let held = only_sessions_ended(&server, &f, held).await;

    // A password too short: the form again, with the box as it was sent, and nothing ends.
    let r = b
        .post(&server.url(&form_url), &[("csrf", &csrf), ("password", "short")])
        .await;
    assert_eq!(r.status, 400, "{}", r.html);
    assert!(
        r.has("at least 8 characters") && !r.html.contains(" checked"),
        "{}",
        r.html
    );
    // A forged form changes nothing either.
    let r = b
        .post(
            &server.url(&form_url),
            &[
                ("csrf", "forged"),
                ("password", third),
                ("sign_out_everywhere", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.html);
    assert!(active(&server, &f.rs, &held.access).await);

    // Checked, as the form comes: everything she holds ends.
    let r = b
        .post(
            &server.url(&form_url),
            &[
                ("csrf", &csrf),
                ("password", third),
                ("sign_out_everywhere", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.html);
    assert!(follow(&b, &r).await.has("signed out everywhere"));
    ended_everywhere(&server, &f, &held).await;
    crate::sign_out::sign_in(&server, &f, third).await;
    let events = signed_out_events(&data, &f);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], root.as_str(), "the administrator, by sub");
}

/// An administrator makes an app that must use DPoP (RFC 9449 `dpop_bound_access_tokens`): its
/// page says so, and a token request without a proof is refused.
#[tokio::test]
async fn an_administrator_creates_an_app_that_gets_only_dpop_bound_tokens() {
    let data = DataDir::new();
    let w = world(&data);
    admin_user(&data, &w.tenant, "root");
    let server = Server::start(&data);
    let b = Browser::new();
    let apps = sign_in(&b, &server, &w.tenant, "root").await;
    let csrf = apps.hidden("csrf").expect("csrf");
    let form = b
        .get(&server.url(&format!("/console/apps/new?tenant={}", w.tenant)))
        .await;
    assert!(form.has("DPoP-bound tokens only"), "{}", form.html);
    let created = b
        .post(
            &server.url(&format!("/console/apps?tenant={}", w.tenant)),
            &[
                ("csrf", &csrf),
                ("name", "Bound worker"),
                ("kind", "own"),
                ("dpop_bound", "on"),
                ("scope.api:read", "on"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.html);
    let id = element_text(&created.html, "client-id");
    let secret = element_text(&created.html, "client-secret");
    cc_token(&server, &id, &secret)
        .await
        .assert_error(400, "invalid_dpop_proof");
    let key = crate::dpop::DpopKey::new();
    let url = server.url("/oauth2/token");
    let r = Resp::from(
        http()
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .header("DPoP", key.proof("POST", &url, None))
            .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["token_type"]),
        (200, &serde_json::json!("DPoP")),
        "{}",
        r.body
    );
    let page = b
        .get(&server.url(&format!("/console/app?tenant={}&client_id={id}", w.tenant)))
        .await;
    assert!(page.has("DPoP-bound tokens only"), "{}", page.html);
}

/// The console shows a `federated` app's workload identity (its issuer and subjects) and what
/// each trusted issuer is trusted for; it offers no secret to rotate for such an app.
#[tokio::test]
async fn the_console_shows_a_federated_apps_workload_identity_and_the_trusted_issuers() {
    use crate::workload::{GITHUB, platform};
    let data = DataDir::new();
    let w = world(&data);
    admin_user(&data, &w.tenant, "root");
    let gh = platform("gh-console");
    let jwks = data.path().join("gh-console-jwks.json");
    std::fs::write(&jwks, json!({"keys": [gh.jwk]}).to_string()).unwrap();
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &w.tenant,
        "--issuer",
        GITHUB,
        "--jwks-file",
        jwks.to_str().unwrap(),
        "--workload",
        "--single-use",
    ]);
    let subject = "repo:octo-org/octo-repo:ref:refs/heads/main";
    let id = data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "Deploy from CI",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--auth-method",
        "federated",
        "--federated-issuer",
        GITHUB,
        "--federated-subject",
        subject,
    ])["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&data);
    let b = Browser::new();
    sign_in(&b, &server, &w.tenant, "root").await;
    let page = b
        .get(&server.url(&format!("/console/app?tenant={}&client_id={id}", w.tenant)))
        .await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.has("Workload identity") && page.has(GITHUB) && page.has(subject) && page.has("federated"),
        "{}",
        page.html
    );
    assert!(!page.has("Rotate secret"), "a federated app has no secret");
    let policy = b
        .get(&server.url(&format!("/console/policy?tenant={}", w.tenant)))
        .await;
    assert!(
        policy.has("Trusted issuers")
            && policy.has(GITHUB)
            && policy.has("Workloads (federated apps); each token once"),
        "{}",
        policy.html
    );
}

/// The console alone gives a CI job access (issue 23): the administrator trusts GitHub's
/// keys on the Policy page, creates a federated app of it, and a GitHub Actions token of that
/// subject gets an access token with no secret; after Remove on the Policy page, the next
/// token is refused.
#[tokio::test]
async fn an_administrator_trusts_a_workload_issuer_and_creates_a_federated_app_in_the_console() {
    use crate::workload::{GITHUB, cc, github_claims, platform, sign};
    let data = DataDir::new();
    let w = world(&data);
    admin_user(&data, &w.tenant, "root");
    let server = Server::start(&data);
    let b = Browser::new();
    let apps = sign_in(&b, &server, &w.tenant, "root").await;
    assert_eq!(apps.status, 200, "{}", apps.html);
    let gh = platform("gh-console");

    let policy = b
        .get(&server.url(&format!("/console/policy?tenant={}", w.tenant)))
        .await;
    let (action, mut fields) = policy.form("Trust issuer");
    fields.push(("issuer".into(), GITHUB.into()));
    fields.push(("jwks".into(), json!({"keys": [gh.jwk]}).to_string()));
    let trusted = b.post(&action, &pairs(&fields)).await;
    assert_eq!(trusted.status, 303, "{}", trusted.html);
    let policy = follow(&b, &trusted).await;
    assert!(
        policy.has("Issuer trusted.") && policy.has(GITHUB),
        "{}",
        policy.html
    );

    let new = b
        .get(&server.url(&format!("/console/apps/new?tenant={}", w.tenant)))
        .await;
    let (action, mut fields) = new.form("Create application");
    let subject = "repo:octo-org/octo-repo:ref:refs/heads/main";
    let aud = "https://ci.acme.example";
    for (k, v) in [
        ("name", "Deploy from CI"),
        ("kind", "federated"),
        ("federated_issuer", GITHUB),
        ("subjects", subject),
        ("audience", aud),
        ("scope.api:read", "on"),
    ] {
        fields.push((k.into(), v.into()));
    }
    let created = b.post(&action, &pairs(&fields)).await;
    assert_eq!(created.status, 303, "no secret to show: {}", created.html);
    let id = created
        .location()
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
        .expect("the app's page");

    let te = server.url("/oauth2/token");
    let token = |ref_: &str| sign(&gh, &github_claims("octo-org/octo-repo", ref_, aud, json!({})));
    let r = cc(&te, &id, &token("refs/heads/main")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["client_id"],
        id.as_str()
    );
    // Another branch is another subject.
    cc(&te, &id, &token("refs/heads/dev"))
        .await
        .assert_error(401, "invalid_client");

    let (action, fields) = policy.form("Remove");
    let removed = b.post(&action, &pairs(&fields)).await;
    assert_eq!(removed.status, 303, "{}", removed.html);
    assert!(follow(&b, &removed).await.has("Issuer removed."));
    cc(&te, &id, &token("refs/heads/main"))
        .await
        .assert_error(401, "invalid_client");
}

fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
