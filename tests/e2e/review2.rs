//! What the second black-box review found (issue "Close the second review"), each as an
//! attacker would try it over HTTP against `bulwark serve`: on both backends, and again through
//! a tenant's own issuer (infra/test.sh).

use serde_json::{Value, json};

use crate::admin::{Api, admin_token};
use crate::flow::*;
use crate::keyless::{assertion, key};
use crate::support::*;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const MCP: &str = "https://mcp.acme.example/mcp";

async fn register(server: &Server, tenant: &str, iat: Option<&str>, body: &Value) -> Resp {
    let mut req = http()
        .post(server.url("/oauth2/register"))
        .header("x-bulwark-tenant", tenant)
        .json(body);
    if let Some(t) = iat {
        req = req.bearer_auth(t);
    }
    Resp::from(req.send().await.unwrap()).await
}

/// A tenant as the README's MCP recipe makes it: open registration, a tool scope, the MCP
/// server as a resource; user alice.
fn mcp_tenant(data: &DataDir) -> (String, String) {
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
    data.cli(&[
        "scope",
        "add",
        "--tenant",
        &tenant,
        "mcp:tools",
        "Use Acme's tools",
    ]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    data.cli(&["resource", "add", "--tenant", &tenant, MCP, "Acme Files"]);
    let sub = user(data, &tenant, "alice");
    (tenant, sub)
}

/// Finding 1 (high): an anonymous registration got `client_credentials` and minted tokens for
/// the MCP server with no user. Now an anonymous registration holds only the grants a user
/// consents to here — at registration, through RFC 7592 and the admin API, and at the token
/// endpoint; machine clients need an initial access token.
#[tokio::test]
async fn an_anonymous_registration_cannot_hold_or_use_a_machine_grant() {
    let data = DataDir::new();
    let (tenant, _) = mcp_tenant(&data);
    data.cli(&["tenant", "set-policy", &tenant, "--password-grant", "allow"]);
    let server = Server::start(&data);
    let k = key("anon-1");
    let keyed = |grants: &[&str]| {
        json!({"client_name": "anon", "grant_types": grants, "token_endpoint_auth_method": "private_key_jwt",
               "jwks": {"keys": [k.jwk]}, "scope": "mcp:tools", "redirect_uris": [CALLBACK]})
    };
    let refused = [
        vec!["client_credentials"],
        vec!["authorization_code", "client_credentials"],
        vec!["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        vec!["urn:ietf:params:oauth:grant-type:token-exchange"],
        vec!["password"],
        vec!["authorization_code", "refresh_token", "password"],
    ];
    for grants in &refused {
        let r = register(&server, &tenant, None, &keyed(grants)).await;
        r.assert_error(400, "invalid_client_metadata");
    }
    // The exact request of the finding, then what it did next: no client, no token.
    let r = register(
        &server,
        &tenant,
        None,
        &json!({"grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [k.jwk]}, "scope": "mcp:tools"}),
    )
    .await;
    r.assert_error(400, "invalid_client_metadata");

    // What an anonymous registration may be: a code-flow client, under users' consent.
    let r = register(
        &server,
        &tenant,
        None,
        &keyed(&["authorization_code", "refresh_token"]),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["client_id"].as_str().unwrap().to_string();
    let rat = r.body["registration_access_token"].as_str().unwrap().to_string();
    let uri = r.body["registration_client_uri"].as_str().unwrap().to_string();
    // It cannot gain a machine grant afterwards: not through RFC 7592...
    let mut update = r.body.clone();
    for f in [
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
    ] {
        update.as_object_mut().unwrap().remove(f);
    }
    update["grant_types"] = json!(["authorization_code", "refresh_token", "client_credentials"]);
    let put = Resp::from(
        http()
            .put(&uri)
            .bearer_auth(&rat)
            .json(&update)
            .send()
            .await
            .unwrap(),
    )
    .await;
    put.assert_error(400, "invalid_client_metadata");
    // ...nor through the tenant admin (it would keep the stranger's keys).
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let p = api
        .patch(
            &format!("/admin/v1/clients/{id}"),
            json!({"grant_types": ["authorization_code", "client_credentials"]}),
            None,
        )
        .await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert_eq!(p.body["field"], "grant_types", "{}", p.body);
    // And the token endpoint does not run the grant for it.
    let a = assertion(&k, &id, &server.issuer, None, json!({}));
    let t = post_form(
        &server.url("/oauth2/token"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("resource", MCP),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await;
    t.assert_error(400, "unauthorized_client");

    // A machine client needs an initial access token (or the admin, console or CLI).
    let iat = data.cli(&["iat", "create", "--tenant", &tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = register(&server, &tenant, Some(&iat), &keyed(&["client_credentials"])).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let machine = r.body["client_id"].as_str().unwrap().to_string();
    let a = assertion(&k, &machine, &server.issuer, None, json!({}));
    let t = post_form(
        &server.url("/oauth2/token"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("resource", MCP),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
}

/// Finding 1 (introspection): the anonymous client could introspect other apps' user tokens.
/// Now a token is described to the client it was issued to, to the resource server of its
/// audience, and to nobody else; a refresh token to its own client only.
#[tokio::test]
async fn introspection_describes_a_token_only_to_its_client_and_its_audiences_resource_server() {
    let data = DataDir::new();
    let (tenant, sub) = mcp_tenant(&data);
    let app = code_client(&data, &tenant, "Acme Notes", "client_secret_basic", &[]);
    let w = World {
        tenant: tenant.clone(),
        client: app.clone(),
        sub,
    };
    let default = format!("urn:bulwark:tenant:{tenant}");
    let rs = data.resource_server(&tenant, &[&default]);
    let mcp_rs = data.resource_server(&tenant, &[MCP]);
    let plain = data.client(&tenant, "api:read", "client_secret_basic");
    let server = Server::start(&data);
    let p = pkce();
    let code = get_code(&Browser::new(), &server, &w, "openid offline_access api:read", &p).await;
    let r = redeem(&server, &app, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&at, 1)["aud"], default.as_str());

    // An anonymous private_key_jwt registration, authenticated with its own assertion.
    let k = key("anon-2");
    let reg = register(
        &server,
        &tenant,
        None,
        &json!({"client_name": "anon", "grant_types": ["authorization_code"], "redirect_uris": [CALLBACK],
                "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [k.jwk]}, "scope": "api:read"}),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let anon = reg.body["client_id"].as_str().unwrap().to_string();
    let as_anon = |token: String| {
        let (server, k, anon) = (&server, &k, anon.clone());
        async move {
            let a = assertion(k, &anon, &server.issuer, None, json!({}));
            let r = post_form(
                &server.url("/oauth2/introspect"),
                None,
                &[
                    ("token", &token),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &a),
                ],
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let inactive = json!({"active": false});
    assert_eq!(
        as_anon(at.clone()).await,
        inactive,
        "the anonymous client learns nothing"
    );
    assert_eq!(as_anon(rt.clone()).await, inactive);
    assert_eq!(
        introspect_as_stranger(&server, &plain, &at).await,
        inactive,
        "nor does another app"
    );
    assert_eq!(
        introspect_as_stranger(&server, &mcp_rs, &at).await,
        inactive,
        "nor the resource server of another audience"
    );
    assert_eq!(
        introspect_as_stranger(&server, &rs, &rt).await,
        inactive,
        "a refresh token is its client's"
    );
    // Those who may: the token's resource server, the token's own client (both tokens).
    let seen = introspect(&server, &rs, &at).await;
    assert_eq!(
        (&seen["active"], &seen["sub"]),
        (&json!(true), &json!(w.sub)),
        "{seen}"
    );
    assert_eq!(introspect(&server, &app, &at).await["active"], true);
    assert_eq!(introspect(&server, &app, &rt).await["active"], true);
    // A token for the MCP server, to its resource server.
    let mcp_token = token(&server, &plain, &[("resource", MCP)]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(introspect(&server, &mcp_rs, &mcp_token).await["active"], true);
    assert_eq!(introspect_as_stranger(&server, &rs, &mcp_token).await, inactive);

    // Only a confidential client the operator, the admin or an initial access token let in can
    // be made a resource server: never an anonymous registration.
    let (ok, _, err) = data.cli_raw(
        &[
            "client",
            "set-resource-server",
            "--tenant",
            &tenant,
            &anon,
            "--resource",
            &default,
        ],
        &[],
    );
    assert!(!ok && err.contains("resource server"), "{err}");
    let (ok, _, err) = data.cli_raw(
        &[
            "client",
            "set-resource-server",
            "--tenant",
            &tenant,
            &plain.id,
            "--resource",
            "https://elsewhere.example",
        ],
        &[],
    );
    assert!(!ok && err.contains("not one of the tenant's resources"), "{err}");
    // Anonymous registration cannot claim it either.
    let r = register(
        &server,
        &tenant,
        None,
        &json!({"grant_types": ["authorization_code"], "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none",
                "resource_server_for": [default]}),
    )
    .await;
    r.assert_error(400, "invalid_client_metadata");
}

/// A client holding another client's code (and its verifier) could make it be used up: the
/// code was taken before its client was compared. Now a redemption that would not be allowed
/// leaves the code for its own client.
#[tokio::test]
async fn a_code_presented_by_another_client_is_not_used_up() {
    let data = DataDir::new();
    let (tenant, sub) = mcp_tenant(&data);
    let app = code_client(&data, &tenant, "Acme Notes", "none", &[]);
    let w = World {
        tenant: tenant.clone(),
        client: app.clone(),
        sub,
    };
    let server = Server::start(&data);
    // The attacker registers itself (no initial access token), with the same redirect URI.
    let reg = register(
        &server,
        &tenant,
        None,
        &json!({"client_name": "Acme Notes", "grant_types": ["authorization_code"], "redirect_uris": [CALLBACK],
                "token_endpoint_auth_method": "none", "scope": "api:read"}),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let attacker = TestClient {
        id: reg.body["client_id"].as_str().unwrap().to_string(),
        ..TestClient::default()
    };
    let p = pkce();
    let code = get_code(&Browser::new(), &server, &w, "openid api:read", &p).await;
    for _ in 0..3 {
        redeem(&server, &attacker, &code, &p.verifier)
            .await
            .assert_error(400, "invalid_grant");
    }
    let r = redeem(&server, &app, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "the app's own redemption works: {}", r.body);
    redeem(&server, &app, &code, &p.verifier)
        .await
        .assert_error(400, "invalid_grant");
}

/// Finding 5: a narrowed refresh re-presented within the reuse grace returned the earlier,
/// wider pair. Now a re-presentation gets the pair only for the same scope and resource as the
/// refresh that rotated the token; anything else is refused (and the family stands).
#[tokio::test]
async fn within_the_refresh_grace_only_the_same_request_gets_the_same_pair() {
    let data = DataDir::new();
    let (tenant, sub) = mcp_tenant(&data);
    let app = code_client(&data, &tenant, "Acme Notes", "client_secret_basic", &[]);
    let w = World {
        tenant: tenant.clone(),
        client: app.clone(),
        sub,
    };
    let server = Server::start(&data);
    let p = pkce();
    let code = get_code(&Browser::new(), &server, &w, "openid offline_access api:read", &p).await;
    let r = redeem(&server, &app, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();

    // The rotation asks for less: api:read only.
    let narrowed = refresh(&server, &app, &rt, &[("scope", "api:read")]).await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    assert_eq!(narrowed.body["scope"], "api:read");
    // Presented again at once, asking for the whole family's scope (or naming none, which
    // means the same): refused, not the wider pair nor the narrowed one.
    for extra in [
        vec![],
        vec![("scope", "openid offline_access api:read")],
        vec![("scope", "api:read"), ("resource", MCP)],
    ] {
        let again = refresh(&server, &app, &rt, &extra).await;
        again.assert_error(400, "invalid_grant");
        assert!(again.body.get("access_token").is_none(), "{}", again.body);
    }
    // The same request again: the same pair (a retry after a lost answer).
    let same = refresh(&server, &app, &rt, &[("scope", "api:read")]).await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.body["scope"], narrowed.body["scope"]);
    assert_eq!(same.body["refresh_token"], narrowed.body["refresh_token"]);
    // The family was not ended by the refusals: the new token rotates.
    let next = narrowed.body["refresh_token"].as_str().unwrap();
    let r = refresh(&server, &app, next, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The finding's order: a refresh for the whole scope, then the same token within the
    // grace asking for less, which got the earlier, wider pair.
    let p = pkce();
    let code = get_code(&Browser::new(), &server, &w, "openid offline_access api:read", &p).await;
    let rt = redeem(&server, &app, &code, &p.verifier).await.body["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let wide = refresh(&server, &app, &rt, &[]).await;
    assert_eq!(wide.status, 200, "{}", wide.body);
    assert_eq!(wide.body["scope"], "api:read offline_access openid");
    let r = refresh(&server, &app, &rt, &[("scope", "api:read")]).await;
    r.assert_error(400, "invalid_grant");
    assert!(r.body.get("access_token").is_none(), "{}", r.body);
}

/// Finding 6: a `jwks_uri` on a private, link-local, CGNAT, unspecified or unique-local
/// address was accepted at registration and refused only at fetch time. Now every channel
/// refuses it with the fetcher's own rule.
#[tokio::test]
async fn a_jwks_uri_the_fetcher_would_refuse_is_refused_at_registration() {
    let data = DataDir::new();
    let (tenant, _) = mcp_tenant(&data);
    let server = Server::start(&data);
    let iat = data.cli(&["iat", "create", "--tenant", &tenant, "--max-uses", "0"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let md = |uri: &str| {
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
               "jwks_uri": uri, "scope": "api:read"})
    };
    for uri in [
        "https://169.254.169.254/latest/meta-data/iam",
        "https://10.0.0.7/jwks",
        "https://172.31.0.2/jwks",
        "https://100.100.100.200/jwks",
        "https://0.0.0.0/jwks",
        "https://[::]/jwks",
        "https://[fd00:ec2::254]/jwks",
        "https://metadata.google.internal/jwks",
    ] {
        register(&server, &tenant, Some(&iat), &md(uri))
            .await
            .assert_error(400, "invalid_client_metadata");
        let r = api.post("/admin/v1/clients", md(uri)).await;
        assert_eq!(
            (r.status, &r.body["field"]),
            (400, &json!("jwks_uri")),
            "{uri}: {}",
            r.body
        );
        let (ok, _, err) = data.cli_raw(
            &[
                "client",
                "create",
                "--tenant",
                &tenant,
                "--name",
                "x",
                "--auth-method",
                "private_key_jwt",
                "--jwks-uri",
                uri,
            ],
            &[],
        );
        assert!(!ok && err.contains("public hosts"), "{uri}: {err}");
        let (ok, _, err) = data.cli_raw(
            &[
                "issuer",
                "add",
                "--tenant",
                &tenant,
                "--issuer",
                "https://idp.example",
                "--jwks-uri",
                uri,
            ],
            &[],
        );
        assert!(!ok && err.contains("public hosts"), "{uri}: {err}");
    }
    // A public host is accepted (its DNS answers are checked at each fetch).
    let r = register(&server, &tenant, Some(&iat), &md("https://keys.example.com/jwks")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // And RFC 7592 cannot move it to a private address afterwards.
    let mut update = r.body.clone();
    let uri = update["registration_client_uri"].as_str().unwrap().to_string();
    let rat = update["registration_access_token"].as_str().unwrap().to_string();
    for f in [
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
    ] {
        update.as_object_mut().unwrap().remove(f);
    }
    update["jwks_uri"] = json!("https://169.254.169.254/jwks");
    let put = Resp::from(
        http()
            .put(&uri)
            .bearer_auth(&rat)
            .json(&update)
            .send()
            .await
            .unwrap(),
    )
    .await;
    put.assert_error(400, "invalid_client_metadata");
}

/// RFC 9207 on every redirect the authorization endpoint makes, errors included (the MCP
/// specification says SHOULD and expects MUST): each carries `iss` — this issuer, the tenant's
/// own under `/t/{tenant}` — and the request's `state`.
#[tokio::test]
async fn every_redirect_of_the_authorization_endpoint_carries_iss() {
    let data = DataDir::new();
    let (tenant, _) = mcp_tenant(&data);
    let app = code_client(&data, &tenant, "Acme Notes", "client_secret_basic", &[]);
    let server = Server::start(&data);
    let p = pkce();
    let check = |page: &Page, error: Option<&str>, what: &str| {
        assert_eq!(page.status, 303, "{what}: {}", page.html);
        assert!(page.header("location").unwrap().starts_with(CALLBACK), "{what}");
        let q = page.redirect_params();
        assert_eq!(
            q.get("iss").map(String::as_str),
            Some(server.issuer.as_str()),
            "{what}: {q:?}"
        );
        assert_eq!(q.get("state").map(String::as_str), Some("st-123"), "{what}");
        assert_eq!(q.get("error").map(String::as_str), error, "{what}: {q:?}");
        if error.is_none() {
            assert!(q.contains_key("code"), "{what}");
        }
    };
    let url =
        |extra: &[(&str, &str)]| authorize_url(&server, &app.id, "openid api:read", &p.challenge, extra);
    let b = Browser::new();
    // Refused while the request is validated.
    check(
        &b.get(&authorize_url(&server, &app.id, "nope", &p.challenge, &[]))
            .await,
        Some("invalid_scope"),
        "scope",
    );
    check(
        &b.get(&url(&[("resource", "https://elsewhere.example")])).await,
        Some("invalid_target"),
        "resource",
    );
    check(
        &b.get(&url(&[("prompt", "bogus")])).await,
        Some("invalid_request"),
        "prompt",
    );
    // No session, and the client said not to ask.
    check(
        &b.get(&url(&[("prompt", "none")])).await,
        Some("login_required"),
        "login_required",
    );
    // Signed in, but no consent yet, and the client said not to ask.
    let page = b.get(&url(&[])).await;
    let page = b.login(&server, &page, "alice", PASSWORD).await;
    assert!(page.has("name=\"decision\""), "the consent page: {}", page.html);
    check(
        &b.get(&url(&[("prompt", "none")])).await,
        Some("consent_required"),
        "consent_required",
    );
    // The user says no.
    let page = b.get(&url(&[])).await;
    check(
        &b.consent(&server, &page, "deny").await,
        Some("access_denied"),
        "access_denied",
    );
    // The user says yes.
    let page = b.get(&url(&[])).await;
    check(&b.consent(&server, &page, "approve").await, None, "the code");
}

/// Finding 3: one failed login with a username built of bidi controls, zero-width characters
/// and markup was stored verbatim as the actor and subject of `login.failed`, and shown so to
/// administrators. Usernames now follow the display-name rules (NFC, no format characters) at
/// creation on every channel, an invalid name tried at login is recorded only as a digest, and
/// whatever reaches an event is rendered safe.
#[tokio::test]
async fn a_stranger_cannot_write_misleading_text_into_the_audit_trail() {
    const SPOOF: &str = "root\u{202e}gnp.exe\u{2066}\u{200b}<b>x</b>\"}{\"kind\":\"user.admin_granted";
    let data = DataDir::new();
    let (tenant, _) = mcp_tenant(&data);
    let app = code_client(&data, &tenant, "Acme Notes", "client_secret_basic", &[]);
    let server = Server::start(&data);
    let p = pkce();
    let b = Browser::new();
    let page = b
        .get(&authorize_url(&server, &app.id, "openid", &p.challenge, &[]))
        .await;
    let page = b.login(&server, &page, SPOOF, "whatever-password").await;
    assert!(page.has("incorrect"), "{}", page.html);

    let events = data.cli(&["audit", "list", "--tenant", &tenant, "--kind", "login.failed"]);
    let e = &events["events"][0];
    for field in ["actor", "subject"] {
        let v = e[field].as_str().unwrap();
        assert!(
            v.starts_with("(invalid username, sha256 ") && v.is_ascii(),
            "{field}: {v:?}"
        );
        assert!(!v.contains("admin_granted"), "{field}: {v:?}");
    }
    // Nothing in the trail holds the invisible characters.
    let all = data.cli(&["audit", "list", "--tenant", &tenant]).to_string();
    for c in ['\u{202e}', '\u{2066}', '\u{200b}'] {
        assert!(!all.contains(c), "{c:?} in the trail: {all}");
    }

    // Such a username cannot be created: not by the CLI, not by the admin API.
    let (ok, _, err) = data.cli_raw(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--username",
            SPOOF,
            "--password-stdin",
        ],
        &[],
    );
    assert!(!ok && err.contains("invisible"), "{err}");
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    for name in [SPOOF, "ad\u{200b}min", "\u{feff}root", "bob\u{2060}"] {
        let r = api
            .post(
                "/admin/v1/users",
                json!({"username": name, "password": "correct horse battery staple"}),
            )
            .await;
        assert_eq!(
            (r.status, &r.body["field"]),
            (400, &json!("username")),
            "{name:?}: {}",
            r.body
        );
    }
    // One form per name: a decomposed é signs in as the composed one.
    let r = api
        .post(
            "/admin/v1/users",
            json!({"username": "Jos\u{e9}", "password": "correct horse battery staple"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["username"], "jos\u{e9}");
    let page = b
        .get(&authorize_url(&server, &app.id, "openid", &p.challenge, &[]))
        .await;
    let page = b
        .login(&server, &page, "JOSE\u{301}", "correct horse battery staple")
        .await;
    assert!(!page.has("incorrect"), "{}", page.html);
}

/// Finding 4: `bulwark resource add` wrote no audit event (the admin API's did), and ten
/// changes recorded their event in a transaction of its own. Every change through every
/// channel is now audited in its own transaction (debug builds refuse a change to a tenant,
/// client, user or group without one).
#[tokio::test]
async fn every_channel_audits_its_tenant_changes() {
    let data = DataDir::new();
    let (tenant, _) = mcp_tenant(&data);
    let f = data.path().join("idp.json");
    std::fs::write(&f, json!({"keys": [key("idp-1").jwk]}).to_string()).unwrap();
    for args in [
        vec![
            "resource",
            "add",
            "--tenant",
            &tenant,
            "https://api2.acme.example",
            "API 2",
        ],
        vec!["scope", "set-restricted", "--tenant", &tenant, "api:read", "true"],
        vec!["tenant", "set-lifetimes", &tenant, "--access-token-ttl", "600"],
        vec!["tenant", "set-policy", &tenant, "--password-grant", "allow"],
        vec![
            "issuer",
            "add",
            "--tenant",
            &tenant,
            "--issuer",
            "https://idp.example",
            "--jwks-file",
            f.to_str().unwrap(),
        ],
        vec![
            "issuer",
            "remove",
            "--tenant",
            &tenant,
            "--issuer",
            "https://idp.example",
        ],
    ] {
        data.cli(&args);
    }
    let events = data.cli(&["audit", "list", "--tenant", &tenant]);
    let got: Vec<(String, String, String)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("kind"), s("actor"), s("subject"))
        })
        .collect();
    for (kind, subject) in [
        ("resource.added", MCP),
        ("resource.added", "https://api2.acme.example"),
        ("scope.added", "mcp:tools"),
        ("scope.restricted", "api:read"),
        ("tenant.lifetimes_set", tenant.as_str()),
        ("policy.password_grant_allowed", tenant.as_str()),
        ("issuer.trusted", "https://idp.example"),
        ("issuer.removed", "https://idp.example"),
    ] {
        assert!(
            got.iter()
                .any(|(k, a, s)| k == kind && a == "cli" && s == subject),
            "no {kind} of {subject} by cli in {got:?}"
        );
    }
}

/// Second-pass findings on the fixes themselves (the attacker review of this changes):
/// display rules for users' names and e-mails at creation too; bounded trusted issuers; key URLs
/// on loopback refused where the server's own fetcher would never go; a locked username
/// recorded once per lockout, not once per try; the admin API's merge patches labelled as such.
#[tokio::test]
async fn what_the_second_pass_found_holds() {
    let data = DataDir::new();
    let (tenant, _) = mcp_tenant(&data);
    let app = code_client(&data, &tenant, "Acme Notes", "client_secret_basic", &[]);
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    // A user's name and e-mail follow the display rules when the user is created, as when
    // changed.
    for (field, body) in [
        (
            "name",
            json!({"username": "bob", "password": "correct horse battery staple", "name": "Bob\u{202e}"}),
        ),
        (
            "email",
            json!({"username": "bob", "password": "correct horse battery staple", "email": "b\u{200b}ob@example.com"}),
        ),
    ] {
        let r = api.post("/admin/v1/users", body).await;
        assert_eq!((r.status, &r.body["field"]), (400, &json!(field)), "{}", r.body);
    }
    // Trusted issuers stay small: a bounded identifier, bounded inline keys.
    let k = key("idp-big");
    let long = format!("https://idp.example/{}", "a".repeat(600));
    let r = api
        .post(
            "/admin/v1/issuers",
            json!({"issuer": long, "jwks": {"keys": [k.jwk]}}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["field"]),
        (400, &json!("issuer")),
        "{}",
        r.body
    );
    let many: Vec<Value> = (0..40).map(|i| json!({"kty": "EC", "crv": "P-256", "x": k.jwk["x"], "y": k.jwk["y"], "kid": format!("k{i}-{}", "x".repeat(100))})).collect();
    let r = api
        .post(
            "/admin/v1/issuers",
            json!({"issuer": "https://idp.example", "jwks": {"keys": many}}),
        )
        .await;
    assert_eq!((r.status, &r.body["field"]), (400, &json!("jwks")), "{}", r.body);
    // The admin API takes its PATCH bodies labelled as merge patches.
    let r = api
        .call(
            reqwest::Method::PATCH,
            &format!("/admin/v1/clients/{}", app.id),
            Some(json!({"client_name": "Acme Notes 2"})),
            &[("content-type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A locked username: one login.locked event for the lockout, however many tries.
    let p = pkce();
    for _ in 0..12 {
        let b = Browser::new();
        let page = b
            .get(&authorize_url(&server, &app.id, "openid", &p.challenge, &[]))
            .await;
        b.login(&server, &page, "alice", "wrong password!").await;
    }
    let events = data.cli(&["audit", "list", "--tenant", &tenant, "--kind", "login"]);
    let count = |kind: &str| {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .count()
    };
    assert_eq!(count("login.failed"), 5, "{events}");
    assert_eq!(count("login.locked"), 1, "{events}");
}

/// Key URLs on loopback are accepted only by a server whose own fetcher would reach them (a
/// loopback-http development issuer); a deployed issuer refuses them at registration.
#[tokio::test]
async fn loopback_key_urls_are_refused_where_the_issuer_is_not_loopback() {
    let data = DataDir::new();
    let (tenant, _) = mcp_tenant(&data);
    let server = Server::start_with(&data, &["--issuer", "https://auth.example.test"], &[]);
    let iat = data.cli(&["iat", "create", "--tenant", &tenant, "--max-uses", "0"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for uri in [
        "https://127.0.0.1/jwks",
        "https://[::1]/jwks",
        "https://localhost/jwks",
        "http://127.0.0.1:9/jwks",
    ] {
        let md = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                        "jwks_uri": uri, "scope": "api:read"});
        let r = Resp::from(
            http()
                .post(format!("{}/oauth2/register", server.base))
                .header("x-bulwark-tenant", &tenant)
                .bearer_auth(&iat)
                .json(&md)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_error(400, "invalid_client_metadata");
    }
}

/// RFC 6749 §4.1.2 revokes what a code issued when the code is used twice; whoever merely saw a
/// used code (without its PKCE verifier) can no longer end the user's grant with it.
#[tokio::test]
async fn a_replayed_code_ends_the_grant_only_with_its_verifier() {
    let data = DataDir::new();
    let (tenant, sub) = mcp_tenant(&data);
    let app = code_client(&data, &tenant, "Acme Notes", "none", &[]);
    let w = World {
        tenant: tenant.clone(),
        client: app.clone(),
        sub,
    };
    let server = Server::start(&data);
    let p = pkce();
    let code = get_code(&Browser::new(), &server, &w, "openid offline_access api:read", &p).await;
    let r = redeem(&server, &app, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // Seen, not held: the replay fails and the grant stands.
    for verifier in [pkce().verifier, String::new()] {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", app.id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ];
        if !verifier.is_empty() {
            form.push(("code_verifier", verifier.as_str()));
        }
        post_form(&server.url("/oauth2/token"), None, &form)
            .await
            .assert_error(400, "invalid_grant");
    }
    let r = refresh(&server, &app, &rt, &[]).await;
    assert_eq!(r.status, 200, "the grant stands: {}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // Replayed with its verifier: what it issued ends.
    redeem(&server, &app, &code, &p.verifier)
        .await
        .assert_error(400, "invalid_grant");
    refresh(&server, &app, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
}

/// The second pass's findings: a request in flight while an admin resets a password and signs
/// the user out everywhere (a password grant checked against the old password, a code
/// redemption retrying after the user changed) wrote its grant after the cascade had listed the
/// user's grants, and kept it. A grant now carries the user's grant epoch as they were
/// authenticated for it, and stands only while it is the user's: whatever the interleaving,
/// nothing obtained with the old credentials outlives the reset.
#[tokio::test]
async fn nothing_obtained_around_a_sign_out_everywhere_survives_it() {
    let data = DataDir::new();
    let (tenant, sub) = mcp_tenant(&data);
    data.cli(&["tenant", "set-policy", &tenant, "--password-grant", "allow"]);
    let legacy = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Legacy",
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid api:read",
    ]));
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let token_url = server.url("/oauth2/token");
    let grant = move |url: String, c: TestClient, password: &'static str| async move {
        post_form(
            &url,
            Some((&c.id, &c.secret)),
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", password),
                ("scope", "openid api:read"),
            ],
        )
        .await
    };
    // Password grants with the old password keep coming while the reset lands.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (url, c) = (token_url.clone(), legacy.clone());
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            // Until the old password stops working (one failure per task at most: four,
            // under the lockout's five).
            for _ in 0..8 {
                let r = grant(url.clone(), c.clone(), PASSWORD).await;
                if r.status != 200 {
                    break;
                }
                got.push(r.body);
            }
            got
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let r = api
        .patch(
            &format!("/admin/v1/users/{sub}"),
            json!({"password": "a brand new long password", "sign_out_everywhere": true}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut obtained = Vec::new();
    for t in tasks {
        obtained.extend(t.await.unwrap());
    }
    assert!(!obtained.is_empty(), "some grants were issued before the reset");
    for body in &obtained {
        let at = body["access_token"].as_str().unwrap();
        assert_eq!(introspect(&server, &legacy, at).await["active"], false, "{body}");
        let rt = body["refresh_token"].as_str().unwrap();
        refresh(&server, &legacy, rt, &[])
            .await
            .assert_error(400, "invalid_grant");
    }
    // The new password works, and what it gets is live.
    let r = grant(token_url.clone(), legacy.clone(), "a brand new long password").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        introspect(&server, &legacy, r.body["access_token"].as_str().unwrap()).await["active"],
        true
    );
}
