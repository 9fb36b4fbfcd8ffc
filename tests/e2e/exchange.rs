//! RFC 8693 token exchange for agents over HTTP, on both backends: the delegated token and
//! its introspection, every refusal, concurrency, and the cascades that end delegated tokens
//! (Stop on the account page, Revoke, deleting the agent, deactivating the user).

use serde_json::{Value, json};

use crate::flow::*;
use crate::support::*;

const TE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

struct Agents {
    w: World,
    bot: TestClient,
    mail: TestClient,
    note: TestClient,
    fourth: TestClient,
    /// A confidential client of the tenant, not an agent.
    plain: TestClient,
    /// The resource server of the tenant's default audience and of `https://files.example`
    /// (the introspection caller).
    rs: TestClient,
}

fn agent(data: &DataDir, tenant: &str, of: &str, name: &str, scope: &str) -> TestClient {
    TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        name,
        "--grant-type",
        TE,
        "--grant-type",
        "client_credentials",
        "--agent-of",
        of,
        "--scope",
        scope,
    ]))
}

fn setup(data: &DataDir) -> Agents {
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
    data.cli(&[
        "scope",
        "add",
        "--tenant",
        &tenant,
        "api:write",
        "Change your documents",
    ]);
    data.cli(&["resource", "add", "--tenant", &tenant, "https://files.example"]);
    let sub = user(data, &tenant, "alice");
    let app = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Acme Notes",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid api:read api:write agent:act",
        "--redirect-uri",
        CALLBACK,
    ]));
    let bot = agent(data, &tenant, &app.id, "Report Bot", "openid api:read");
    let mail = agent(data, &tenant, &app.id, "Mail Bot", "api:read api:write");
    let note = agent(data, &tenant, &app.id, "Note Bot", "api:read");
    let fourth = agent(data, &tenant, &app.id, "Fourth Bot", "api:read");
    let plain = data.client(&tenant, "api:read", "client_secret_basic");
    let default = format!("urn:bulwark:tenant:{tenant}");
    let rs = data.resource_server(&tenant, &[&default, "https://files.example"]);
    Agents {
        w: World {
            tenant,
            client: app,
            sub,
        },
        bot,
        mail,
        note,
        fourth,
        plain,
        rs,
    }
}

async fn exchange(server: &Server, c: &TestClient, subject: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![
        ("grant_type", TE),
        ("subject_token", subject),
        ("subject_token_type", AT),
    ];
    form.extend_from_slice(extra);
    post_form(&server.url("/oauth2/token"), Some((&c.id, &c.secret)), &form).await
}

async fn user_token(b: &Browser, server: &Server, w: &World, scope: &str) -> String {
    user_token_with(b, server, w, scope, &[]).await
}

async fn user_token_with(
    b: &Browser,
    server: &Server,
    w: &World,
    scope: &str,
    token_extra: &[(&str, &str)],
) -> String {
    let p = pkce();
    let code = get_code(b, server, w, scope, &p).await;
    if !token_extra.is_empty() {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", p.verifier.as_str()),
        ];
        form.extend_from_slice(token_extra);
        let r = post_form(
            &server.url("/oauth2/token"),
            Some((&w.client.id, &w.client.secret)),
            &form,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        return r.body["access_token"].as_str().unwrap().to_string();
    }
    let r = redeem(server, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_agent_exchanges_a_users_token_for_one_that_says_it_acts() {
    let data = DataDir::new();
    let a = setup(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    // The consent page names the app's agents.
    let p = pkce();
    let page = b
        .get(&authorize_url(
            &server,
            &a.w.client.id,
            "openid api:read agent:act",
            &p.challenge,
            &[],
        ))
        .await;
    let page = b.login(&server, &page, "alice", PASSWORD).await;
    assert!(page.has("Report Bot") && page.has("Mail Bot"), "{}", page.html);
    let subject = user_token(&b, &server, &a.w, "openid api:read api:write agent:act").await;
    let s = jwt_part(&subject, 1);

    let r = exchange(&server, &a.bot, &subject, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["issued_token_type"], AT);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(
        r.body["scope"], "api:read openid",
        "the subject's scopes ∩ the agent's, less agent:act"
    );
    assert!(r.body.get("refresh_token").is_none() && r.body.get("id_token").is_none());
    let t = r.body["access_token"].as_str().unwrap().to_string();
    let c = jwt_part(&t, 1);
    assert_eq!(c["sub"], a.w.sub.as_str());
    assert_eq!(c["client_id"], a.bot.id.as_str());
    assert_eq!(c["act"], json!({"sub": a.bot.id}));
    assert_eq!((&c["gid"], &c["tid"]), (&s["gid"], &s["tid"]));
    assert!(c["exp"].as_i64() <= s["exp"].as_i64());
    let i = introspect(&server, &a.rs, &t).await;
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["act"], json!({"sub": a.bot.id}));
    assert_eq!(i["sub"], a.w.sub.as_str());
    assert_eq!(userinfo(&server, &t).await.body["sub"], a.w.sub.as_str());

    // Scopes: narrower is fine, anything else is invalid_scope; a resource the tenant serves.
    let r = exchange(
        &server,
        &a.bot,
        &subject,
        &[("scope", "api:read"), ("resource", "https://files.example")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["aud"],
        "https://files.example"
    );
    for bad in ["api:write", "agent:act", "api:read api:admin"] {
        exchange(&server, &a.bot, &subject, &[("scope", bad)])
            .await
            .assert_error(400, "invalid_scope");
    }
    exchange(&server, &a.bot, &subject, &[("resource", "https://evil.example")])
        .await
        .assert_error(400, "invalid_target");

    // Another agent of the same app takes the delegated token one step further: act nests.
    let r = exchange(&server, &a.mail, &t, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let chained = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(r.body["scope"], "api:read");
    assert_eq!(
        jwt_part(&chained, 1)["act"],
        json!({"sub": a.mail.id, "act": {"sub": a.bot.id}})
    );
    // An agent already in the chain cannot take it again; a third agent can, a fourth hop
    // is one too many.
    exchange(&server, &a.bot, &chained, &[])
        .await
        .assert_error(400, "invalid_request");
    let third = exchange(&server, &a.note, &chained, &[]).await;
    assert_eq!(third.status, 200, "{}", third.body);
    let third = third.body["access_token"].as_str().unwrap().to_string();
    exchange(&server, &a.fourth, &third, &[])
        .await
        .assert_error(400, "invalid_request");

    // The delegated token's audience is the subject token's unless another is asked for.
    let files = user_token_with(
        &b,
        &server,
        &a.w,
        "openid api:read agent:act",
        &[("resource", "https://files.example")],
    )
    .await;
    let r = exchange(&server, &a.bot, &files, &[]).await;
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["aud"],
        "https://files.example"
    );

    // Revoking the subject token (the app may) ends what was exchanged from it, all the way
    // down; the app may also revoke its agent's token directly.
    let s2 = user_token(&b, &server, &a.w, "openid api:read agent:act").await;
    let d1 = exchange(&server, &a.bot, &s2, &[]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let d2 = exchange(&server, &a.mail, &d1, &[]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let d3 = exchange(&server, &a.note, &s2, &[]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(active(&server, &a.rs, &d2).await);
    let revoke = server.url("/oauth2/revoke");
    let app_auth = Some((a.w.client.id.as_str(), a.w.client.secret.as_str()));
    assert_eq!(post_form(&revoke, app_auth, &[("token", &s2)]).await.status, 200);
    assert!(
        !active(&server, &a.rs, &d1).await,
        "revoking the subject ends its delegated token"
    );
    assert!(
        !active(&server, &a.rs, &d2).await,
        "and what was exchanged from that"
    );
    exchange(&server, &a.mail, &d1, &[])
        .await
        .assert_error(400, "invalid_request");
    let s3 = user_token(&b, &server, &a.w, "openid api:read agent:act").await;
    let d4 = exchange(&server, &a.note, &s3, &[]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(post_form(&revoke, app_auth, &[("token", &d4)]).await.status, 200);
    assert!(
        !active(&server, &a.rs, &d4).await,
        "the app revoked its agent's token"
    );
    let _ = d3;

    // 32 exchanges of one subject token at once: all succeed, all distinct.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (url, c, s) = (server.url("/oauth2/token"), a.mail.clone(), subject.clone());
        tasks.push(tokio::spawn(async move {
            post_form(
                &url,
                Some((&c.id, &c.secret)),
                &[
                    ("grant_type", TE),
                    ("subject_token", &s),
                    ("subject_token_type", AT),
                ],
            )
            .await
        }));
    }
    let mut jtis = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        jtis.insert(
            jwt_part(r.body["access_token"].as_str().unwrap(), 1)["jti"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(jtis.len(), 32);

    let kinds: Vec<Value> = data.cli(&["audit", "list", "--tenant", &a.w.tenant])["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "token.exchanged")
        .cloned()
        .collect();
    assert!(kinds.len() >= 36, "{}", kinds.len());
    assert!(
        kinds
            .iter()
            .any(|e| e["actor"] == a.bot.id.as_str() && e["subject"] == a.w.sub.as_str())
    );
}

#[tokio::test]
async fn exchanges_that_must_fail_do() {
    let data = DataDir::new();
    let a = setup(&data);
    let other = setup(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let subject = user_token(&b, &server, &a.w, "openid api:read agent:act").await;
    let without = user_token(&Browser::new(), &server, &a.w, "openid api:read").await;
    let url = server.url("/oauth2/token");
    let bot = Some((a.bot.id.as_str(), a.bot.secret.as_str()));

    for form in [
        vec![("grant_type", TE), ("subject_token_type", AT)],
        vec![("grant_type", TE), ("subject_token", subject.as_str())],
        vec![
            ("grant_type", TE),
            ("subject_token", subject.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
        ],
        vec![
            ("grant_type", TE),
            ("subject_token", subject.as_str()),
            ("subject_token_type", AT),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            ),
        ],
        vec![
            ("grant_type", TE),
            ("subject_token", "garbage"),
            ("subject_token_type", AT),
        ],
        vec![
            ("grant_type", TE),
            ("subject_token", without.as_str()),
            ("subject_token_type", AT),
        ],
        vec![
            ("grant_type", TE),
            ("subject_token", subject.as_str()),
            ("subject_token_type", AT),
            ("actor_token", "garbage"),
            ("actor_token_type", AT),
        ],
        vec![
            ("grant_type", TE),
            ("subject_token", subject.as_str()),
            ("subject_token_type", AT),
            ("actor_token", subject.as_str()),
        ],
    ] {
        post_form(&url, bot, &form)
            .await
            .assert_error(400, "invalid_request");
    }
    // The agent's own client-credentials token is an acceptable actor token; another's is not.
    let own = token(&server, &a.bot, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = exchange(
        &server,
        &a.bot,
        &subject,
        &[("actor_token", &own), ("actor_token_type", AT)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let theirs = token(&server, &a.mail, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    exchange(
        &server,
        &a.bot,
        &subject,
        &[("actor_token", &theirs), ("actor_token_type", AT)],
    )
    .await
    .assert_error(400, "invalid_request");
    // A client-credentials token is about no user.
    exchange(&server, &a.bot, &own, &[])
        .await
        .assert_error(400, "invalid_request");
    // Agents of another app, of another tenant, and a client without the grant.
    let stranger = agent(&data, &a.w.tenant, &a.plain.id, "Elsewhere", "api:read");
    exchange(&server, &stranger, &subject, &[])
        .await
        .assert_error(400, "invalid_request");
    exchange(&server, &other.bot, &subject, &[])
        .await
        .assert_error(400, "invalid_request");
    exchange(&server, &a.plain, &subject, &[])
        .await
        .assert_error(400, "unauthorized_client");
    post_form(
        &url,
        Some((a.bot.id.as_str(), "wrong")),
        &[
            ("grant_type", TE),
            ("subject_token", &subject),
            ("subject_token_type", AT),
        ],
    )
    .await
    .assert_error(401, "invalid_client");
    // A revoked subject token.
    let doomed = user_token(&b, &server, &a.w, "openid api:read agent:act").await;
    let r = post_form(
        &server.url("/oauth2/revoke"),
        Some((&a.w.client.id, &a.w.client.secret)),
        &[("token", &doomed)],
    )
    .await;
    assert_eq!(r.status, 200);
    exchange(&server, &a.bot, &doomed, &[])
        .await
        .assert_error(400, "invalid_request");

    // The CLI: --agent-of must name a non-agent client of the same tenant; DCR sets neither.
    for of in ["nope", other.w.client.id.as_str(), a.bot.id.as_str()] {
        let (ok, _, stderr) = data.cli_raw(
            &[
                "client",
                "create",
                "--tenant",
                &a.w.tenant,
                "--name",
                "X",
                "--grant-type",
                TE,
                "--agent-of",
                of,
            ],
            &[],
        );
        assert!(!ok && stderr.contains("agent-of"), "{of}: {stderr}");
    }
    let (ok, _, stderr) = data.cli_raw(
        &[
            "client",
            "create",
            "--tenant",
            &a.w.tenant,
            "--name",
            "X",
            "--grant-type",
            TE,
            "--auth-method",
            "none",
        ],
        &[],
    );
    assert!(!ok && stderr.contains("public client"), "{stderr}");
    let listed = data.cli(&["client", "list", "--tenant", &a.w.tenant]);
    assert!(
        listed["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == a.bot.id.as_str() && c["agent_of"] == a.w.client.id.as_str())
    );
    let iat = data.cli(&["iat", "create", "--tenant", &a.w.tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for body in [
        json!({"grant_types": ["client_credentials"], "agent_of": a.w.client.id}),
        json!({"grant_types": [TE]}),
    ] {
        let r = http()
            .post(server.url("/oauth2/register"))
            .header("x-bulwark-tenant", &a.w.tenant)
            .bearer_auth(&iat)
            .json(&body)
            .send()
            .await
            .unwrap();
        Resp::from(r).await.assert_error(400, "invalid_client_metadata");
    }
}

#[tokio::test]
async fn stop_revoke_deletion_and_deactivation_end_delegated_tokens() {
    let data = DataDir::new();
    let a = setup(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let scope = "openid api:read agent:act";
    let subject = user_token(&b, &server, &a.w, scope).await;
    let ex = |c: TestClient, s: String| {
        let server = &server;
        async move { exchange(server, &c, &s, &[]).await }
    };
    let bot_t = ex(a.bot.clone(), subject.clone()).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mail_t = ex(a.mail.clone(), subject.clone()).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // The account page lists both agents under the app; Stop the bot.
    let account = server.url(&format!("/account?tenant={}", a.w.tenant));
    let page = b.get(&account).await;
    assert!(
        page.has("Report Bot") && page.has("Mail Bot") && page.has("last acted"),
        "{}",
        page.html
    );
    let stop = server.url(&format!(
        "/account/apps/{}/agents/{}/stop",
        a.w.client.id, a.bot.id
    ));
    let r = b
        .post(&stop, &[("tenant", &a.w.tenant), ("csrf", "forged")])
        .await;
    assert_eq!(r.status, 400);
    assert!(active(&server, &a.rs, &bot_t).await);
    let r = b
        .post(
            &stop,
            &[("tenant", &a.w.tenant), ("csrf", &page.hidden("csrf").unwrap())],
        )
        .await;
    assert_eq!(r.status, 303);
    let page = b.get(r.header("location").unwrap()).await;
    assert!(page.has("Agent stopped") && page.has("stopped"), "{}", page.html);
    assert!(
        !active(&server, &a.rs, &bot_t).await,
        "Stop ends the bot's tokens at once"
    );
    assert!(
        active(&server, &a.rs, &mail_t).await,
        "the other agent keeps working"
    );
    exchange(&server, &a.bot, &subject, &[])
        .await
        .assert_error(400, "invalid_request");
    // Even with a new user token: the consent page asks again first.
    let p = pkce();
    let page = b
        .get(&authorize_url(&server, &a.w.client.id, scope, &p.challenge, &[]))
        .await;
    assert!(
        page.has("name=\"decision\""),
        "agent:act left the remembered consent: {}",
        page.html
    );
    let page = b.consent(&server, &page, "approve").await;
    let code = page.redirect_params()["code"].clone();
    let fresh = redeem(&server, &a.w.client, &code, &p.verifier).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = exchange(&server, &a.bot, &fresh, &[]).await;
    assert_eq!(r.status, 200, "consented again: {}", r.body);
    let bot_again = r.body["access_token"].as_str().unwrap().to_string();
    assert!(
        !active(&server, &a.rs, &bot_t).await,
        "a token from before the Stop stays dead"
    );

    // Deleting the agent ends its tokens; the app's own token lives on.
    data.cli(&["client", "delete", "--tenant", &a.w.tenant, &a.mail.id]);
    assert!(!active(&server, &a.rs, &mail_t).await);
    assert!(active(&server, &a.rs, &fresh).await);

    // Revoke on the account page ends every delegated token of the app.
    let page = b.get(&account).await;
    let revoke = server.url(&format!("/account/apps/{}/revoke", a.w.client.id));
    let r = b
        .post(
            &revoke,
            &[("tenant", &a.w.tenant), ("csrf", &page.hidden("csrf").unwrap())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(!active(&server, &a.rs, &bot_again).await);
    exchange(&server, &a.bot, &fresh, &[])
        .await
        .assert_error(400, "invalid_request");

    // Deactivating the user ends a delegated token from a new authorization.
    let again = user_token(&b, &server, &a.w, scope).await;
    let t = exchange(&server, &a.bot, &again, &[]).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(active(&server, &a.rs, &t).await);
    data.cli(&[
        "user",
        "deactivate",
        "--tenant",
        &a.w.tenant,
        "--username",
        "alice",
    ]);
    assert!(!active(&server, &a.rs, &t).await);
    exchange(&server, &a.bot, &again, &[])
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn agents_act_only_under_a_consent_that_named_them_even_for_first_party_apps() {
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
    let app = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "House App",
        "--first-party",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid api:read agent:act",
        "--redirect-uri",
        CALLBACK,
    ]));
    let bot = agent(&data, &tenant, &app.id, "House Bot", "api:read");
    let w = World {
        tenant: tenant.clone(),
        client: app.clone(),
        sub,
    };
    let server = Server::start(&data);
    let b = Browser::new();

    // First-party: no consent page for ordinary scopes, but agent:act always asks, naming the agents.
    let p = pkce();
    let page = b
        .get(&authorize_url(
            &server,
            &app.id,
            "openid api:read",
            &p.challenge,
            &[],
        ))
        .await;
    let page = b.login(&server, &page, "alice", PASSWORD).await;
    assert_eq!(page.status, 303, "first-party, no agents asked: no consent page");
    let p = pkce();
    let page = b
        .get(&authorize_url(
            &server,
            &app.id,
            "openid api:read agent:act",
            &p.challenge,
            &[],
        ))
        .await;
    assert!(
        page.has("name=\"decision\"") && page.has("House Bot"),
        "{}",
        page.html
    );
    let page = b.consent(&server, &page, "approve").await;
    let code = page.redirect_params()["code"].clone();
    let subject = redeem(&server, &app, &code, &p.verifier).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(exchange(&server, &bot, &subject, &[]).await.status, 200);

    // An agent added later acts for nobody until the user has seen it: every agent of the app
    // waits for the new consent (the consent page comes back, naming both).
    let late = agent(&data, &tenant, &app.id, "Late Bot", "api:read");
    exchange(&server, &late, &subject, &[])
        .await
        .assert_error(400, "invalid_request");
    exchange(&server, &bot, &subject, &[])
        .await
        .assert_error(400, "invalid_request");
    let p = pkce();
    let page = b
        .get(&authorize_url(
            &server,
            &app.id,
            "openid api:read agent:act",
            &p.challenge,
            &[],
        ))
        .await;
    assert!(page.has("House Bot") && page.has("Late Bot"), "{}", page.html);
    b.consent(&server, &page, "approve").await;
    assert_eq!(exchange(&server, &late, &subject, &[]).await.status, 200);
    let _ = w;
}

/// An agent reaches no further than the app: when the user's authorization named resources,
/// the exchanged token is for one of them (the subject's unless another of them is asked) and
/// another resource of the tenant is `invalid_target`.
#[tokio::test]
async fn an_agent_exchanging_a_resource_bound_token_stays_within_its_resources() {
    let data = DataDir::new();
    let a = setup(&data);
    data.cli(&["resource", "add", "--tenant", &a.w.tenant, "https://mail.example"]);
    data.cli(&[
        "resource",
        "add",
        "--tenant",
        &a.w.tenant,
        "https://calendar.example",
    ]);
    let server = Server::start(&data);
    let b = Browser::new();
    let p = pkce();
    let page = b
        .get(&authorize_url(
            &server,
            &a.w.client.id,
            "openid api:read agent:act",
            &p.challenge,
            &[
                ("resource", "https://files.example"),
                ("resource", "https://mail.example"),
            ],
        ))
        .await;
    let consent = b.login(&server, &page, "alice", PASSWORD).await;
    let q = b.consent(&server, &consent, "approve").await.redirect_params();
    let t = redeem(&server, &a.w.client, &q["code"], &p.verifier).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let subject = t.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&subject, 1)["aud"], "https://files.example");

    let r = exchange(&server, &a.bot, &subject, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["aud"],
        "https://files.example"
    );
    let r = exchange(&server, &a.bot, &subject, &[("resource", "https://mail.example")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["aud"],
        "https://mail.example"
    );
    for outside in ["https://calendar.example", "urn:bulwark:tenant:x"] {
        exchange(&server, &a.bot, &subject, &[("resource", outside)])
            .await
            .assert_error(400, "invalid_target");
    }
    // The tenant's default audience is outside the grant too.
    let default = format!("urn:bulwark:tenant:{}", a.w.tenant);
    exchange(&server, &a.bot, &subject, &[("audience", default.as_str())])
        .await
        .assert_error(400, "invalid_target");
}

/// The app holds its user's token bound to its own DPoP key (a leaked copy is useless); it
/// hands it to its agent. Whether the agent must show the app's key is debatable (it never has
/// it: RFC 8693 passes the subject token on), but what the agent gets back must not be weaker
/// than what it gave: a bearer token, usable by whoever copies it from the agent's logs — the
/// very leak DPoP was asked for. Without a proof of the agent's own key the exchange should be
/// refused (or its token bound).
#[tokio::test]
async fn a_dpop_bound_subject_token_is_not_exchanged_for_a_bearer_token() {
    let data = DataDir::new();
    let a = setup(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let key = crate::dpop::DpopKey::new();
    let url = server.url("/oauth2/token");
    let p = pkce();
    let code = get_code(&b, &server, &a.w, "openid api:read agent:act", &p).await;
    let r = Resp::from(
        http()
            .post(&url)
            .basic_auth(&a.w.client.id, Some(&a.w.client.secret))
            .header("DPoP", key.proof("POST", &url, None))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", CALLBACK),
                ("code_verifier", p.verifier.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.body["token_type"], "DPoP", "{}", r.body);
    let subject = r.body["access_token"].as_str().unwrap().to_string();
    // As it stands, the subject token is no bearer token.
    assert_eq!(userinfo(&server, &subject).await.status, 401);

    let r = exchange(&server, &a.bot, &subject, &[]).await;
    let downgraded = r.status == 200 && r.body["token_type"] != "DPoP";
    let usable = match r.body["access_token"].as_str() {
        Some(t) if downgraded => userinfo(&server, t).await.status == 200,
        _ => false,
    };
    assert!(
        !downgraded,
        "a DPoP-bound subject token exchanged without a proof for a bearer token \
         (usable as Bearer at userinfo: {usable}): {}",
        r.body
    );
}
