//! Helpers for the user-facing flows: a cookie-keeping HTTP "browser" that does not follow
//! redirects, HTML form scraping, PKCE, and a tenant with a user and a code-flow client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::support::*;

pub const PASSWORD: &str = "correct horse battery staple";
pub const CALLBACK: &str = "http://127.0.0.1/callback";

/// A page or redirect as a browser sees it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn location(&self) -> Option<url::Url> {
        self.header("location")
            .map(|l| url::Url::parse(l).expect("absolute Location"))
    }
    /// The value of hidden input `name` (first one).
    pub fn hidden(&self, name: &str) -> Option<String> {
        hidden_input(&self.html, name)
    }
    pub fn has(&self, text: &str) -> bool {
        self.html.contains(text)
    }
    /// Where the page's (first) POST form goes, as a browser would send it.
    pub fn form_action(&self) -> Option<String> {
        let start =
            self.html.find("<form method=\"post\" action=\"")? + "<form method=\"post\" action=\"".len();
        let end = self.html[start..].find('"')? + start;
        Some(unescape(&self.html[start..end]))
    }
    /// The POST form around the submit button labelled `label`: where a browser sends it and
    /// its hidden fields.
    pub fn form(&self, label: &str) -> (String, Vec<(String, String)>) {
        let html = &self.html;
        let at = html
            .find(&format!(">{label}</button>"))
            .unwrap_or_else(|| panic!("no {label} button in {html}"));
        let start = html[..at].rfind("<form").expect("in a form");
        let end = html[at..].find("</form>").expect("form ends") + at;
        let f = &html[start..end];
        let open = &f[..f.find('>').unwrap()];
        let a = open.find(" action=\"").expect("action") + " action=\"".len();
        let action = unescape(&open[a..a + open[a..].find('"').unwrap()]);
        let mut fields = Vec::new();
        let mut rest = f;
        while let Some(i) = rest.find("<input type=\"hidden\" name=\"") {
            rest = &rest[i + "<input type=\"hidden\" name=\"".len()..];
            let name = &rest[..rest.find('"').unwrap()];
            let v = rest.find("value=\"").unwrap() + "value=\"".len();
            let value = unescape(&rest[v..v + rest[v..].find('"').unwrap()]);
            fields.push((name.to_string(), value));
        }
        (action, fields)
    }
    /// The query parameters of the redirect.
    pub fn redirect_params(&self) -> BTreeMap<String, String> {
        let loc = self
            .location()
            .unwrap_or_else(|| panic!("expected a redirect, got {}: {}", self.status, self.html));
        loc.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
    /// Assert this is one of our pages with the clickjacking and caching headers.
    pub fn assert_secure_page(&self) {
        let csp = self.header("content-security-policy").expect("CSP");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(self.header("x-frame-options"), Some("DENY"));
        assert_eq!(self.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(self.html.contains("<html lang=\"en\">"));
        assert!(
            !self.html.contains("http://") || !self.html.contains("<script"),
            "no scripts"
        );
        assert!(!self.html.contains("<script"), "no scripts");
        assert!(!self.html.contains("<link"), "no external stylesheets");
    }
}

/// The value of the first hidden input `name` in `html`.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// An HTTP client with a cookie jar that never follows redirects.
pub struct Browser {
    http: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new() -> Self {
        crate::support::tls();
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }
    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.lock().unwrap().keys().cloned().collect()
    }
    /// Set a cookie by hand (an attacker replaying a stolen value under another name).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }
    /// A second browser with the same cookies (another tab, or an attacker who stole them).
    pub fn clone_jar(&self) -> Self {
        let b = Self::new();
        *b.jar.lock().unwrap() = self.jar.lock().unwrap().clone();
        b
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn finish(&self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for c in headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let first = c.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            let expired = c.contains("Max-Age=0");
            let mut jar = self.jar.lock().unwrap();
            if expired {
                jar.remove(k);
            } else {
                jar.insert(k.to_string(), v.to_string());
            }
        }
        let html = r.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            html,
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        let mut req = self.http.get(url);
        if let Some(c) = self.cookie_header() {
            req = req.header("cookie", c);
        }
        self.finish(req.send().await.expect("GET")).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let mut req = self.http.post(url).form(form);
        if let Some(c) = self.cookie_header() {
            req = req.header("cookie", c);
        }
        self.finish(req.send().await.expect("POST")).await
    }

    /// Submit the form of the button labelled `label` on `page`, as the browser would.
    pub async fn submit(&self, page: &Page, label: &str) -> Page {
        let (action, fields) = page.form(label);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post(&action, &fields).await
    }

    /// Submit the login form on `page`.
    pub async fn login(&self, server: &Server, page: &Page, username: &str, password: &str) -> Page {
        assert!(
            page.has("name=\"password\""),
            "not a login page: {} {}",
            page.status,
            page.html
        );
        let interaction = page.hidden("interaction").unwrap_or_default();
        let csrf = page.hidden("csrf").expect("csrf");
        self.post(
            &page
                .form_action()
                .unwrap_or_else(|| server.url("/oauth2/authorize")),
            &[
                ("action", "login"),
                ("interaction", &interaction),
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Answer the consent page.
    pub async fn consent(&self, server: &Server, page: &Page, decision: &str) -> Page {
        assert!(
            page.has("name=\"decision\""),
            "not a consent page: {} {}",
            page.status,
            page.html
        );
        let interaction = page.hidden("interaction").expect("interaction");
        let csrf = page.hidden("csrf").expect("csrf");
        self.post(
            &page
                .form_action()
                .unwrap_or_else(|| server.url("/oauth2/authorize")),
            &[
                ("action", "consent"),
                ("interaction", &interaction),
                ("csrf", &csrf),
                ("decision", decision),
            ],
        )
        .await
    }
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    use sha2::{Digest, Sha256};
    let raw: [u8; 32] = rand::random();
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce { verifier, challenge }
}

/// A tenant with user `alice`, scopes `api:read`, and a confidential code-flow client.
pub struct World {
    pub tenant: String,
    pub client: TestClient,
    pub sub: String,
}

pub fn user(data: &DataDir, tenant: &str, username: &str) -> String {
    let v = data.cli_stdin(
        &[
            "user",
            "create",
            "--tenant",
            tenant,
            "--username",
            username,
            "--password-stdin",
            "--email",
            &format!("{username}@example.com"),
            "--name",
            &format!("{username} Example"),
        ],
        &format!("{PASSWORD}\n"),
    );
    v["sub"].as_str().expect("sub").to_string()
}

/// Register a code-flow client; `method` `none` makes it public (then `secret` is empty).
pub fn code_client(data: &DataDir, tenant: &str, name: &str, method: &str, extra: &[&str]) -> TestClient {
    let mut args = vec![
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        name,
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid profile email offline_access api:read",
        "--redirect-uri",
        CALLBACK,
        "--auth-method",
        method,
    ];
    args.extend_from_slice(extra);
    let v = data.cli(&args);
    TestClient {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: v["client_secret"].as_str().unwrap_or_default().to_string(),
        registration_token: v["registration_access_token"].as_str().map(str::to_string),
        serves: Vec::new(),
    }
}

pub fn world(data: &DataDir) -> World {
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
    let sub = user(data, &tenant, "alice");
    let client = code_client(data, &tenant, "Acme Notes", "client_secret_basic", &[]);
    World { tenant, client, sub }
}

/// An authorization URL.
pub fn authorize_url(
    server: &Server,
    client_id: &str,
    scope: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut u = url::Url::parse(&server.url("/oauth2/authorize")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", CALLBACK)
            .append_pair("scope", scope)
            .append_pair("state", "st-123")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// Log in and approve: returns the code from the redirect (asserting `state` and `iss`).
pub async fn get_code(b: &Browser, server: &Server, w: &World, scope: &str, p: &Pkce) -> String {
    let page = b
        .get(&authorize_url(
            server,
            &w.client.id,
            scope,
            &p.challenge,
            &[("nonce", "n-1")],
        ))
        .await;
    let page = if page.has("name=\"password\"") {
        b.login(server, &page, "alice", PASSWORD).await
    } else {
        page
    };
    let page = if page.has("name=\"decision\"") {
        b.consent(server, &page, "approve").await
    } else {
        page
    };
    assert_eq!(page.status, 303, "{}", page.html);
    let q = page.redirect_params();
    assert_eq!(q.get("state").map(String::as_str), Some("st-123"));
    assert_eq!(q.get("iss").map(String::as_str), Some(server.issuer.as_str()));
    q.get("code").expect("code").clone()
}

/// Redeem a code (client_secret_basic, or client_id only for a public client).
pub async fn redeem(server: &Server, c: &TestClient, code: &str, verifier: &str) -> Resp {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
        ("client_id", c.id.as_str()),
    ];
    if c.secret.is_empty() {
        post_form(&server.url("/oauth2/token"), None, &form).await
    } else {
        post_form(&server.url("/oauth2/token"), Some((&c.id, &c.secret)), &form).await
    }
}

pub async fn refresh(server: &Server, c: &TestClient, rt: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if c.secret.is_empty() {
        form.push(("client_id", c.id.as_str()));
    }
    form.extend_from_slice(extra);
    let auth = (!c.secret.is_empty()).then_some((c.id.as_str(), c.secret.as_str()));
    post_form(&server.url("/oauth2/token"), auth, &form).await
}

pub async fn userinfo(server: &Server, at: &str) -> Resp {
    Resp::from(
        http()
            .get(server.url("/oauth2/userinfo"))
            .bearer_auth(at)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Introspect with a fresh confidential client of the same tenant.
pub async fn active(server: &Server, caller: &TestClient, token: &str) -> bool {
    introspect(server, caller, token).await["active"] == Value::Bool(true)
}
