//! The deprecated password grant (RFC 6749 §4.3): refused unless the tenant opts in, never
//! advertised; when allowed, checked like the login page (same throttle, same audit) and
//! ended by the same cascades as any grant.

use serde_json::json;

use crate::flow::*;
use crate::support::*;

fn kinds(data: &DataDir, tenant: &str) -> Vec<String> {
    data.cli(&["audit", "list", "--tenant", tenant])["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn password_client(data: &DataDir, tenant: &str) -> (bool, serde_json::Value, String) {
    data.cli_raw(
        &[
            "client",
            "create",
            "--tenant",
            tenant,
            "--name",
            "Legacy App",
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid api:read agent:act",
        ],
        &[],
    )
}

async fn password_grant(server: &Server, c: &TestClient, username: &str, password: &str) -> Resp {
    post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", "openid api:read"),
        ],
    )
    .await
}

#[tokio::test]
async fn the_password_grant_is_refused_unless_the_tenant_opts_in_and_never_advertised() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    user(&data, &tenant, "alice");
    let server = Server::start(&data);

    // Denied by default: no registration (CLI or DCR), no token.
    let (ok, _, stderr) = password_client(&data, &tenant);
    assert!(
        !ok && stderr.contains("not allowed by this tenant's policy"),
        "{stderr}"
    );
    let dcr = http()
        .post(server.url("/oauth2/register"))
        .header("x-bulwark-tenant", &tenant)
        .json(&json!({"grant_types": ["password"], "scope": "api:read"}))
        .send()
        .await
        .unwrap();
    Resp::from(dcr).await.assert_error(400, "invalid_client_metadata");
    let cc = data.client(&tenant, "api:read", "client_secret_basic");
    let rs = data.resource_server(&tenant, &[]);
    password_grant(&server, &cc, "alice", PASSWORD)
        .await
        .assert_error(400, "unauthorized_client");

    // Allowed: a client registers it (never a public one), and it works.
    let t = data.cli(&["tenant", "set-policy", &tenant, "--password-grant", "allow"]);
    assert_eq!(t["password_grant"], "allow");
    let (ok, _, stderr) = data.cli_raw(
        &[
            "client",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "Public",
            "--grant-type",
            "password",
            "--auth-method",
            "none",
        ],
        &[],
    );
    assert!(!ok && stderr.contains("public client"), "{stderr}");
    let (ok, reg, stderr) = password_client(&data, &tenant);
    assert!(ok, "{stderr}");
    let legacy = TestClient::from_registration(&reg);
    // A client not registered for it still cannot use it.
    password_grant(&server, &cc, "alice", PASSWORD)
        .await
        .assert_error(400, "unauthorized_client");
    let r = password_grant(&server, &legacy, "alice", PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let at = r.body["access_token"].as_str().unwrap().to_string();
    assert!(
        r.body["refresh_token"].is_string() && r.body["id_token"].is_string(),
        "{}",
        r.body
    );
    assert_eq!(r.body["scope"], "api:read openid");
    assert_eq!(jwt_part(&at, 1)["client_id"], legacy.id.as_str());
    assert!(active(&server, &rs, &at).await);
    assert_eq!(userinfo(&server, &at).await.body["sub"], jwt_part(&at, 1)["sub"]);
    // agent:act is never granted without the consent page.
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&legacy.id, &legacy.secret)),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", "api:read agent:act"),
        ],
    )
    .await;
    r.assert_error(400, "invalid_scope");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("consent page"),
        "{}",
        r.body
    );
    // Wrong passwords and unknown users: the same invalid_grant.
    password_grant(&server, &legacy, "alice", "wrong password")
        .await
        .assert_error(400, "invalid_grant");
    password_grant(&server, &legacy, "nobody", PASSWORD)
        .await
        .assert_error(400, "invalid_grant");
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&legacy.id, &legacy.secret)),
        &[("grant_type", "password"), ("username", "alice")],
    )
    .await;
    r.assert_error(400, "invalid_request");
    // Never in discovery, even while allowed.
    let d = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(
        !d["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("password")),
        "{d}"
    );
    let k = kinds(&data, &tenant);
    for want in [
        "login.failed",
        "login.succeeded",
        "grant.created",
        "policy.password_grant_allowed",
    ] {
        assert!(k.iter().any(|x| x == want), "{want} missing from {k:?}");
    }

    // Deactivating the user ends what the grant issued; denying the grant again stops it for
    // the client that registered it.
    data.cli(&["user", "deactivate", "--tenant", &tenant, "--username", "alice"]);
    assert!(!active(&server, &rs, &at).await);
    let u2 = "bob".to_string();
    user(&data, &tenant, &u2);
    assert_eq!(password_grant(&server, &legacy, &u2, PASSWORD).await.status, 200);
    data.cli(&["tenant", "set-policy", &tenant, "--password-grant", "deny"]);
    after_tenant_change().await;
    password_grant(&server, &legacy, &u2, PASSWORD)
        .await
        .assert_error(400, "unauthorized_client");
}

#[tokio::test]
async fn the_password_grant_shares_the_login_throttle() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    data.cli(&["tenant", "set-policy", &tenant, "--password-grant", "allow"]);
    user(&data, &tenant, "alice");
    let (ok, reg, stderr) = password_client(&data, &tenant);
    assert!(ok, "{stderr}");
    let legacy = TestClient::from_registration(&reg);
    let server = Server::start(&data);
    // 20 wrong passwords at once: the first five are checked, then the username is locked, and
    // even the right password is refused until the window ends.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (url, c) = (server.url("/oauth2/token"), legacy.clone());
        tasks.push(tokio::spawn(async move {
            post_form(
                &url,
                Some((&c.id, &c.secret)),
                &[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", "wrong password"),
                ],
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().assert_error(400, "invalid_grant");
    }
    let r = password_grant(&server, &legacy, "alice", PASSWORD).await;
    r.assert_error(400, "invalid_grant");
    assert!(
        r.body["error_description"].as_str().unwrap().contains("too many"),
        "{}",
        r.body
    );
    let k = kinds(&data, &tenant);
    assert_eq!(k.iter().filter(|x| *x == "login.failed").count(), 5, "{k:?}");
    assert!(k.iter().any(|x| x == "login.locked"), "{k:?}");
}
