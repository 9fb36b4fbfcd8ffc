//! The device authorization grant (RFC 8628) through `http::app` in process: the endpoint's
//! answer, the verification pages as a browser sees them (forms, CSRF tokens, cookies), the
//! token endpoint's polling answers, at the shared issuer and at a tenant's own.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderName, Request};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::tenant::DcrPolicy;
use crate::secret::Secret;
use crate::service::testing::{self, tid};
use crate::service::{clients, tenants, users};

const ISSUER: &str = "http://127.0.0.1:8080";
const PASSWORD: &str = "correct horse battery staple";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

struct H {
    router: Router,
    clock: Arc<ManualClock>,
    client_id: String,
    _dir: tempfile::TempDir,
}

/// Tenant `acme` with user alice and a public device client, "Terminal".
async fn h() -> H {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at(1_800_000_000);
    let app = testing::embedded_app(dir.path(), Config::new(ISSUER).expect("config"), clock.clone());
    tenants::create(&app, "acme", DcrPolicy::Open, None)
        .await
        .unwrap();
    tenants::add_scope(&app, &tid("acme"), "api:read", "Read your notes", None)
        .await
        .unwrap();
    let password = Secret::new(PASSWORD);
    users::create(
        &app,
        users::NewUser {
            tenant: "acme",
            username: "alice",
            password: &password,
            email: None,
            name: None,
            admin: false,
        },
    )
    .await
    .unwrap();
    let meta = json!({
        "client_name": "Terminal",
        "grant_types": [DEVICE_GRANT, "refresh_token"],
        "token_endpoint_auth_method": "none",
        "scope": "openid api:read",
    });
    let reg = clients::create_by_admin(&app, &tid("acme"), &meta, Default::default())
        .await
        .unwrap();
    let router = crate::http::app(app.clone());
    H {
        router,
        clock,
        client_id: reg.client.client_id.into(),
        _dir: dir,
    }
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    #[track_caller]
    fn refused(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.json()["error"].as_str()),
            (status, Some(error)),
            "{}",
            self.body
        );
    }
    fn cookies(&self) -> Vec<String> {
        let set = self.headers.get_all(SET_COOKIE).iter();
        let pairs = set.map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        pairs.filter(|kv| !kv.ends_with('=')).collect()
    }
}

async fn send(h: &H, method: &str, uri: &str, headers: &[(HeaderName, &str)], body: Body) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    let resp = h.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn post(h: &H, uri: &str, jar: &[String], pairs: &[(&str, &str)]) -> Resp {
    let cookie = jar.join("; ");
    let mut headers = vec![(CONTENT_TYPE, "application/x-www-form-urlencoded")];
    if !jar.is_empty() {
        headers.push((COOKIE, cookie.as_str()));
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    send(h, "POST", uri, &headers, Body::from(body)).await
}

async fn get(h: &H, uri: &str, jar: &[String]) -> Resp {
    let cookie = jar.join("; ");
    let headers: Vec<(HeaderName, &str)> = if jar.is_empty() {
        vec![]
    } else {
        vec![(COOKIE, cookie.as_str())]
    };
    send(h, "GET", uri, &headers, Body::empty()).await
}

/// The hidden fields of the page's form, as a browser sends them.
fn hidden(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!(" {name}=\"")).expect("attribute") + name.len() + 3;
        tag[start..start + tag[start..].find('"').unwrap()].to_string()
    };
    let tags = html.split("<input type=\"hidden\"").skip(1);
    let tags = tags.map(|rest| &rest[..rest.find('>').unwrap()]);
    tags.map(|tag| (attr(tag, "name"), attr(tag, "value"))).collect()
}

/// The value the page's `user_code` text field is filled in with.
fn prefilled(html: &str) -> String {
    let at = html.find("id=\"user_code\"").expect("the code field");
    let rest = &html[at..];
    let start = rest.find("value=\"").unwrap() + 7;
    rest[start..start + rest[start..].find('"').unwrap()].to_string()
}

/// The form's hidden fields plus `extra`, posted to `uri` with the cookies so far.
async fn submit(h: &H, uri: &str, jar: &mut Vec<String>, page: &Resp, extra: &[(&str, &str)]) -> Resp {
    let fields = hidden(&page.body);
    let mut pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend_from_slice(extra);
    let r = post(h, uri, jar, &pairs).await;
    jar.extend(r.cookies());
    r
}

async fn poll(h: &H, prefix: &str, device_code: &str) -> Resp {
    let pairs = [
        ("grant_type", DEVICE_GRANT),
        ("device_code", device_code),
        ("client_id", h.client_id.as_str()),
    ];
    post(h, &format!("{prefix}/oauth2/token"), &[], &pairs).await
}

/// Run the device flow at the issuer under `prefix` ("" or "/t/acme"), from the device
/// authorization to the tokens, through the pages.
async fn device_flow(h: &H, prefix: &str, verification_uri: &str) {
    let start = post(
        h,
        &format!("{prefix}/oauth2/device_authorization"),
        &[],
        &[("client_id", &h.client_id), ("scope", "openid api:read")],
    )
    .await;
    assert_eq!(start.status, 200, "{}", start.body);
    assert_eq!(start.headers.get(CACHE_CONTROL).unwrap(), "no-store");
    let d = start.json();
    let (device_code, user_code) = (
        d["device_code"].as_str().unwrap(),
        d["user_code"].as_str().unwrap(),
    );
    assert_eq!(d["verification_uri"], verification_uri);
    let complete = d["verification_uri_complete"].as_str().unwrap();
    assert!(complete.starts_with(verification_uri) && complete.ends_with(&format!("user_code={user_code}")));
    assert_eq!(
        (d["expires_in"].as_i64(), d["interval"].as_i64()),
        (Some(600), Some(5))
    );

    poll(h, prefix, device_code)
        .await
        .refused(400, "authorization_pending");
    poll(h, prefix, device_code).await.refused(400, "slow_down");

    // verification_uri_complete, signed out: sign in first (the code carried along, not looked
    // up), then the code page, filled in, which the user still confirms.
    let path = complete.strip_prefix(ISSUER).unwrap();
    let login = get(h, path, &[]).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("name=\"password\""), "{}", login.body);
    assert!(
        hidden(&login.body).contains(&("user_code".to_string(), user_code.to_string())),
        "{}",
        login.body
    );
    let mut jar = login.cookies();
    let action = format!("{prefix}/device");
    let page = submit(
        h,
        &action,
        &mut jar,
        &login,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(prefilled(&page.body), user_code);
    let confirm = submit(h, &action, &mut jar, &page, &[("user_code", user_code)]).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    for says in [
        user_code,
        "Terminal",
        "Read your notes",
        "started this on your own device",
    ] {
        assert!(confirm.body.contains(says), "{says}: {}", confirm.body);
    }
    let done = submit(h, &action, &mut jar, &confirm, &[("decision", "approve")]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Device connected"), "{}", done.body);

    h.clock.advance(10);
    let tokens = poll(h, prefix, device_code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let t = tokens.json();
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["refresh_token"].is_string() && t["id_token"].is_string(), "{t}");
    h.clock.advance(10);
    poll(h, prefix, device_code).await.refused(400, "invalid_grant");
}

#[tokio::test]
async fn the_device_flow_runs_at_the_shared_issuer() {
    let h = h().await;
    device_flow(&h, "", &format!("{ISSUER}/device?tenant=acme")).await;
}

#[tokio::test]
async fn the_device_flow_runs_at_a_tenant_issuer() {
    let h = h().await;
    device_flow(&h, "/t/acme", &format!("{ISSUER}/t/acme/device")).await;
    // The tenant's own page names no tenant in a field.
    let page = get(&h, "/t/acme/device", &[]).await;
    assert_eq!(page.status, 200);
    assert!(
        hidden(&page.body).iter().all(|(k, _)| k != "tenant"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn discovery_names_the_device_authorization_endpoint_and_the_grant() {
    let h = h().await;
    for (path, issuer) in [
        ("/.well-known/openid-configuration", ISSUER.to_string()),
        (
            "/t/acme/.well-known/oauth-authorization-server",
            format!("{ISSUER}/t/acme"),
        ),
    ] {
        let doc = get(&h, path, &[]).await.json();
        assert_eq!(
            doc["device_authorization_endpoint"],
            format!("{issuer}/oauth2/device_authorization")
        );
        let grants = doc["grant_types_supported"].as_array().unwrap();
        assert!(grants.contains(&json!(DEVICE_GRANT)), "{doc}");
    }
}

#[tokio::test]
async fn the_endpoint_refuses_clients_that_are_not_its_own() {
    let h = h().await;
    let r = post(&h, "/oauth2/device_authorization", &[], &[("scope", "openid")]).await;
    r.refused(401, "invalid_client");
    let r = post(
        &h,
        "/oauth2/device_authorization",
        &[],
        &[("client_id", "nobody")],
    )
    .await;
    r.refused(401, "invalid_client");
    let r = post(
        &h,
        "/oauth2/device_authorization",
        &[],
        &[("client_id", &h.client_id), ("scope", "api:write")],
    )
    .await;
    r.refused(400, "invalid_scope");
}

#[tokio::test]
async fn the_verification_page_refuses_on_its_own_page_and_never_redirects() {
    let h = h().await;
    let login = get(&h, "/device?tenant=acme", &[]).await;
    assert_eq!(login.status, 200);
    let mut jar = login.cookies();
    // Signed out, a typed code is not looked up: the sign-in form comes first.
    let csrf = hidden(&login.body)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v)
        .unwrap();
    let r = post(
        &h,
        "/device",
        &jar,
        &[
            ("action", "code"),
            ("tenant", "acme"),
            ("user_code", "BBBB-BBBB"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("name=\"password\""), "{}", r.body);
    let page = submit(
        &h,
        "/device",
        &mut jar,
        &login,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(prefilled(&page.body), "");
    // Decisions and credentials never come in a URL.
    let r = get(&h, "/device?tenant=acme&action=decide&decision=approve", &jar).await;
    assert_eq!(r.status, 400);
    // A wrong code: our error page, no redirect.
    let wrong = submit(&h, "/device", &mut jar, &page, &[("user_code", "BBBB-BBBB")]).await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.headers.get(LOCATION).is_none());
    assert!(wrong.body.contains("not valid"), "{}", wrong.body);
    // A form without this browser's token.
    let r = post(
        &h,
        "/device",
        &jar,
        &[
            ("action", "code"),
            ("tenant", "acme"),
            ("user_code", "BBBB-BBBB"),
            ("csrf", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("expired"), "{}", r.body);
    // A tenant nobody serves.
    assert_eq!(get(&h, "/device?tenant=nobody", &[]).await.status, 404);
    assert_eq!(get(&h, "/device", &[]).await.status, 404);
}

#[tokio::test]
async fn a_denied_code_is_access_denied_with_400_once() {
    let h = h().await;
    let start = post(
        &h,
        "/oauth2/device_authorization",
        &[],
        &[("client_id", &h.client_id)],
    )
    .await;
    let d = start.json();
    let (device_code, user_code) = (
        d["device_code"].as_str().unwrap(),
        d["user_code"].as_str().unwrap(),
    );
    let login = get(&h, "/device?tenant=acme", &[]).await;
    let mut jar = login.cookies();
    let page = submit(
        &h,
        "/device",
        &mut jar,
        &login,
        &[("username", "alice"), ("password", PASSWORD)],
    )
    .await;
    let confirm = submit(&h, "/device", &mut jar, &page, &[("user_code", user_code)]).await;
    let done = submit(&h, "/device", &mut jar, &confirm, &[("decision", "deny")]).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Request denied"), "{}", done.body);
    poll(&h, "", device_code).await.refused(400, "access_denied");
    poll(&h, "", device_code).await.refused(400, "invalid_grant");
}
