//! The device authorization grant (RFC 8628) against `bulwark serve`: a CLI client (public,
//! registered with the `bulwark` CLI) asks for a code, a browser approves it through the real
//! verification pages, and the CLI's polls get `authorization_pending`, `slow_down`, then the
//! tokens exactly once; another client's polls get nothing, a denied code answers
//! `access_denied` once; openid-client 6 runs the whole flow from discovery, and so does
//! `bulwark token --device` (the token on stdout; denied, exit 4). Both backends, both
//! issuers (the verification URI comes from the server, so it is the issuer the test uses).
//! Expiry, guessing bounds and the cascades: the service tests, on a manual clock.

use serde_json::Value;

use crate::flow::*;
use crate::support::*;

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public device client of `tenant`, registered as the README's recipe does.
pub fn device_client(data: &DataDir, tenant: &str, name: &str) -> TestClient {
    let v = data.cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        name,
        "--grant-type",
        DEVICE_GRANT,
        "--grant-type",
        "refresh_token",
        "--auth-method",
        "none",
        "--scope",
        "openid profile api:read",
    ]);
    TestClient {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: String::new(),
        registration_token: None,
        serves: Vec::new(),
    }
}

/// `POST /oauth2/device_authorization` as `c`: 200 and the answer.
async fn start(server: &Server, c: &TestClient, scope: &str) -> Value {
    let r = Resp::from(
        http()
            .post(server.url("/oauth2/device_authorization"))
            .form(&[("client_id", c.id.as_str()), ("scope", scope)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.body
}

async fn poll(server: &Server, c: &TestClient, device_code: &str) -> Resp {
    Resp::from(
        http()
            .post(server.url("/oauth2/token"))
            .form(&[
                ("grant_type", DEVICE_GRANT),
                ("device_code", device_code),
                ("client_id", c.id.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The user's part in the cookie-keeping browser: open `url` (the complete verification URI),
/// sign in as alice (signed out, the page asks first, carrying the code), confirm the prefilled
/// code, and answer `decision` ("Allow" or "Deny").
pub async fn approve_in_browser(b: &Browser, url: &str, user_code: &str, decision: &str) -> Page {
    let mut page = b.get(url).await;
    assert_eq!(page.status, 200, "{}", page.html);
    page.assert_secure_page();
    assert!(
        page.has(&format!("value=\"{user_code}\"")),
        "the code is carried along: {}",
        page.html
    );
    if page.has("name=\"password\"") {
        let (action, mut fields) = page.form("Sign in");
        fields.push(("username".into(), "alice".into()));
        fields.push(("password".into(), PASSWORD.into()));
        page = b.post(&action, &pairs(&fields)).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(
            page.has(&format!("value=\"{user_code}\"")),
            "the code is filled in: {}",
            page.html
        );
    }
    // Filled in, not submitted: the user presses Continue.
    let (action, mut fields) = page.form("Continue");
    fields.push(("user_code".into(), user_code.into()));
    let confirm = b.post(&action, &pairs(&fields)).await;
    assert_eq!(confirm.status, 200, "{}", confirm.html);
    for says in [
        user_code,
        "Device CLI",
        "Read your documents",
        "started this on your own device",
    ] {
        assert!(confirm.has(says), "{says}: {}", confirm.html);
    }
    // The button's own name and value, as a browser sends the one pressed.
    let (action, mut fields) = confirm.form(decision);
    let value = if decision == "Allow" { "approve" } else { "deny" };
    fields.push(("decision".into(), value.into()));
    b.post(&action, &pairs(&fields)).await
}

fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_cli_gets_tokens_once_after_its_user_approves_on_the_verification_page() {
    let data = DataDir::new();
    let w = world(&data);
    let cli = device_client(&data, &w.tenant, "Device CLI");
    let server = Server::start(&data);
    let disc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        disc["device_authorization_endpoint"],
        server.url("/oauth2/device_authorization").as_str()
    );
    assert!(
        disc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&DEVICE_GRANT.into())
    );

    let d = start(&server, &cli, "openid api:read").await;
    let (device_code, user_code) = (
        d["device_code"].as_str().unwrap(),
        d["user_code"].as_str().unwrap(),
    );
    assert_eq!(
        (d["expires_in"].as_i64(), d["interval"].as_i64()),
        (Some(600), Some(5))
    );
    let verification = d["verification_uri"].as_str().unwrap();
    let complete = d["verification_uri_complete"].as_str().unwrap();
    assert!(verification.starts_with(&server.issuer), "{verification}");
    assert!(complete.starts_with(verification), "{complete}");

    poll(&server, &cli, device_code)
        .await
        .assert_error(400, "authorization_pending");
    poll(&server, &cli, device_code)
        .await
        .assert_error(400, "slow_down");
    // Another client's poll: nothing, and the code stays its client's.
    let other = device_client(&data, &w.tenant, "Other CLI");
    poll(&server, &other, device_code)
        .await
        .assert_error(400, "invalid_grant");

    let b = Browser::new();
    let done = approve_in_browser(&b, complete, user_code, "Allow").await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.has("Device connected"), "{}", done.html);
    // The code is answered: entering it again is refused on our page, never a redirect.
    let again = b.get(complete).await;
    let (action, mut fields) = again.form("Continue");
    fields.push(("user_code".into(), user_code.into()));
    let refused = b.post(&action, &pairs(&fields)).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    assert!(refused.location().is_none());

    // The interval has grown to 10 s by the slow_down: wait it out, then 32 polls at once.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (url, id, code) = (
                server.url("/oauth2/token"),
                cli.id.clone(),
                device_code.to_string(),
            );
            tokio::spawn(async move {
                post_form(
                    &url,
                    None,
                    &[
                        ("grant_type", DEVICE_GRANT),
                        ("device_code", &code),
                        ("client_id", &id),
                    ],
                )
                .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let issued: Vec<&Resp> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        issued.len(),
        1,
        "{:?}",
        results
            .iter()
            .map(|r| r.body["error"].clone())
            .collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 200) {
        r.assert_error(400, "invalid_grant");
    }
    let t = &issued[0].body;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(
        jwt_part(t["access_token"].as_str().unwrap(), 1)["sub"],
        w.sub.as_str()
    );
    let ui = userinfo(&server, t["access_token"].as_str().unwrap()).await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    let rt = t["refresh_token"].as_str().unwrap();
    let r = refresh(&server, &cli, rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_denied_code_answers_access_denied_once_and_wrong_codes_stay_on_our_page() {
    let data = DataDir::new();
    let w = world(&data);
    let cli = device_client(&data, &w.tenant, "Device CLI");
    let server = Server::start(&data);
    let d = start(&server, &cli, "api:read").await;
    let (device_code, user_code) = (
        d["device_code"].as_str().unwrap(),
        d["user_code"].as_str().unwrap(),
    );
    let b = Browser::new();
    let complete = d["verification_uri_complete"].as_str().unwrap();
    let done = approve_in_browser(&b, complete, user_code, "Deny").await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.has("Request denied"), "{}", done.html);
    poll(&server, &cli, device_code)
        .await
        .assert_error(400, "access_denied");
    poll(&server, &cli, device_code)
        .await
        .assert_error(400, "invalid_grant");

    // A wrong code, and a form without this browser's CSRF token: our page, never a redirect.
    let page = b.get(d["verification_uri"].as_str().unwrap()).await;
    let (action, mut fields) = page.form("Continue");
    fields.push(("user_code".into(), "BCDF-GHJK".into()));
    let wrong = b.post(&action, &pairs(&fields)).await;
    assert_eq!(wrong.status, 400, "{}", wrong.html);
    assert!(wrong.location().is_none());
    let forged: Vec<(String, String)> = fields
        .into_iter()
        .map(|(k, v)| if k == "csrf" { (k, "forged".into()) } else { (k, v) })
        .collect();
    let r = Browser::new().post(&action, &pairs(&forged)).await;
    assert_eq!(r.status, 400, "{}", r.html);
    assert!(r.location().is_none());
}

/// panva's openid-client 6 (Node), from discovery: the device authorization, the library's
/// own polling (interval, slow_down) with DPoP, then refresh and userinfo with DPoP; the user's
/// part through the real pages in the cookie-keeping browser.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs openid-client in tests/interop/node: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn openid_client_runs_the_device_flow_from_discovery() {
    let data = DataDir::new();
    let w = world(&data);
    let cli = device_client(&data, &w.tenant, "Device CLI");
    let server = Server::start(&data);
    let issuer = server.issuer.clone();
    let v = openid_client_device(&issuer, &cli, |d| async move {
        let b = Browser::new();
        let done = approve_in_browser(
            &b,
            d["verification_uri_complete"].as_str().unwrap(),
            d["user_code"].as_str().unwrap(),
            "Allow",
        )
        .await;
        assert!(done.has("Device connected"), "{}", done.html);
    })
    .await;
    assert_eq!(v["userinfo"]["sub"], w.sub.as_str(), "{v}");
}

/// Run openid_client.mjs `device` as `cli` at `issuer`; `user` does the user's part with the
/// device authorization response the library printed. What the library got.
pub async fn openid_client_device<F, Fut>(issuer: &str, cli: &TestClient, user: F) -> Value
where
    F: FnOnce(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use std::io::BufRead;
    let mut child = crate::rp_library::node_script()
        .args(["device", issuer, cli.id.as_str(), "-", "openid profile api:read"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let Ok(d) = serde_json::from_str::<Value>(&first) else {
        let out = child.wait_with_output().unwrap();
        panic!("openid-client: {first} {}", String::from_utf8_lossy(&out.stderr));
    };
    assert!(d["user_code"].is_string(), "{d}");
    user(d).await;
    let rest = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        rest
    })
    .await
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "openid-client device flow: {err}");
    let v: Value = serde_json::from_str(rest.trim()).expect("one JSON object");
    let jkt = jwt_part(v["device"]["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"].clone();
    assert!(jkt.is_string(), "bound to the library's DPoP key: {v}");
    for step in ["device", "refresh"] {
        assert_eq!(
            v[step]["token_type"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("dpop"),
            "{step}: {v}"
        );
        assert_eq!(
            jwt_part(v[step]["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
            jkt,
            "{step}"
        );
    }
    assert_eq!(v["userinfo"]["preferred_username"], "alice", "{v}");
    v
}

/// `bulwark token --device --issuer ISSUER --client-id CLI` against this server: started, it
/// prints the verification URL and code on stderr; `user` answers in the browser with
/// (complete URL, user code); then (exit code, stdout, stderr).
async fn bulwark_token_device<F, Fut>(issuer: &str, cli: &TestClient, user: F) -> (i32, String, String)
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use std::io::{BufRead, Read};
    let mut child = std::process::Command::new(&*BIN)
        .args([
            "token",
            "--device",
            "--issuer",
            issuer,
            "--client-id",
            cli.id.as_str(),
        ])
        .args(["--scope", "openid api:read"])
        .env_remove("BULWARK_ISSUER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bulwark token --device");
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let first = tokio::task::spawn_blocking(move || {
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        (first, stderr)
    });
    let (first, mut stderr) = first.await.unwrap();
    // "To sign in, open URL (the code CODE is filled in), or open URL and enter CODE."
    let words: Vec<&str> = first.split_whitespace().collect();
    let (Some(complete), Some(code)) = (words.get(4), words.get(7)) else {
        let _ = child.kill();
        panic!("bulwark token --device said: {first}");
    };
    assert!(complete.starts_with(issuer), "{first}");
    assert!(first.contains(&format!("and enter {code}.")), "{first}");
    user(complete.to_string(), code.to_string()).await;
    tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        let mut rest = String::new();
        stderr.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        (status.code().unwrap_or(-1), out, first + &rest)
    })
    .await
    .unwrap()
}

/// The CLI as a device client of this server (issue 23): `bulwark token --device` prints where
/// to go on stderr, its user approves through the real verification pages, and the live access
/// token lands alone on stdout with exit 0; denied, exit 4 and `access_denied` on stderr.
#[tokio::test]
async fn bulwark_token_device_gets_a_token_once_its_user_approves_on_our_pages() {
    let data = DataDir::new();
    let w = world(&data);
    let cli = device_client(&data, &w.tenant, "Device CLI");
    let server = Server::start(&data);

    let (code, stdout, stderr) = bulwark_token_device(&server.issuer, &cli, |url, user_code| async move {
        let done = approve_in_browser(&Browser::new(), &url, &user_code, "Allow").await;
        assert!(done.has("Device connected"), "{}", done.html);
    })
    .await;
    assert_eq!(code, 0, "{stdout} {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "the token alone: {stdout}");
    let at = lines[0];
    let claims = jwt_part(at, 1);
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["sub"], w.sub.as_str());
    assert_eq!(claims["client_id"], cli.id.as_str());
    let ui = userinfo(&server, at).await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.body["sub"], w.sub.as_str());
    assert!(!stderr.contains("error"), "{stderr}");

    let (code, stdout, stderr) = bulwark_token_device(&server.issuer, &cli, |url, user_code| async move {
        let done = approve_in_browser(&Browser::new(), &url, &user_code, "Deny").await;
        assert!(done.has("Request denied"), "{}", done.html);
    })
    .await;
    assert_eq!(code, 4, "{stdout} {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("access_denied"), "{stderr}");
}
