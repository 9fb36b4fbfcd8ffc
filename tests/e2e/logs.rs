//! No secret, token or password in any log line.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn no_secret_or_token_handled_in_a_full_flow_appears_in_any_log_line() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    // Debug level, so that even debug lines are checked.
    let server = Server::start_with(&data, &["--demo"], &[]);
    let mut secrets: Vec<String> = vec![c.secret.clone()];
    let demo: serde_json::Value = serde_json::from_str(&server.stdout_lines[1]).unwrap();
    secrets.push(demo["demo"]["client_secret"].as_str().unwrap().to_string());

    // DCR with an IAT.
    let iat = data.cli(&["iat", "create", "--tenant", "acme"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(iat.clone());
    let r = Resp::from(
        http()
            .post(server.url("/oauth2/register"))
            .header("x-bulwark-tenant", "acme")
            .bearer_auth(&iat)
            .json(&json!({"grant_types": ["client_credentials"], "scope": "api:read"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201);
    let dcr = TestClient::from_registration(&r.body);
    let dcr_rat = dcr.registration_token.clone().expect("registration token");
    secrets.push(dcr.secret.clone());
    secrets.push(dcr_rat.clone());
    let uri = r.body["registration_client_uri"].as_str().unwrap().to_string();
    assert_eq!(
        http()
            .get(&uri)
            .bearer_auth(&dcr_rat)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Tokens, with success and failure paths (wrong secret, post method in the body).
    let at = token(&server, &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let at2 = token(&server, &dcr, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(at.clone());
    secrets.push(at2.clone());
    let wrong = format!("{}-wrong", c.secret);
    secrets.push(wrong.clone());
    post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &wrong)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    post_form(
        &server.url("/oauth2/token"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.id),
            ("client_secret", &c.secret),
        ],
    )
    .await;
    // A secret in the query string must not be logged either.
    let _ = http()
        .post(format!(
            "{}?client_secret={}",
            server.url("/oauth2/token"),
            c.secret
        ))
        .send()
        .await;
    introspect(&server, &c, &at).await;
    post_form(
        &server.url("/oauth2/revoke"),
        Some((&c.id, &c.secret)),
        &[("token", &at)],
    )
    .await;
    introspect(&server, &c, &at).await;
    // Wrong registration token, to hit the failure path of RFC 7592.
    let _ = http().get(&uri).bearer_auth(format!("{dcr_rat}x")).send().await;
    // The admin API: an admin token, a client created (its secret), a secret rotated, a user
    // created with a password, and a bad admin token.
    let admin = data.cli(&[
        "client",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ops",
        "--scope",
        "bulwark:admin",
    ]);
    let admin = TestClient::from_registration(&admin);
    secrets.push(admin.secret.clone());
    let admin_at = token(&server, &admin, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(admin_at.clone());
    let created = http()
        .post(server.url("/admin/v1/clients"))
        .bearer_auth(&admin_at)
        .json(&json!({"client_name": "logged?", "grant_types": ["client_credentials"], "scope": "api:read"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    secrets.push(created["client_secret"].as_str().unwrap().to_string());
    let rotated = http()
        .post(server.url(&format!(
            "/admin/v1/clients/{}/secret",
            created["client_id"].as_str().unwrap()
        )))
        .bearer_auth(&admin_at)
        .json(&json!({"grace_seconds": 60}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    secrets.push(rotated["client_secret"].as_str().unwrap().to_string());
    let user_password = "admin-set password 42!";
    secrets.push(user_password.to_string());
    let u = http()
        .post(server.url("/admin/v1/users"))
        .bearer_auth(&admin_at)
        .json(&json!({"username": "logan", "password": user_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(u.status(), 201);
    let _ = http()
        .get(server.url("/admin/v1/clients"))
        .bearer_auth(format!("{admin_at}x"))
        .send()
        .await;
    // The device flow (RFC 8628), at the shared issuer in either mode: its device code, its
    // user code (as shown and as typed), the password typed on the verification page and the
    // tokens the poll got.
    let w = crate::flow::world(&data);
    let cli = crate::device::device_client(&data, &w.tenant, "Device CLI");
    let d = post_form(
        &server.shared_url("/oauth2/device_authorization"),
        None,
        &[("client_id", &cli.id), ("scope", "openid api:read")],
    )
    .await;
    assert_eq!(d.status, 200, "{}", d.body);
    let device_code = d.body["device_code"].as_str().unwrap().to_string();
    let user_code = d.body["user_code"].as_str().unwrap().to_string();
    secrets.extend([device_code.clone(), user_code.clone(), user_code.replace('-', "")]);
    secrets.push(crate::flow::PASSWORD.to_string());
    let b = crate::flow::Browser::new();
    let done = crate::device::approve_in_browser(
        &b,
        d.body["verification_uri_complete"].as_str().unwrap(),
        &user_code,
        "Allow",
    )
    .await;
    assert!(done.has("Device connected"), "{}", done.html);
    let t = post_form(
        &server.shared_url("/oauth2/token"),
        None,
        &[
            ("grant_type", crate::device::DEVICE_GRANT),
            ("device_code", &device_code),
            ("client_id", &cli.id),
        ],
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    secrets.push(
        t.body["access_token"]
            .as_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .to_string(),
    );
    secrets.push(t.body["refresh_token"].as_str().unwrap().to_string());

    // Signature parts of the tokens too (a log that prints a token cut at a dot still leaks it).
    for t in [&at, &at2, &admin_at] {
        secrets.push(t.rsplit('.').next().unwrap().to_string());
    }

    let log_path = server.log.clone();
    drop(server); // the process exits; everything it logged is in the file
    let log = std::fs::read_to_string(&log_path).expect("the server log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.len() >= 10,
        "the log must not be empty: {} lines",
        lines.len()
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("\"route\":\"/oauth2/token\""))
            .count()
            >= 4,
        "the log records the requests"
    );
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        for s in &secrets {
            assert!(!line.contains(s.as_str()), "a secret leaked into the log: {line}");
        }
    }
    // The CLI's own output is not a log: it shows the secret once, by design — on stdout only.
}

/// An audit event is logged only once its change has committed: of eight registrations racing
/// for a single-use initial access token, one lands, and the log shows one `client.created`.
#[tokio::test]
async fn audit_events_are_logged_only_for_changes_that_landed() {
    let data = DataDir::new();
    data.cli(&["tenant", "create", "acme"]);
    let server = Server::start(&data);
    let iat = data.cli(&["iat", "create", "--tenant", "acme", "--max-uses", "1"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, iat) = (server.url("/oauth2/register"), iat.clone());
        tasks.push(tokio::spawn(async move {
            http()
                .post(url)
                .header("x-bulwark-tenant", "acme")
                .bearer_auth(iat)
                .json(&json!({"grant_types": ["client_credentials"]}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut created = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 201 || s == 401, "{s}");
        created += usize::from(s == 201);
    }
    assert_eq!(created, 1, "a single-use token registers one client");
    let log_path = server.log.clone();
    drop(server);
    let log = std::fs::read_to_string(&log_path).expect("the server log");
    let audited = log
        .lines()
        .filter(|l| l.contains("\"target\":\"audit\"") && l.contains("client.created"))
        .count();
    assert_eq!(audited, 1, "one audit line for one change:\n{log}");
    let stored = data.cli(&["audit", "list", "--tenant", "acme"])["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "client.created")
        .count();
    assert_eq!(stored, 1);
}
