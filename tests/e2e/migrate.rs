//! `bulwark migrate` and the schema version: a store written by the release before this one
//! (`tests/fixtures/store-01c75c0`, see its README) is migrated and everything in it is found;
//! a fresh store is stamped, and a rerun changes nothing; a store newer than the code is
//! refused with 503.

use serde_json::Value;

use crate::flow::Browser;
use crate::support::*;

/// The fixture's `demo.json`: what `serve --demo` printed when the old release wrote it.
fn fixture_demo() -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/store-01c75c0/demo.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn migrate_opens_a_store_written_by_the_release_before_and_finds_everything() {
    let data = DataDir::from_fixture("store-01c75c0", &["demo"]);
    let d = fixture_demo();

    // A dry run says what would happen and writes nothing (a second dry run says the same).
    for _ in 0..2 {
        let dry = data.cli(&["migrate", "--dry-run"]);
        assert_eq!(dry["from"], 1, "{dry}");
        assert_eq!(dry["stamped"], true, "{dry}");
        assert_eq!(dry["dry_run"], true, "{dry}");
    }
    let done = data.cli(&["migrate"]);
    assert_eq!(done["from"], 1, "{done}");
    assert_eq!(done["to"], done["current"], "{done}");
    assert_eq!(done["stamped"], true, "{done}");
    // Safe to re-run: nothing to do.
    let again = data.cli(&["migrate"]);
    assert_eq!(again["from"], done["to"], "{again}");
    assert_eq!(again["stamped"], false, "{again}");
    assert_eq!(again["steps"], serde_json::json!([]), "{again}");

    // The tenant, its clients, its user and group.
    let tenant = data.cli(&["tenant", "show", "demo"]);
    assert!(tenant.to_string().contains("api:read"), "{tenant}");
    let clients = data.cli(&["client", "list", "--tenant", "demo"]).to_string();
    for id in [&d["client_id"], &d["app_client_id"]] {
        assert!(clients.contains(id.as_str().unwrap()), "{id} in {clients}");
    }
    let groups = data.cli(&["group", "list", "--tenant", "demo"]).to_string();
    assert!(groups.contains("readers"), "{groups}");

    let server = Server::start(&data);
    // client_credentials with the secret the old release issued.
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((
            d["client_id"].as_str().unwrap(),
            d["client_secret"].as_str().unwrap(),
        )),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The user signs in with the old password and the app redeems the code.
    let authorize = d["authorize_url"].as_str().unwrap();
    let query = authorize.split_once('?').unwrap().1;
    let b = Browser::new();
    let login = b
        .get(&format!("{}?{query}", server.url("/oauth2/authorize")))
        .await;
    let consent = b
        .login(&server, &login, "demo", d["user"]["password"].as_str().unwrap())
        .await;
    let done = b.consent(&server, &consent, "approve").await;
    let code = done.redirect_params()["code"].clone();
    let r = post_form(
        &server.url("/oauth2/token"),
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
    assert!(r.body["refresh_token"].is_string(), "{}", r.body);
}

/// On either backend: a fresh store is stamped once; dry runs and reruns change nothing.
#[tokio::test]
async fn migrate_stamps_a_fresh_store_once() {
    let data = DataDir::new();
    data.tenant_with_client(&format!("m{}", unique()));
    let dry = data.cli(&["migrate", "--dry-run"]);
    assert_eq!(
        (dry["from"].as_u64(), dry["stamped"].as_bool()),
        (Some(1), Some(true)),
        "{dry}"
    );
    let first = data.cli(&["migrate"]);
    assert_eq!(first["stamped"], true, "{first}");
    let dry = data.cli(&["migrate", "--dry-run"]);
    assert_eq!(dry["stamped"], false, "{dry}");
    let again = data.cli(&["migrate"]);
    assert_eq!(again["stamped"], false, "{again}");
    assert_eq!(again["from"], first["to"], "{again}");
}

/// What a later release's migrate leaves: the version item at a version this code does not know.
fn stamp_embedded(data: &DataDir, version: u32) {
    let db = data.path().join("bulwark.db");
    let sql = format!(
        "INSERT OR REPLACE INTO items (tbl, pk, sk, data, version) VALUES ('tenants', 'schema', 'version', '{{\"version\":{version}}}', 9)"
    );
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
        ])
        .arg(&db)
        .arg(&sql)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn a_store_newer_than_the_code_is_refused_with_503() {
    let data = DataDir::from_fixture("store-01c75c0", &["demo"]);
    let d = fixture_demo();
    stamp_embedded(&data, 999);
    let server = Server::start(&data);
    for path in ["/oauth2/token", "/.well-known/openid-configuration"] {
        let r = if path == "/oauth2/token" {
            post_form(
                &server.url(path),
                Some((
                    d["client_id"].as_str().unwrap(),
                    d["client_secret"].as_str().unwrap(),
                )),
                &[("grant_type", "client_credentials")],
            )
            .await
        } else {
            Resp::from(http().get(server.url(path)).send().await.unwrap()).await
        };
        r.assert_error(503, "temporarily_unavailable");
    }
    let log = std::fs::read_to_string(&server.log).unwrap();
    let lines: Vec<_> = log
        .lines()
        .filter(|l| l.contains("newer than this code understands"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear line: {log}");
    assert!(!log.contains("panicked"), "{log}");
    // migrate will not touch it either.
    let (ok, v, stderr) = data.cli_raw(&["migrate"], &[]);
    assert!(!ok, "{v}");
    assert!(stderr.contains("newer than this code"), "{stderr}");
    drop(server);
    // Back at a version this code knows, it serves again.
    stamp_embedded(&data, 1);
    let server = Server::start(&data);
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((
            d["client_id"].as_str().unwrap(),
            d["client_secret"].as_str().unwrap(),
        )),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
