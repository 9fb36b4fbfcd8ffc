//! The `bulwark` CLI and `serve --demo`.

use crate::support::*;

#[tokio::test]
async fn serve_demo_prints_a_curl_line_that_gets_a_token() {
    let data = DataDir::new();
    let server = Server::start_with(&data, &["--demo"], &[]);
    let demo: serde_json::Value = serde_json::from_str(&server.stdout_lines[1]).unwrap();
    let d = &demo["demo"];
    assert_eq!(d["tenant"], "demo");
    let curl = d["curl"].as_str().unwrap();
    let id = d["client_id"].as_str().unwrap();
    let secret = d["client_secret"].as_str().unwrap();
    assert!(curl.starts_with("curl "));
    assert!(curl.contains(&format!("-u '{id}:{secret}'")));
    assert!(curl.contains("grant_type=client_credentials"));
    assert!(curl.contains(&server.url("/oauth2/token")));
    // What the curl line does, with reqwest.
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["access_token"].is_string());
    drop(server);
    // A second --demo run replaces the demo client (its secret was shown once).
    let again = Server::start_with(&data, &["--demo"], &[]);
    let demo2: serde_json::Value = serde_json::from_str(&again.stdout_lines[1]).unwrap();
    assert_ne!(demo2["demo"]["client_id"], d["client_id"]);
    post_form(
        &again.url("/oauth2/token"),
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");

    // The printed user-flow lines work: sign in with the printed password, consent, redeem
    // with the printed verifier. (A second run reset the password and replaced the app.)
    let d = &demo2["demo"];
    let b = crate::flow::Browser::new();
    let login = b.get(d["authorize_url"].as_str().unwrap()).await;
    let consent = b
        .login(&again, &login, "demo", d["user"]["password"].as_str().unwrap())
        .await;
    let done = b.consent(&again, &consent, "approve").await;
    let code = done.redirect_params()["code"].clone();
    let r = post_form(
        &again.url("/oauth2/token"),
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", d["app_client_id"].as_str().unwrap()),
            ("redirect_uri", "http://127.0.0.1/callback"),
            ("code_verifier", d["code_verifier"].as_str().unwrap()),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["refresh_token"].is_string() && r.body["id_token"].is_string());
    assert!(d["redeem"].as_str().unwrap().contains("code_verifier="));
}

#[test]
fn cli_commands_print_json_and_fail_clearly() {
    let data = DataDir::new();
    let t = data.cli(&["tenant", "create", "acme", "--dcr", "open"]);
    assert_eq!(t["tenant"], "acme");
    assert_eq!(t["dcr_policy"], "open");
    for s in ["openid", "profile", "email", "offline_access", "agent:act"] {
        assert!(t["scopes"][s].is_string(), "seed scope {s}");
    }
    let (ok, v, stderr) = data.cli_raw(&["tenant", "create", "acme"], &[]);
    assert!(
        !ok && v["error"].as_str().is_some_and(|e| e.contains("exists")),
        "{v} {stderr}"
    );
    let (ok, _, _) = data.cli_raw(&["tenant", "create", "Bad_Name"], &[]);
    assert!(!ok);
    let (ok, v, _) = data.cli_raw(&["scope", "add", "--tenant", "nope", "x", "y"], &[]);
    assert!(!ok && v["error"].is_string());
    let s = data.cli(&["scope", "add", "--tenant", "acme", "api:read", "Read the API"]);
    assert_eq!(s["scopes"]["api:read"], "Read the API");
    let iat = data.cli(&[
        "iat",
        "create",
        "--tenant",
        "acme",
        "--expires-in",
        "600",
        "--max-uses",
        "5",
    ]);
    assert!(
        iat["initial_access_token"]
            .as_str()
            .is_some_and(|t| t.len() == 43)
    );
    assert_eq!(iat["max_uses"], 5);
    let (ok, _, _) = data.cli_raw(&["iat", "create", "--tenant", "acme", "--expires-in", "5"], &[]);
    assert!(!ok, "expires-in below a minute is refused");
    let c = data.cli(&[
        "client",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ci",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
    ]);
    let id = c["client_id"].as_str().unwrap().to_string();
    assert_eq!(c["client_secret"].as_str().unwrap().len(), 43);
    let (ok, v, _) = data.cli_raw(
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--scope",
            "api:read",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
        &[],
    );
    assert!(
        !ok && v["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid_redirect_uri")),
        "{v}"
    );
    let list = data.cli(&["client", "list", "--tenant", "acme"]);
    assert_eq!(list["clients"].as_array().unwrap().len(), 1);
    let (ok, _, _) = data.cli_raw(&["client", "delete", "--tenant", "other", &id], &[]);
    assert!(!ok, "a client is deleted only within its tenant");
    assert_eq!(
        data.cli(&["client", "delete", "--tenant", "acme", &id])["deleted"],
        id.as_str()
    );
    assert!(
        data.cli(&["client", "list", "--tenant", "acme"])["clients"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let events = data.cli(&["audit", "list", "--tenant", "acme"]);
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "tenant.created",
            "scope.added",
            "iat.created",
            "client.created",
            "client.deleted"
        ]
    );
    // The key file is private (the embedded backend's local key).
    #[cfg(unix)]
    if !data.is_dynamodb() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.path().join("keys.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn many_clients_list_across_pages() {
    let data = DataDir::new();
    data.cli(&["tenant", "create", "acme"]);
    for i in 0..105 {
        data.cli(&["client", "create", "--tenant", "acme", "--name", &format!("c{i}")]);
    }
    assert_eq!(
        data.cli(&["client", "list", "--tenant", "acme"])["clients"]
            .as_array()
            .unwrap()
            .len(),
        105
    );
}

/// `bulwark user set-password` ends the user's sessions only; with `--sign-out-everywhere` it
/// also ends her refresh token, her access token and an agent's delegated token, while `serve`
/// runs on the same data; she signs in with the new password.
#[tokio::test]
async fn user_set_password_signs_out_everywhere_when_asked() {
    use crate::flow::PASSWORD;
    use crate::sign_out::*;
    let data = DataDir::new();
    let f = fixture(&data);
    let server = Server::start(&data);
    let set_password = |password: &str, extra: &[&str]| {
        let mut args = vec![
            "user",
            "set-password",
            "--tenant",
            &f.w.tenant,
            "--username",
            "alice",
            "--password-stdin",
        ];
        args.extend_from_slice(extra);
        data.cli_stdin(&args, &format!("{password}\n"))
    };
    let (second, third) = ("a second long password", "a third long password");

    let held = sign_in(&server, &f, PASSWORD).await;
    let out = set_password(second, &[]);
    assert_eq!(out["signed_out_everywhere"], false, "{out}");
    let held = only_sessions_ended(&server, &f, held).await;

    let out = set_password(third, &["--sign-out-everywhere"]);
    assert_eq!(out["signed_out_everywhere"], true, "{out}");
    ended_everywhere(&server, &f, &held).await;
    sign_in(&server, &f, third).await;
    let events = signed_out_events(&data, &f);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["actor"], "cli");
}
