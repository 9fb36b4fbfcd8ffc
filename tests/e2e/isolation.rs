//! Tenant isolation, as a matrix: every kind of credential tenant A holds (client secret,
//! access tokens, code, refresh token, session cookie, initial access token, registration
//! access token), used against every endpoint of tenant B. Not one attempt may succeed.

use serde_json::{Value, json};

use crate::flow::*;
use crate::support::*;

/// What one tenant holds, all live.
struct Holdings {
    tenant: String,
    w: World,
    cc: TestClient,
    /// The resource server of the audience both tenants share (so that only the tenant tells
    /// their tokens apart at introspection).
    rs: TestClient,
    cc_token: String,
    user_at: String,
    refresh: String,
    /// An unredeemed code and its verifier.
    code: (String, String),
    browser: Browser,
    session_cookie: String,
    iat: String,
    dcr_client_id: String,
    dcr_rat: String,
    dcr_uri: String,
}

/// The audience of both tenants' tokens.
const SHARED_API: &str = "https://api.shared.example";

async fn holdings(data: &DataDir, server: &Server) -> Holdings {
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant, "--audience", SHARED_API]);
    data.cli(&[
        "scope",
        "add",
        "--tenant",
        &tenant,
        "api:read",
        "Read your documents",
    ]);
    let w = World {
        sub: user(data, &tenant, "alice"),
        client: code_client(data, &tenant, "Acme Notes", "client_secret_basic", &[]),
        tenant: tenant.clone(),
    };
    let cc = data.client(&tenant, "api:read", "client_secret_basic");
    let rs = data.resource_server(&tenant, &[SHARED_API]);
    let cc_token = token(server, &cc, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let browser = Browser::new();
    let p = pkce();
    let code = get_code(&browser, server, &w, "openid offline_access api:read", &p).await;
    let r = redeem(server, &w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p2 = pkce();
    let code2 = get_code(&browser, server, &w, "openid offline_access api:read", &p2).await;
    let session_cookie = browser
        .cookie(&format!("bulwark_session_{tenant}"))
        .expect("session cookie");
    let iat = |data: &DataDir| {
        data.cli(&["iat", "create", "--tenant", &tenant, "--max-uses", "0"])["initial_access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let own_iat = iat(data);
    let reg = Resp::from(
        http()
            .post(server.url("/oauth2/register"))
            .header("x-bulwark-tenant", &tenant)
            .bearer_auth(&own_iat)
            .json(&json!({"grant_types": ["client_credentials"], "scope": "api:read"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    Holdings {
        tenant: tenant.clone(),
        cc,
        rs,
        cc_token,
        user_at: r.body["access_token"].as_str().unwrap().to_string(),
        refresh: r.body["refresh_token"].as_str().unwrap().to_string(),
        code: (code2, p2.verifier),
        browser,
        session_cookie,
        iat: own_iat,
        dcr_client_id: reg.body["client_id"].as_str().unwrap().to_string(),
        dcr_rat: reg.body["registration_access_token"]
            .as_str()
            .unwrap()
            .to_string(),
        dcr_uri: reg.body["registration_client_uri"].as_str().unwrap().to_string(),
        w,
    }
}

/// The outcome of the matrix: which attempts succeeded (there must be none).
#[derive(Default)]
struct Matrix {
    tried: Vec<String>,
    succeeded: Vec<String>,
}

impl Matrix {
    fn record(&mut self, what: &str, success: bool) {
        self.tried.push(what.to_string());
        if success {
            self.succeeded.push(what.to_string());
        }
    }
}

async fn register_with(server: &Server, tenant: &str, bearer: &str) -> u16 {
    http()
        .post(server.url("/oauth2/register"))
        .header("x-bulwark-tenant", tenant)
        .bearer_auth(bearer)
        .json(&json!({"grant_types": ["client_credentials"], "scope": "api:read"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn manage_with(uri: &str, bearer: &str, client_id: &str) -> Vec<(&'static str, u16)> {
    let get = http().get(uri).bearer_auth(bearer).send().await.unwrap();
    let put = http()
        .put(uri)
        .bearer_auth(bearer)
        .json(&json!({"client_id": client_id, "grant_types": ["client_credentials"], "scope": "api:read", "client_name": "owned"}))
        .send()
        .await
        .unwrap();
    let del = http().delete(uri).bearer_auth(bearer).send().await.unwrap();
    vec![
        ("GET", get.status().as_u16()),
        ("PUT", put.status().as_u16()),
        ("DELETE", del.status().as_u16()),
    ]
}

#[tokio::test]
async fn no_credential_of_one_tenant_works_against_another() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let a = holdings(&data, &server).await;
    let b = holdings(&data, &server).await;
    let mut m = Matrix::default();
    let (a_id, a_secret) = (a.w.client.id.as_str(), a.w.client.secret.as_str());
    let b_audience = format!("urn:bulwark:tenant:{}", b.tenant);

    // 1. A's client credentials, at B's token, introspection and revocation endpoints.
    for (who, c) in [("code client", &a.w.client), ("cc client", &a.cc)] {
        let basic = Some((c.id.as_str(), c.secret.as_str()));
        let r = post_form(
            &server.url("/oauth2/token"),
            basic,
            &[("grant_type", "client_credentials"), ("resource", &b_audience)],
        )
        .await;
        m.record(&format!("A {who}: token for B's audience"), r.status == 200);
        for (what, t) in [
            ("B user access token", &b.user_at),
            ("B client token", &b.cc_token),
            ("B refresh token", &b.refresh),
        ] {
            let r = post_form(&server.url("/oauth2/introspect"), basic, &[("token", t)]).await;
            m.record(
                &format!("A {who}: introspect {what}"),
                r.status != 200 || r.body["active"] != json!(false),
            );
        }
    }
    let r = redeem(&server, &a.w.client, &b.code.0, &b.code.1).await;
    m.record("A client: redeem B's code", r.status == 200);
    let r = refresh(&server, &a.w.client, &b.refresh, &[]).await;
    m.record("A client: refresh B's refresh token", r.status == 200);
    for t in [&b.user_at, &b.cc_token, &b.refresh] {
        post_form(
            &server.url("/oauth2/revoke"),
            Some((a_id, a_secret)),
            &[("token", t)],
        )
        .await;
    }
    m.record(
        "A client: revoke B's user token",
        !active(&server, &b.rs, &b.user_at).await,
    );
    m.record(
        "A client: revoke B's client token",
        !active(&server, &b.rs, &b.cc_token).await,
    );
    m.record(
        "A client: revoke B's refresh token",
        !active(&server, &b.w.client, &b.refresh).await,
    );

    // 2. A's access tokens (user and client), at B's introspection, registration and
    //    registration management.
    for (what, t) in [("user access token", &a.user_at), ("client token", &a.cc_token)] {
        m.record(
            &format!("A {what}: introspected by B"),
            active(&server, &b.rs, t).await,
        );
        m.record(
            &format!("A {what}: as B's initial access token"),
            register_with(&server, &b.tenant, t).await == 201,
        );
        for (method, status) in manage_with(&b.dcr_uri, t, &b.dcr_client_id).await {
            m.record(&format!("A {what}: {method} B's registration"), status < 300);
        }
    }

    // ... and revoked by B's client.
    for (what, t) in [("user access token", &a.user_at), ("client token", &a.cc_token)] {
        post_form(
            &server.url("/oauth2/revoke"),
            Some((&b.cc.id, &b.cc.secret)),
            &[("token", t)],
        )
        .await;
        m.record(
            &format!("A {what}: revoked by B"),
            !active(&server, &a.rs, t).await,
        );
    }
    // A's client secret where B expects a bearer credential.
    m.record(
        "A client secret: as B's initial access token",
        register_with(&server, &b.tenant, a_secret).await == 201,
    );
    for (method, status) in manage_with(&b.dcr_uri, a_secret, &b.dcr_client_id).await {
        m.record(
            &format!("A client secret: {method} B's registration"),
            status < 300,
        );
    }

    // 3. A's code, redeemed by B's client (with A's verifier: the attacker knows it).
    let r = redeem(&server, &b.w.client, &a.code.0, &a.code.1).await;
    m.record("A code: redeemed by B's client", r.status == 200);

    // 4. A's refresh token, used, introspected and revoked by B's client.
    let r = refresh(&server, &b.w.client, &a.refresh, &[]).await;
    m.record("A refresh token: refreshed by B's client", r.status == 200);
    m.record(
        "A refresh token: introspected by B",
        introspect_as_stranger(&server, &b.w.client, &a.refresh).await["active"] == Value::Bool(true),
    );
    post_form(
        &server.url("/oauth2/revoke"),
        Some((&b.w.client.id, &b.w.client.secret)),
        &[("token", &a.refresh)],
    )
    .await;
    m.record(
        "A refresh token: revoked by B",
        !active(&server, &a.w.client, &a.refresh).await,
    );

    // 5. A's session cookie, replayed under B's cookie name: B's account page, B's
    //    authorization endpoint, B's account actions.
    let thief = Browser::new();
    thief.set_cookie(&format!("bulwark_session_{}", b.tenant), &a.session_cookie);
    let acct = thief
        .get(&server.url(&format!("/account?tenant={}", b.tenant)))
        .await;
    m.record("A session: B's account page", !acct.has("name=\"password\""));
    let p = pkce();
    let page = thief
        .get(&authorize_url(
            &server,
            &b.w.client.id,
            "openid",
            &p.challenge,
            &[],
        ))
        .await;
    m.record(
        "A session: B's authorize skips the login",
        !page.has("name=\"password\""),
    );
    for path in [
        "/account/logout".to_string(),
        format!("/account/apps/{}/revoke", b.w.client.id),
    ] {
        let r = thief
            .post(&server.url(&path), &[("tenant", &b.tenant), ("csrf", "x")])
            .await;
        m.record(&format!("A session: POST {path} for B"), r.status == 303);
    }
    // Also with the cookie under its own name (the session is A's, the page B's).
    let a_browser = a.browser.clone_jar();
    let acct = a_browser
        .get(&server.url(&format!("/account?tenant={}", b.tenant)))
        .await;
    m.record(
        "A session: B's account page (own cookie)",
        !acct.has("name=\"password\""),
    );

    // 6. A's initial access token at B's registration endpoint.
    m.record(
        "A initial access token: registers at B",
        register_with(&server, &b.tenant, &a.iat).await == 201,
    );

    // 7. A's registration access token on B's client.
    for (method, status) in manage_with(&b.dcr_uri, &a.dcr_rat, &b.dcr_client_id).await {
        m.record(
            &format!("A registration token: {method} B's client"),
            status < 300,
        );
    }

    // 8. A's user access token at B's... userinfo is per token; the token names tenant A, so
    //    userinfo must answer about A only (never B's user of the same name).
    let u = userinfo(&server, &a.user_at).await;
    m.record(
        "A user token: userinfo names B's user",
        u.body["sub"] == json!(b.w.sub),
    );

    // B's holdings still work (the matrix did not simply break everything).
    assert!(
        active(&server, &b.cc, &b.cc_token).await,
        "B's client token stands"
    );
    let still = introspect(&server, &b.w.client, &b.refresh).await;
    assert_eq!(
        still["active"],
        Value::Bool(true),
        "B's refresh token stands: {still}"
    );
    assert_eq!(
        userinfo(&server, &b.user_at).await.status,
        200,
        "B's user token stands"
    );

    eprintln!(
        "tenant isolation: {} attempts, {} succeeded",
        m.tried.len(),
        m.succeeded.len()
    );
    assert!(m.tried.len() >= 35, "{} attempts", m.tried.len());
    assert!(
        m.succeeded.is_empty(),
        "cross-tenant successes: {:#?}",
        m.succeeded
    );
}
