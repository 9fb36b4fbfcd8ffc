//! Every tenant is also its own standard issuer, `{base}/t/{tenant}`: discovery where clients
//! probe for it, every OAuth endpoint under it, tokens that carry it as `iss`, registration
//! without a header, and nothing of another tenant served there. Both backends. (The
//! `openidconnect` crate runs a whole flow against it in `rp_library::`.)

use serde_json::{Value, json};

use crate::flow::*;
use crate::support::*;

async fn get_json(url: &str) -> Resp {
    Resp::from(http().get(url).send().await.unwrap()).await
}

#[tokio::test]
async fn a_tenants_own_issuer_is_discovered_where_clients_look_and_serves_only_that_tenant() {
    let data = DataDir::new();
    // Both tenants' tokens are for the same API, whose resource server in acme is `rs_a`: only
    // the tenant (and issuer) tells them apart.
    let api = "https://api.shared.example";
    let a = data.tenant_with_client_for("acme", Some(api));
    let b = data.tenant_with_client_for("globex", Some(api));
    let rs_a = data.resource_server("acme", &[api]);
    let server = Server::start(&data);
    let issuer = format!("{}/t/acme", server.base);

    // Discovery at the three places MCP clients probe, byte-equal issuer, endpoints under it.
    for path in [
        "/.well-known/oauth-authorization-server/t/acme",
        "/.well-known/openid-configuration/t/acme",
        "/t/acme/.well-known/openid-configuration",
        "/t/acme/.well-known/oauth-authorization-server",
    ] {
        let d = get_json(&server.url(path)).await;
        assert_eq!(d.status, 200, "{path}: {}", d.body);
        assert_eq!(d.body["issuer"], issuer.as_str(), "{path}");
        for (k, p) in [
            ("token_endpoint", "/oauth2/token"),
            ("authorization_endpoint", "/oauth2/authorize"),
            ("registration_endpoint", "/oauth2/register"),
            ("introspection_endpoint", "/oauth2/introspect"),
            ("revocation_endpoint", "/oauth2/revoke"),
            ("userinfo_endpoint", "/oauth2/userinfo"),
            ("jwks_uri", "/.well-known/jwks.json"),
        ] {
            assert_eq!(d.body[k], format!("{issuer}{p}"), "{path} {k}");
        }
    }
    // The shared issuer's document is unchanged; an unknown tenant has no issuer.
    let shared = get_json(&server.url("/.well-known/openid-configuration")).await;
    assert_eq!(shared.body["issuer"], server.issuer.as_str());
    for path in [
        "/.well-known/oauth-authorization-server/t/nope",
        "/t/nope/.well-known/openid-configuration",
        "/.well-known/openid-configuration/t/NOT_A_TENANT",
    ] {
        assert_eq!(get_json(&server.url(path)).await.status, 404, "{path}");
    }
    assert_eq!(
        get_json(&server.url("/t/nope/.well-known/jwks.json"))
            .await
            .status,
        404
    );
    // The prefix comes off the raw path: nothing encoded becomes a separator or a query.
    for path in [
        "/t/acme/oauth2%2Ftoken",
        "/t/acme/oauth2/token%3Fa=b",
        "/t/%61cme/oauth2/token",
        "/t/acme//oauth2/token",
        "/t/acme/../admin/v1/openapi.json",
    ] {
        let r = post_form(
            &server.url(path),
            Some((&a.id, &a.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    let jwks = get_json(&server.url("/t/acme/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, 200);
    assert!(!jwks.body["keys"].as_array().unwrap().is_empty());

    // A token minted through the tenant's issuer carries it as `iss`.
    let r = post_form(
        &server.url("/t/acme/oauth2/token"),
        Some((&a.id, &a.secret)),
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&at, 1)["iss"], issuer.as_str());
    // Introspected under either of the tenant's issuers, it is active.
    for url in ["/t/acme/oauth2/introspect", "/oauth2/introspect"] {
        let i = post_form(
            &server.url(url),
            Some((&rs_a.id, &rs_a.secret)),
            &[("token", &at)],
        )
        .await;
        assert_eq!(i.body["active"], true, "{url}: {}", i.body);
    }

    // Another tenant's credentials are unknown under acme's issuer, and acme's tokens are
    // nothing under globex's.
    let wrong = post_form(
        &server.url("/t/acme/oauth2/token"),
        Some((&b.id, &b.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    wrong.assert_error(401, "invalid_client");
    let i = post_form(
        &server.url("/t/globex/oauth2/introspect"),
        Some((&b.id, &b.secret)),
        &[("token", &at)],
    )
    .await;
    assert_eq!(i.body, json!({"active": false}), "{}", i.body);
    let forged_iss = post_form(
        &server.url("/t/globex/oauth2/introspect"),
        Some((&a.id, &a.secret)),
        &[("token", &at)],
    )
    .await;
    forged_iss.assert_error(401, "invalid_client");
    let b_token = post_form(
        &server.url("/oauth2/token"),
        Some((&b.id, &b.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let b_at = b_token.body["access_token"].as_str().unwrap().to_string();
    let i = post_form(
        &server.url("/t/acme/oauth2/introspect"),
        Some((&rs_a.id, &rs_a.secret)),
        &[("token", &b_at)],
    )
    .await;
    assert_eq!(i.body, json!({"active": false}));

    // Registration under the tenant's issuer needs no header; a header naming another tenant
    // is refused.
    let iat = data.cli(&["iat", "create", "--tenant", "acme", "--max-uses", "3"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let md = json!({"client_name": "mcp tool", "grant_types": ["client_credentials"], "scope": "api:read"});
    let reg = Resp::from(
        http()
            .post(server.url("/t/acme/oauth2/register"))
            .bearer_auth(&iat)
            .json(&md)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    assert!(
        reg.body["registration_client_uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{issuer}/oauth2/register/")),
        "{}",
        reg.body
    );
    let other = Resp::from(
        http()
            .post(server.url("/t/acme/oauth2/register"))
            .bearer_auth(&iat)
            .header("x-bulwark-tenant", "globex")
            .json(&md)
            .send()
            .await
            .unwrap(),
    )
    .await;
    other.assert_error(400, "invalid_request");
    // RFC 7592 under the other tenant's issuer: nothing there.
    let rat = reg.body["registration_access_token"].as_str().unwrap();
    let id = reg.body["client_id"].as_str().unwrap();
    let read = Resp::from(
        http()
            .get(server.url(&format!("/t/globex/oauth2/register/{id}")))
            .bearer_auth(rat)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(read.status, 401, "{}", read.body);

    // The admin API and the console are the shared issuer's only.
    assert_eq!(
        get_json(&server.url("/t/acme/admin/v1/openapi.json"))
            .await
            .status,
        404
    );
    let _: Value = jwks.body;
}

/// The browser flow under a tenant's issuer: the login and consent forms post back to it, the
/// redirect's `iss` and the ID token's `iss` are it, and a client of another tenant is not
/// served there (our error page, no redirect).
#[tokio::test]
async fn the_code_flow_runs_under_a_tenants_own_issuer_and_refuses_other_tenants_clients() {
    let data = DataDir::new();
    let w = world(&data);
    let other = world(&data);
    let server = Server::start(&data);
    let issuer = format!("{}/t/{}", server.base, w.tenant);
    let p = pkce();
    let url = authorize_url(&server, &w.client.id, "openid api:read", &p.challenge, &[])
        .replace("/oauth2/authorize", &format!("/t/{}/oauth2/authorize", w.tenant));
    let b = Browser::new();
    let login = b.get(&url).await;
    assert_eq!(login.status, 200, "{}", login.html);
    assert_eq!(login.form_action().unwrap(), format!("{issuer}/oauth2/authorize"));
    let consent = b.login(&server, &login, "alice", PASSWORD).await;
    let done = b.consent(&server, &consent, "approve").await;
    let q = done.redirect_params();
    assert_eq!(q["iss"], issuer.as_str());
    let t = post_form(
        &format!("{issuer}/oauth2/token"),
        Some((&w.client.id, &w.client.secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(
        jwt_part(t.body["id_token"].as_str().unwrap(), 1)["iss"],
        issuer.as_str()
    );
    let at = t.body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 1)["iss"], issuer.as_str());
    let u = Resp::from(
        http()
            .get(format!("{issuer}/oauth2/userinfo"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(u.status, 200, "{}", u.body);
    let u = Resp::from(
        http()
            .get(server.url(&format!("/t/{}/oauth2/userinfo", other.tenant)))
            .bearer_auth(at)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(u.status, 401, "another tenant's issuer does not serve the token");

    // A request continues, and its code is redeemed, only at the issuer it came to (the one
    // whose `iss` the client is told).
    let b2 = Browser::new();
    let url = authorize_url(&server, &w.client.id, "openid api:read", &p.challenge, &[])
        .replace("/oauth2/authorize", &format!("/t/{}/oauth2/authorize", w.tenant));
    let login = b2.get(&url).await;
    let interaction = login.hidden("interaction").unwrap();
    let csrf = login.hidden("csrf").unwrap();
    let elsewhere = b2
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
    assert!(
        elsewhere.location().is_none(),
        "no code from another issuer's form"
    );
    // (alice consented above: the login answers with the code.)
    let q = b2
        .login(&server, &login, "alice", PASSWORD)
        .await
        .redirect_params();
    assert_eq!(q["iss"], issuer.as_str());
    let shared = post_form(
        &server.url("/oauth2/token"),
        Some((&w.client.id, &w.client.secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    shared.assert_error(400, "invalid_grant");

    // Another tenant's client under this tenant's issuer: our page, never a redirect.
    let url = authorize_url(&server, &other.client.id, "openid", &p.challenge, &[])
        .replace("/oauth2/authorize", &format!("/t/{}/oauth2/authorize", w.tenant));
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(page.location().is_none());
}
