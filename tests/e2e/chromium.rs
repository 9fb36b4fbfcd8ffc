//! A real browser: headless Chromium, driven over the W3C WebDriver protocol by chromedriver
//! (both from Debian, installed by `infra/test.sh`), signs in, consents, lands on a local
//! callback that exchanges the code, then revokes the app on the account page. Screenshots of
//! each page go to `test-output/screenshots/`.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::flow::*;
use crate::support::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // End the WebDriver session first, so chromedriver quits the browser it started
        // (killing chromedriver alone leaves Chromium running as an orphan); a plain blocking
        // HTTP request, since drop cannot await.
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_string();
        if let Ok(mut conn) = std::net::TcpStream::connect(&addr) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                conn,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut sink = Vec::new();
            let _ = conn.read_to_end(&mut sink);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    async fn start() -> Self {
        let chromedriver =
            std::env::var("BULWARK_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("BULWARK_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&chromedriver).exists() && std::path::Path::new(&chromium).exists(),
            "{chromedriver} and {chromium} are needed: `bash infra/test.sh` installs Debian's chromium and chromium-driver"
        );
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        crate::support::tls();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1000,820",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session: {r}"))
            .to_string();
        Self {
            child,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }
    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }
    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }
    async fn title(&self) -> String {
        self.cmd(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }
    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_string()
    }
    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }
    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }
    /// The visible text of the first element `css` selects.
    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// The element that has focus, as its `id` attribute.
    async fn focused_id(&self) -> String {
        let v = self.cmd(reqwest::Method::GET, "/element/active", None).await;
        let e = v[ELEMENT].as_str().unwrap().to_string();
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/attribute/id"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-output/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
    /// Wait until the page (after a click that navigates) has `title` and contains `text`.
    async fn wait_for(&self, title: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (t, src) = (self.title().await, self.source().await);
            if t == title && src.contains(text) {
                return src;
            }
            if Instant::now() > deadline {
                self.screenshot("unexpected").await;
                let main = src.find("<main").map(|i| &src[i..]).unwrap_or(&src);
                panic!("waited for {title:?} with {text:?}; got {t:?}: {main}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let u = self.url().await;
            if u.starts_with(prefix) {
                return u;
            }
            assert!(Instant::now() < deadline, "still at {u}, waiting for {prefix}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The relying party's callback: exchanges the code (PKCE) and greets the user by userinfo.
#[derive(Clone)]
struct Rp {
    token_url: String,
    userinfo_url: String,
    client: TestClient,
    verifier: String,
    redirect: String,
    got: Arc<Mutex<Option<Value>>>,
}

async fn callback(State(rp): State<Rp>, Query(q): Query<HashMap<String, String>>) -> Html<String> {
    let Some(code) = q.get("code") else {
        return Html(format!(
            "<p id=\"error\">{}</p>",
            q.get("error").cloned().unwrap_or_default()
        ));
    };
    let r = post_form(
        &rp.token_url,
        Some((&rp.client.id, &rp.client.secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &rp.redirect),
            ("code_verifier", &rp.verifier),
        ],
    )
    .await;
    let at = r.body["access_token"].as_str().unwrap_or_default().to_string();
    let who = userinfo_name(&rp.userinfo_url, &at).await;
    *rp.got.lock().unwrap() = Some(r.body.clone());
    Html(format!(
        "<!doctype html><html lang=\"en\"><title>Acme Notes</title><h1 id=\"hello\">Hello, {who}</h1><p>state={}</p></html>",
        q.get("state").cloned().unwrap_or_default()
    ))
}

/// Serve the relying party's callback for `client` on its own loopback port (the registered
/// redirect is http://127.0.0.1/callback; a loopback redirect URI may use any port).
async fn spawn_rp(server: &Server, client: &TestClient, verifier: &str) -> (Rp, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let rp = Rp {
        token_url: server.url("/oauth2/token"),
        userinfo_url: server.url("/oauth2/userinfo"),
        client: client.clone(),
        verifier: verifier.to_string(),
        redirect: format!("http://127.0.0.1:{port}/callback"),
        got: Arc::new(Mutex::new(None)),
    };
    let app = Router::new()
        .route("/callback", get(callback))
        .with_state(rp.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (rp, task)
}

/// An authorization URL whose redirect URI is the relying party's port.
fn rp_url(server: &Server, rp: &Rp, scope: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let port = rp
        .redirect
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/callback");
    authorize_url(server, &rp.client.id, scope, challenge, extra)
        .replace("127.0.0.1%2Fcallback", &format!("127.0.0.1%3A{port}%2Fcallback"))
}

async fn userinfo_name(url: &str, at: &str) -> String {
    let r = http().get(url).bearer_auth(at).send().await.unwrap();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["name"].as_str().unwrap_or("?").to_string()
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs Debian's chromium and chromedriver: run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_consents_reaches_the_callback_and_revokes_on_the_account_page() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let p = pkce();

    // The relying party on its own loopback port (the registered redirect is
    // http://127.0.0.1/callback; loopback redirect URIs may use any port).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let rp = Rp {
        token_url: server.url("/oauth2/token"),
        userinfo_url: server.url("/oauth2/userinfo"),
        client: w.client.clone(),
        verifier: p.verifier.clone(),
        redirect: redirect.clone(),
        got: Arc::new(Mutex::new(None)),
    };
    let app = Router::new()
        .route("/callback", get(callback))
        .with_state(rp.clone());
    let rp_task = tokio::spawn(async move { axum::serve(listener, app).await });

    let driver = Driver::start().await;
    let url = authorize_url(
        &server,
        &w.client.id,
        "openid profile email api:read",
        &p.challenge,
        &[],
    )
    .replace("127.0.0.1%2Fcallback", &format!("127.0.0.1%3A{port}%2Fcallback"));
    driver.goto(&url).await;
    assert_eq!(driver.title().await, "Sign in · Bulwark");
    assert_eq!(
        driver.focused_id().await,
        "username",
        "the username field has focus"
    );
    let shot = driver.screenshot("login").await;
    eprintln!("screenshot: {}", shot.display());

    // A wrong password first: the generic error, the form again.
    driver.type_into("#username", "alice").await;
    driver.type_into("#password", "wrong password").await;
    driver.click("button[type=submit]").await;
    driver
        .wait_for("Sign in · Bulwark", "The username or password is incorrect.")
        .await;
    driver.screenshot("login-error").await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("button[type=submit]").await;

    let consent = driver
        .wait_for("Allow access · Bulwark", "value=\"approve\"")
        .await;
    assert!(consent.contains("Acme Notes") && consent.contains("Read your documents"));
    driver.screenshot("consent").await;
    driver.click("button[value=approve]").await;

    // The callback exchanged the code and greeted alice by her userinfo name.
    let landed = driver.wait_for_url(&redirect).await;
    assert!(
        landed.contains("state=st-123") && landed.contains("iss="),
        "{landed}"
    );
    let hello = driver.source().await;
    assert!(hello.contains("Hello, alice Example"), "{hello}");
    let tokens = rp
        .got
        .lock()
        .unwrap()
        .clone()
        .expect("the callback redeemed the code");
    let at = tokens["access_token"].as_str().expect("access token").to_string();
    assert!(active(&server, &w.client, &at).await);

    // The account page, in the same browser session: revoke the app.
    driver
        .goto(&server.url(&format!("/account?tenant={}", w.tenant)))
        .await;
    assert_eq!(driver.title().await, "Connected apps · Bulwark");
    assert!(driver.source().await.contains("Acme Notes"));
    driver.screenshot("account").await;
    driver.click("button.danger").await;
    let after = driver
        .wait_for("Connected apps · Bulwark", "Access removed")
        .await;
    assert!(!after.contains("Acme Notes"));
    driver.screenshot("account-revoked").await;
    assert!(
        !active(&server, &w.client, &at).await,
        "revoked from the account page"
    );

    // Sign out.
    driver.click("form[action$='/account/logout'] button").await;
    driver.wait_for("Sign in · Bulwark", "name=\"password\"").await;
    rp_task.abort();
}

/// A login that needs no consent answers the login form with a redirect to the client; the
/// login page's Content-Security-Policy must allow that (`form-action`), or Chromium stays on
/// the sign-in page. Both cases: a first-party app, and an app the user already allowed
/// (`prompt=login`).
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs Debian's chromium and chromedriver: run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logins_that_need_no_consent_land_on_the_callback() {
    let data = DataDir::new();
    let w = world(&data);
    let first_party = code_client(
        &data,
        &w.tenant,
        "Acme Console",
        "client_secret_basic",
        &["--first-party"],
    );
    let server = Server::start(&data);
    let p = pkce();
    let (fp, fp_task) = spawn_rp(&server, &first_party, &p.verifier).await;
    let (notes, notes_task) = spawn_rp(&server, &w.client, &p.verifier).await;
    let driver = Driver::start().await;

    // First-party: sign in, and straight on to the app.
    driver
        .goto(&rp_url(&server, &fp, "openid profile", &p.challenge, &[]))
        .await;
    assert_eq!(driver.title().await, "Sign in · Bulwark");
    driver.type_into("#username", "alice").await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("button[type=submit]").await;
    driver.wait_for_url(&fp.redirect).await;
    assert!(driver.source().await.contains("Hello, alice Example"));
    assert!(
        fp.got.lock().unwrap().is_some(),
        "the first-party callback redeemed its code"
    );

    // A third-party app: consent once (the session from above stands)...
    driver
        .goto(&rp_url(&server, &notes, "openid profile", &p.challenge, &[]))
        .await;
    driver
        .wait_for("Allow access · Bulwark", "value=\"approve\"")
        .await;
    driver.click("button[value=approve]").await;
    driver.wait_for_url(&notes.redirect).await;
    *notes.got.lock().unwrap() = None;
    // ... then a fresh login it asks for (prompt=login): no consent page, straight to the app.
    driver
        .goto(&rp_url(
            &server,
            &notes,
            "openid profile",
            &p.challenge,
            &[("prompt", "login")],
        ))
        .await;
    assert_eq!(driver.title().await, "Sign in · Bulwark");
    driver.type_into("#username", "alice").await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("button[type=submit]").await;
    let landed = driver.wait_for_url(&notes.redirect).await;
    assert!(landed.contains("code="), "{landed}");
    assert!(driver.source().await.contains("Hello, alice Example"));
    assert!(
        notes.got.lock().unwrap().is_some(),
        "the callback redeemed its code"
    );
    driver.screenshot("login-no-consent").await;
    fp_task.abort();
    notes_task.abort();
}

/// Agents in a real browser: the consent page names the app's agent; an agent exchanges the
/// user's token (RFC 8693); the account page lists it, and Stop ends its token; Revoke then
/// ends the app's own.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs Debian's chromium and chromedriver: run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_consents_to_an_agent_then_stops_it_and_revokes_the_app() {
    const TE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
    let data = DataDir::new();
    let w = world(&data);
    let app = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "Acme Reports",
        "--grant-type",
        "authorization_code",
        "--scope",
        "openid profile api:read agent:act",
        "--redirect-uri",
        CALLBACK,
    ]));
    let bot = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "Report Bot",
        "--grant-type",
        TE,
        "--agent-of",
        &app.id,
        "--scope",
        "api:read",
    ]));
    let server = Server::start(&data);
    let p = pkce();
    let (rp, rp_task) = spawn_rp(&server, &app, &p.verifier).await;
    let driver = Driver::start().await;

    driver
        .goto(&rp_url(
            &server,
            &rp,
            "openid profile api:read agent:act",
            &p.challenge,
            &[],
        ))
        .await;
    driver.type_into("#username", "alice").await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("button[type=submit]").await;
    let consent = driver
        .wait_for("Allow access · Bulwark", "value=\"approve\"")
        .await;
    assert!(
        consent.contains("Agents that may act for you") && consent.contains("Report Bot"),
        "{consent}"
    );
    driver.screenshot("consent-agents").await;
    driver.click("button[value=approve]").await;
    driver.wait_for_url(&rp.redirect).await;
    let tokens = rp
        .got
        .lock()
        .unwrap()
        .clone()
        .expect("the callback redeemed the code");
    let subject = tokens["access_token"].as_str().unwrap().to_string();

    // The agent acts for alice.
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&bot.id, &bot.secret)),
        &[
            ("grant_type", TE),
            ("subject_token", &subject),
            ("subject_token_type", AT),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let delegated = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&delegated, 1)["act"]["sub"], bot.id.as_str());
    let rs = data.resource_server(&w.tenant, &[]);
    assert!(active(&server, &rs, &delegated).await);

    // Alice sees the agent on her account page and stops it.
    driver
        .goto(&server.url(&format!("/account?tenant={}", w.tenant)))
        .await;
    let page = driver.source().await;
    assert!(
        page.contains("Agents acting for you") && page.contains("Report Bot"),
        "{page}"
    );
    driver.screenshot("account-agents").await;
    driver.click("form[action*='/stop'] button").await;
    let after = driver.wait_for("Connected apps · Bulwark", "Agent stopped").await;
    assert!(after.contains("stopped"), "{after}");
    driver.screenshot("account-agent-stopped").await;
    assert!(
        !active(&server, &rs, &delegated).await,
        "Stop ended the agent's token"
    );
    assert!(active(&server, &rs, &subject).await, "the app's own token stands");

    // Then she revokes the app.
    driver.click("form[action*='/revoke'] button").await;
    let gone = driver
        .wait_for("Connected apps · Bulwark", "Access removed")
        .await;
    assert!(!gone.contains("Acme Reports"), "{gone}");
    assert!(
        !active(&server, &rs, &subject).await,
        "Revoke ended the app's token"
    );
    rp_task.abort();
}

/// The Connected Apps console in a real browser: an administrator signs in through the hosted
/// login, creates an app, reads its secret (once), the app gets a token with it over HTTP,
/// the secret is rotated, the app deleted, and its token introspects inactive. A screenshot of
/// each page.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs Debian's chromium and chromedriver: run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_console_creates_an_app_rotates_its_secret_and_deletes_it() {
    let data = DataDir::new();
    let w = world(&data);
    data.cli_stdin(
        &[
            "user",
            "create",
            "--tenant",
            &w.tenant,
            "--username",
            "root",
            "--name",
            "Riley Admin",
            "--email",
            "riley@example.com",
            "--password-stdin",
            "--admin",
        ],
        &format!("{PASSWORD}\n"),
    );
    let rs = data.resource_server(&w.tenant, &[]);
    let server = Server::start(&data);
    let driver = Driver::start().await;
    let cc = |id: String, secret: String| {
        let url = server.url("/oauth2/token");
        async move {
            post_form(
                &url,
                Some((&id, &secret)),
                &[("grant_type", "client_credentials"), ("scope", "api:read")],
            )
            .await
        }
    };

    // Sign in: the console sends the browser to our hosted login (code + PKCE).
    driver
        .goto(&server.url(&format!("/console?tenant={}", w.tenant)))
        .await;
    assert_eq!(driver.title().await, "Sign in · Bulwark");
    driver.screenshot("console-login").await;
    driver.type_into("#username", "root").await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("button[type=submit]").await;
    let apps = driver
        .wait_for("Connected Apps · Bulwark", "Create application")
        .await;
    assert!(
        apps.contains("Acme Notes") && apps.contains("Riley Admin"),
        "{apps}"
    );
    driver.screenshot("console-apps").await;

    // A link to the console from another site (an email, a wiki) finds the session: no
    // second sign-in, no redirect loop.
    let link = server.url(&format!("/console/users?tenant={}", w.tenant));
    driver
        .goto(&format!("data:text/html,<a id=go href=\"{link}\">console</a>"))
        .await;
    driver.click("#go").await;
    driver.wait_for("Users · Bulwark", "Create a user").await;
    driver.click("nav a[href*='/console/apps']").await;
    driver
        .wait_for("Connected Apps · Bulwark", "Create application")
        .await;

    // Create an app that acts on its own behalf, with a scope from the catalog.
    driver.click("a.button.primary").await;
    driver
        .wait_for("Create application · Bulwark", "Acts on its own behalf")
        .await;
    driver.type_into("#name", "Nightly CI").await;
    driver.click("input[name='scope.api:read']").await;
    driver.screenshot("console-create").await;
    driver.click("button.primary[type=submit]").await;
    driver
        .wait_for("Application created · Bulwark", "shown only this once")
        .await;
    let id = driver.text("#client-id").await;
    let secret = driver.text("#client-secret").await;
    assert!(!id.is_empty() && secret.len() >= 32, "{id} {secret}");
    driver.screenshot("console-secret").await;

    // The app gets a token with it, over HTTP.
    let t = cc(id.clone(), secret.clone()).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let at = t.body["access_token"].as_str().unwrap().to_string();
    assert!(active(&server, &rs, &at).await);

    // Its page; then rotate the secret (the previous one ends at once).
    driver.click("a.button.primary").await;
    let page = driver.wait_for("Nightly CI · Bulwark", "Rotate secret").await;
    assert!(!page.contains(&secret), "the secret is not shown again");
    driver.screenshot("console-app").await;
    driver.click("#grace option[value='0']").await;
    driver.click("form[action*='/secret'] button").await;
    driver
        .wait_for("New secret · Bulwark", "shown only this once")
        .await;
    let rotated = driver.text("#client-secret").await;
    assert_ne!(rotated, secret);
    driver.screenshot("console-rotated").await;
    assert_eq!(
        cc(id.clone(), secret.clone()).await.status,
        401,
        "the previous secret ended"
    );
    assert_eq!(cc(id.clone(), rotated.clone()).await.status, 200);

    // Delete it, after the confirmation page: its token introspects inactive.
    driver.click("a.button.primary").await;
    driver.wait_for("Nightly CI · Bulwark", "Delete").await;
    driver.click("a.button.danger").await;
    driver
        .wait_for("Delete application · Bulwark", "cannot be undone")
        .await;
    driver.screenshot("console-delete").await;
    driver.click("#confirm-delete").await;
    let after = driver
        .wait_for("Connected Apps · Bulwark", "Application deleted")
        .await;
    assert!(!after.contains("Nightly CI"), "{after}");
    driver.screenshot("console-deleted").await;
    assert!(
        !active(&server, &rs, &at).await,
        "the deleted app's token is inactive"
    );
    assert_eq!(cc(id.clone(), rotated).await.status, 401);

    // The other pages.
    driver.click("nav a[href*='/console/users']").await;
    driver.wait_for("Users · Bulwark", "Create a user").await;
    driver.screenshot("console-users").await;
    driver.click("nav a[href*='/console/audit']").await;
    let audit = driver.wait_for("Audit log · Bulwark", "client.deleted").await;
    assert!(audit.contains("client.created") && !audit.contains(&secret));
    driver.screenshot("console-audit").await;
    driver.click("nav a[href*='/console/policy']").await;
    driver.wait_for("Policy · Bulwark", "App allowlist").await;
    driver.screenshot("console-policy").await;

    // Sign out.
    driver.click("nav form button").await;
    driver.wait_for("Signed out · Bulwark", "signed out").await;
}

/// The device authorization grant (RFC 8628) with a real browser: openid-client 6 (Node) asks
/// for a code from discovery and polls with DPoP; Chromium opens its
/// `verification_uri_complete`, finds the code filled in, continues, signs in, sees the code,
/// the app, its scope and the warning, and allows. The library gets its tokens, refreshes and
/// reads userinfo; the account page lists the CLI, and revoking it there takes it away.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs Debian's chromium and chromedriver and openid-client: run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_approves_a_device_code_that_openid_client_polls_for() {
    let data = DataDir::new();
    let w = world(&data);
    let cli = crate::device::device_client(&data, &w.tenant, "Device CLI");
    let server = Server::start(&data);
    let driver = Driver::start().await;
    let d = &driver;
    let v = crate::device::openid_client_device(&server.issuer, &cli, |start| async move {
        let user_code = start["user_code"].as_str().unwrap().to_string();
        d.goto(start["verification_uri_complete"].as_str().unwrap()).await;
        // Signed out: sign in first, the code carried along.
        d.wait_for("Sign in · Bulwark", "name=\"password\"").await;
        d.type_into("#username", "alice").await;
        d.type_into("#password", PASSWORD).await;
        d.click("button[type=submit]").await;
        let page = d
            .wait_for("Connect a device · Bulwark", &format!("value=\"{user_code}\""))
            .await;
        assert!(page.contains("name=\"csrf\""), "{page}");
        d.screenshot("device-code").await;
        // Filled in, not submitted: the user confirms it.
        d.click("button[type=submit]").await;
        let confirm = d
            .wait_for("Allow access on a device · Bulwark", "value=\"approve\"")
            .await;
        for says in [
            user_code.as_str(),
            "Device CLI",
            "Read your documents",
            "started this on your own device",
        ] {
            assert!(confirm.contains(says), "{says}");
        }
        d.screenshot("device-confirm").await;
        d.click("button[value=approve]").await;
        d.wait_for("Device connected · Bulwark", "Device CLI").await;
        d.screenshot("device-connected").await;
    })
    .await;
    assert_eq!(v["userinfo"]["sub"], w.sub.as_str(), "{v}");

    // The account page, in the same browser session: the CLI is a connected app; revoke it.
    driver
        .goto(&server.url(&format!("/account?tenant={}", w.tenant)))
        .await;
    assert_eq!(driver.title().await, "Connected apps · Bulwark");
    assert!(driver.source().await.contains("Device CLI"));
    driver.click("button.danger").await;
    let after = driver
        .wait_for("Connected apps · Bulwark", "Access removed")
        .await;
    assert!(!after.contains("Device CLI"));
}
