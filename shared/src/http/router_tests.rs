//! Every router in `http`, in process through `http::app` (tower's `oneshot`, no socket): what a
//! real client relies on at each endpoint (discovery, JWKS, registration, token, introspection,
//! revocation, authorization, userinfo, the account page, the admin API and the console),
//! including the refusals: their status codes, bodies and challenges.

use crate::service::testing::tid;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, PRAGMA, SET_COOKIE, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderName, Request};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::access::Denied;
use crate::domain::authorize::UntrustedRedirect;
use crate::domain::tenant::DcrPolicy;
use crate::secret::Secret;
use crate::service::authorize::{LoginRequest, Outcome, PageRefusal};
use crate::service::cimd;
use crate::service::testing;
use crate::service::users::LoginFailure;
use crate::service::{App, clients, tenants, users};

const ISSUER: &str = "http://127.0.0.1:8080";
const CB: &str = "https://app.example/cb";
const PASSWORD: &str = "correct horse battery staple";
const TOKEN: &str = "/oauth2/token";
const INTROSPECT: &str = "/oauth2/introspect";
const REVOKE: &str = "/oauth2/revoke";
const CC: (&str, &str) = ("grant_type", "client_credentials");

type Headers<'a> = [(HeaderName, &'a str)];

struct H {
    app: Arc<App>,
    router: Router,
    _dir: tempfile::TempDir,
}

/// Tenant `acme` (open registration, scope `api:read`), nobody in it yet.
async fn h() -> H {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at(1_800_000_000);
    let config = Config::new(ISSUER).expect("config");
    let app = testing::embedded_app(dir.path(), config, clock);
    let created = tenants::create(&app, "acme", DcrPolicy::Open, None).await;
    created.unwrap();
    let added = tenants::add_scope(&app, &tid("acme"), "api:read", "Read", None).await;
    added.unwrap();
    let router = crate::http::app(app.clone());
    H {
        app,
        router,
        _dir: dir,
    }
}

/// User alice of acme: her `sub`.
async fn alice(h: &H) -> String {
    let password = Secret::new(PASSWORD);
    let new = users::NewUser {
        tenant: "acme",
        username: "alice",
        password: &password,
        email: None,
        name: None,
        admin: false,
    };
    (users::create(&h.app, new).await.expect("user").sub).into()
}

/// An operator-made machine client of acme.
struct Machine {
    id: String,
    /// Its `Authorization: Basic` header value.
    basic: String,
}

impl Machine {
    fn auth(&self) -> [(HeaderName, &str); 1] {
        [(AUTHORIZATION, self.basic.as_str())]
    }
}

/// A machine client that may ask for `scope`.
async fn machine(h: &H, scope: &str) -> Machine {
    let meta = json!({"client_name": "Pipeline", "grant_types": ["client_credentials"], "scope": scope});
    let reg = clients::create_by_admin(&h.app, &tid("acme"), &meta, Default::default()).await;
    let reg = reg.expect("client");
    let secret = reg.secret.expect("a confidential client has a secret");
    let id = reg.client.client_id;
    let basic = basic(&id, secret.expose());
    Machine { id: id.into(), basic }
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// What came back.
struct Resp {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    fn header(&self, name: HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    /// An RFC 6749 §5.2 error response with this status and `error`.
    #[track_caller]
    fn refused(&self, status: u16, error: &str) {
        assert_eq!(
            (self.status, self.json()["error"].as_str()),
            (status, Some(error)),
            "{}",
            self.body
        );
    }
    /// Whether header `name` is there and contains `part`.
    fn has(&self, name: HeaderName, part: &str) -> bool {
        self.header(name).is_some_and(|v| v.contains(part))
    }
    /// Whether it redirects to somewhere starting with `prefix`.
    fn redirects_to(&self, prefix: &str) -> bool {
        self.header(LOCATION).is_some_and(|l| l.starts_with(prefix))
    }
    /// Whether it sets a cookie named `name`.
    fn sets(&self, name: &str) -> bool {
        self.cookies().iter().any(|c| c.starts_with(&format!("{name}=")))
    }
    /// The cookies it sets, as a `Cookie` header sends them (cleared ones left out).
    fn cookies(&self) -> Vec<String> {
        let set = self.headers.get_all(SET_COOKIE).iter();
        let pairs = set.map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        pairs.filter(|kv| !kv.ends_with('=')).collect()
    }
    /// The query parameters of the `Location` it redirects to.
    fn location_query(&self) -> HashMap<String, String> {
        let to = url::Url::parse(self.header(LOCATION).expect("a redirect")).unwrap();
        to.query_pairs().into_owned().collect()
    }
}

async fn send(h: &H, method: &str, uri: &str, headers: &Headers<'_>, body: Body) -> Resp {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    let resp = h.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(h: &H, uri: &str, headers: &Headers<'_>) -> Resp {
    send(h, "GET", uri, headers, Body::empty()).await
}

/// POST `pairs` as an `application/x-www-form-urlencoded` body.
async fn post(h: &H, uri: &str, headers: &Headers<'_>, pairs: &[(&str, &str)]) -> Resp {
    let mut all = vec![(CONTENT_TYPE, "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    let mut body = form_urlencoded::Serializer::new(String::new());
    let body = body.extend_pairs(pairs).finish();
    send(h, "POST", uri, &all, Body::from(body)).await
}

/// `POST /oauth2/register` of `metadata` with these headers (and a JSON content type).
async fn register(h: &H, headers: &Headers<'_>, metadata: Value) -> Resp {
    let mut all = vec![(CONTENT_TYPE, "application/json")];
    all.extend_from_slice(headers);
    let body = Body::from(metadata.to_string());
    send(h, "POST", "/oauth2/register", &all, body).await
}

/// Registration into acme, without an initial access token.
fn into_acme() -> [(HeaderName, &'static str); 1] {
    [(HeaderName::from_static(super::TENANT_HEADER), "acme")]
}

/// A client-credentials access token of `m` for `scope`.
async fn cc_token(h: &H, m: &Machine, scope: &str) -> String {
    let r = post(h, TOKEN, &m.auth(), &[CC, ("scope", scope)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// `POST /oauth2/introspect` of `token` by `m`.
async fn introspect(h: &H, m: &Machine, token: &str) -> Value {
    let r = post(h, INTROSPECT, &m.auth(), &[("token", token)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header(CACHE_CONTROL), Some("no-store"));
    r.json()
}

/// The hidden fields of the page's forms, as a browser sends them.
fn hidden(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let start = tag.find(&format!(" {name}=\"")).expect("attribute") + name.len() + 3;
        tag[start..start + tag[start..].find('"').unwrap()].to_string()
    };
    let tags = html.split("<input type=\"hidden\"").skip(1);
    let tags = tags.map(|rest| &rest[..rest.find('>').unwrap()]);
    tags.map(|tag| (attr(tag, "name"), attr(tag, "value"))).collect()
}

fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

// ---- discovery and keys ---------------------------------------------------------------------

#[tokio::test]
async fn discovery_names_the_configured_issuer_and_its_endpoints() {
    let h = h().await;
    let well_known = "/.well-known/oauth-authorization-server";
    for path in ["/.well-known/openid-configuration", well_known] {
        let r = get(&h, path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header(CONTENT_TYPE), Some("application/json"));
        let doc = r.json();
        assert_eq!(doc["issuer"], ISSUER, "{path}");
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}/oauth2/token"));
        assert_eq!(doc["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    }
}

#[tokio::test]
async fn discovery_at_a_tenant_issuer_names_that_issuer_and_no_unknown_one() {
    let h = h().await;
    let tenant_issuer = format!("{ISSUER}/t/acme");
    for path in [
        "/t/acme/.well-known/openid-configuration",
        "/t/acme/.well-known/oauth-authorization-server",
        // RFC 8414 §3.1 path insertion.
        "/.well-known/oauth-authorization-server/t/acme",
    ] {
        let r = get(&h, path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let doc = r.json();
        assert_eq!(doc["issuer"], tenant_issuer, "{path}");
        assert_eq!(doc["token_endpoint"], format!("{tenant_issuer}/oauth2/token"));
    }
    for path in [
        "/t/nobody/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/t/nobody",
    ] {
        assert_eq!(get(&h, path, &[]).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn jwks_publishes_the_public_key_that_signs_access_tokens() {
    let h = h().await;
    let r = get(&h, "/.well-known/jwks.json", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let keys = r.json()["keys"].as_array().expect("keys").clone();
    assert!(!keys.is_empty());
    for k in &keys {
        assert_eq!((&k["kty"], &k["crv"]), (&json!("EC"), &json!("P-256")), "{k}");
        assert!(k.get("d").is_none(), "a private key is published: {k}");
    }
    // A resource server finds the key of a token by its `kid`.
    let token = cc_token(&h, &machine(&h, "api:read").await, "api:read").await;
    let head = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    let head: Value = serde_json::from_slice(&head).unwrap();
    assert_eq!(head["alg"], "ES256");
    assert!(keys.iter().any(|k| k["kid"] == head["kid"]), "{head}");
}

// ---- registration -----------------------------------------------------------------------------

fn spa() -> Value {
    json!({"client_name": "SPA", "redirect_uris": [CB], "token_endpoint_auth_method": "none",
           "grant_types": ["authorization_code"], "scope": "openid profile"})
}

#[tokio::test]
async fn register_opens_a_public_client_without_a_secret() {
    let h = h().await;
    let r = register(&h, &into_acme(), spa()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header(CACHE_CONTROL), Some("no-store"));
    let body = r.json();
    let id = body["client_id"].as_str().expect("client_id");
    assert!(body.get("client_secret").is_none(), "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["redirect_uris"], json!([CB]));
    assert!(body["registration_access_token"].is_string(), "{body}");
    assert!(testing::client(&h.app, id).await.is_some(), "stored");
}

#[tokio::test]
async fn register_refuses_a_secret_client_without_an_initial_access_token() {
    let h = h().await;
    let batch = json!({"client_name": "Batch", "grant_types": ["client_credentials"]});
    let r = register(&h, &into_acme(), batch).await;
    r.refused(400, "invalid_client_metadata");
    assert!(r.json()["error_description"].is_string());
    // Nor is anything registered without a tenant to register into.
    register(&h, &[], spa()).await.refused(400, "invalid_request");
}

// ---- token, introspection, revocation ------------------------------------------------------

#[tokio::test]
async fn token_issues_a_client_credentials_token_that_is_never_cached() {
    let h = h().await;
    let m = machine(&h, "api:read").await;
    let r = post(&h, TOKEN, &m.auth(), &[CC]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header(CACHE_CONTROL), Some("no-store"));
    assert_eq!(r.header(PRAGMA), Some("no-cache"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    let jwt = body["access_token"].as_str().map(|t| t.split('.').count());
    assert_eq!(jwt, Some(3), "{body}");
    assert!(body["expires_in"].as_i64().is_some_and(|s| s > 0), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
}

#[tokio::test]
async fn token_refuses_a_wrong_secret_with_a_challenge() {
    let h = h().await;
    let m = machine(&h, "api:read").await;
    let wrong = basic(&m.id, "not-the-secret");
    let r = post(&h, TOKEN, &[(AUTHORIZATION, &wrong)], &[CC]).await;
    r.refused(401, "invalid_client");
    assert!(r.has(WWW_AUTHENTICATE, "Basic "), "RFC 6749 §5.2");
}

#[tokio::test]
async fn token_refuses_an_unknown_grant_type_and_a_body_that_is_not_a_form() {
    let h = h().await;
    let m = machine(&h, "api:read").await;
    let r = post(&h, TOKEN, &m.auth(), &[("grant_type", "magic")]).await;
    r.refused(400, "unsupported_grant_type");
    let json = [
        (AUTHORIZATION, m.basic.as_str()),
        (CONTENT_TYPE, "application/json"),
    ];
    let body = Body::from(r#"{"grant_type":"client_credentials"}"#);
    send(&h, "POST", TOKEN, &json, body)
        .await
        .refused(400, "invalid_request");
    get(&h, TOKEN, &[]).await.refused(405, "method_not_allowed");
}

#[tokio::test]
async fn introspect_describes_a_clients_own_token_and_nothing_else() {
    let h = h().await;
    let r = post(&h, INTROSPECT, &[], &[("token", "anything")]).await;
    r.refused(401, "invalid_client");
    assert!(r.has(WWW_AUTHENTICATE, "Basic "), "{:?}", r.headers);
    let (m, other) = (machine(&h, "api:read").await, machine(&h, "api:read").await);
    let inactive = json!({"active": false});
    assert_eq!(introspect(&h, &m, "garbage.not.jwt").await, inactive);
    assert_eq!(introspect(&h, &m, "opaque-garbage").await, inactive);
    let token = cc_token(&h, &m, "api:read").await;
    let own = introspect(&h, &m, &token).await;
    assert_eq!(own["active"], true, "{own}");
    assert_eq!(
        (&own["client_id"], &own["scope"]),
        (&json!(m.id), &json!("api:read"))
    );
    assert_eq!(own["iss"], ISSUER);
    // Another client (no resource server of its audience) learns nothing of it.
    assert_eq!(introspect(&h, &other, &token).await, inactive);
}

#[tokio::test]
async fn revoke_answers_200_for_an_unknown_token_and_ends_a_known_one() {
    let h = h().await;
    let m = machine(&h, "api:read").await;
    let r = post(&h, REVOKE, &m.auth(), &[("token", "no-such-token")]).await;
    assert_eq!(r.status, 200, "RFC 7009 §2.2: {}", r.body);
    let token = cc_token(&h, &m, "api:read").await;
    assert_eq!(introspect(&h, &m, &token).await["active"], true);
    let r = post(&h, REVOKE, &m.auth(), &[("token", &token)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(introspect(&h, &m, &token).await, json!({"active": false}));
    let r = post(&h, REVOKE, &[], &[("token", &token)]).await;
    r.refused(401, "invalid_client");
}

// ---- authorization and userinfo -------------------------------------------------------------

/// A public client of acme registered over DCR with redirect URI `CB`: its id.
async fn public_client(h: &H) -> String {
    let r = register(h, &into_acme(), spa()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["client_id"].as_str().unwrap().to_string()
}

fn authorize_url(client_id: &str, redirect_uri: &str, challenge: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.extend_pairs([("response_type", "code"), ("client_id", client_id)]);
    q.extend_pairs([("redirect_uri", redirect_uri), ("scope", "openid profile")]);
    q.append_pair("state", "st-1");
    if let Some(c) = challenge {
        q.extend_pairs([("code_challenge", c), ("code_challenge_method", "S256")]);
    }
    format!("/oauth2/authorize?{}", q.finish())
}

#[tokio::test]
async fn authorize_shows_an_error_page_for_an_unknown_client() {
    let h = h().await;
    let url = authorize_url("no-such-client", CB, Some(&"a".repeat(43)));
    let r = get(&h, &url, &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.has(CONTENT_TYPE, "text/html"), "{:?}", r.headers);
    assert!(r.header(LOCATION).is_none(), "never a redirect");
    assert!(r.body.contains("not registered"), "{}", r.body);
}

#[tokio::test]
async fn authorize_never_redirects_to_an_unregistered_redirect_uri() {
    let h = h().await;
    let id = public_client(&h).await;
    let evil = ["https://evil.example/cb", "https://app.example/cb/../x"];
    for evil in [evil[0], evil[1], "https://app.example.evil/cb"] {
        let r = get(&h, &authorize_url(&id, evil, Some(&"a".repeat(43))), &[]).await;
        assert_eq!(r.status, 400, "{evil}: {}", r.body);
        let (html, redirect) = (r.has(CONTENT_TYPE, "text/html"), r.header(LOCATION));
        assert!(html && redirect.is_none(), "{evil}: {redirect:?}");
    }
}

#[tokio::test]
async fn authorize_sends_a_request_without_pkce_back_to_the_client_with_an_error() {
    let h = h().await;
    let id = public_client(&h).await;
    let r = get(&h, &authorize_url(&id, CB, None), &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.redirects_to(&format!("{CB}?")), "{:?}", r.headers);
    let q = r.location_query();
    assert_eq!((&*q["error"], &*q["state"]), ("invalid_request", "st-1"));
    assert_eq!(q["iss"], ISSUER, "RFC 9207");
    assert!(!q.contains_key("code"));
}

/// The whole authorization code flow, as a browser and a public client run it: the login page,
/// consent, the code at the redirect URI, the token endpoint with PKCE, then userinfo.
#[tokio::test]
async fn the_code_flow_signs_a_user_in_and_userinfo_names_them() {
    let h = h().await;
    let sub = alice(&h).await;
    let id = public_client(&h).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));

    let login = get(&h, &authorize_url(&id, CB, Some(&challenge)), &[]).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let mut jar = login.cookies();
    let fields = hidden(&login.body);
    let mut fields = pairs(&fields);
    fields.extend([("username", "alice"), ("password", PASSWORD)]);
    let consent = post(&h, "/oauth2/authorize", &[(COOKIE, &jar.join("; "))], &fields).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Allow"), "{}", consent.body);
    jar.extend(consent.cookies());
    let fields = hidden(&consent.body);
    let mut fields = pairs(&fields);
    fields.push(("decision", "approve"));
    let back = post(&h, "/oauth2/authorize", &[(COOKIE, &jar.join("; "))], &fields).await;
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(back.redirects_to(&format!("{CB}?")), "{:?}", back.headers);
    let q = back.location_query();
    assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("st-1", ISSUER));

    let code = [("grant_type", "authorization_code"), ("code", q["code"].as_str())];
    let client = [
        ("redirect_uri", CB),
        ("client_id", id.as_str()),
        ("code_verifier", verifier),
    ];
    let redeem = [&code[..], &client[..]].concat();
    let r = post(&h, TOKEN, &[], &redeem).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tokens = r.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let r = get(&h, "/oauth2/userinfo", &[(AUTHORIZATION, &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = r.json();
    assert_eq!(
        (&me["sub"], &me["preferred_username"]),
        (&json!(sub), &json!("alice"))
    );

    // A code is used once; its replay ends what it gave (RFC 6749 §4.1.2).
    post(&h, TOKEN, &[], &redeem).await.refused(400, "invalid_grant");
    let r = get(&h, "/oauth2/userinfo", &[(AUTHORIZATION, &bearer)]).await;
    r.refused(401, "invalid_token");
}

#[tokio::test]
async fn userinfo_challenges_a_request_without_a_user_token() {
    let h = h().await;
    let r = get(&h, "/oauth2/userinfo", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.has(WWW_AUTHENTICATE, "Bearer "), "RFC 6750 §3: {:?}", r.headers);
    // No credentials at all: the challenge carries no error code (RFC 6750 §3.1).
    assert!(!r.has(WWW_AUTHENTICATE, "error="), "{:?}", r.headers);
    // A machine token names no user.
    let token = cc_token(&h, &machine(&h, "api:read").await, "api:read").await;
    let bearer = format!("Bearer {token}");
    let r = get(&h, "/oauth2/userinfo", &[(AUTHORIZATION, &bearer)]).await;
    r.refused(401, "invalid_token");
    assert!(r.has(WWW_AUTHENTICATE, "error=\"invalid_token\""));
}

// ---- the authorization pages' words -----------------------------------------------------------

/// `text` as the templates escape it.
fn escaped(text: &str) -> String {
    let pairs = [
        ("&", "&#38;"),
        ("<", "&#60;"),
        (">", "&#62;"),
        ("\"", "&#34;"),
        ("'", "&#39;"),
    ];
    pairs
        .iter()
        .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

/// What the user is told for each refusal, and with which status: the words the e2e and
/// browser tests look for. The match is exhaustive: a new refusal does not compile until it has
/// its row here (and its words in `pages::refusal`).
fn refusal_row(why: PageRefusal) -> (u16, &'static str) {
    match why {
        PageRefusal::NoClientId => (
            400,
            "The request does not name an application (client_id is missing).",
        ),
        PageRefusal::UnknownClient => (400, "The application that sent you here is not registered."),
        PageRefusal::Document(cimd::Refused::NotAccepted) => (
            400,
            "The application that sent you here identifies itself by a web address this organization does not accept.",
        ),
        PageRefusal::Document(cimd::Refused::Unavailable) => (
            400,
            "The application's description could not be loaded or is not valid. Try again later, or contact the application's developer.",
        ),
        PageRefusal::RedirectUri(UntrustedRedirect::NotRegistered) => {
            (400, "The redirect_uri is not one this application registered.")
        }
        PageRefusal::RedirectUri(UntrustedRedirect::Missing) => (
            400,
            "The request has no redirect_uri, and the application registered several.",
        ),
        PageRefusal::RequestExpired => (
            400,
            "This sign-in request has expired or was already answered. Go back to the application and start again.",
        ),
        PageRefusal::SessionEnded => (
            400,
            "Your session ended. Go back to the application and sign in again.",
        ),
        PageRefusal::NoDecision => (400, "Choose Allow or Deny."),
        PageRefusal::ClientGone => (400, "The application that sent you here is no longer registered."),
        PageRefusal::RegistrationChanged => (
            400,
            "The application changed its registration since this request began. Go back to the application and start again.",
        ),
        PageRefusal::NotPermitted(Denied::NotOnAllowlist) => {
            (403, "This app has not been approved by your administrator.")
        }
        PageRefusal::NotPermitted(Denied::NotAuthorizedUser) => {
            (403, "Your administrator has not allowed you to use this app.")
        }
        PageRefusal::NotPermitted(Denied::NotAdministrator) => (
            403,
            "Only this organization's administrators can sign in to the Connected Apps console.",
        ),
        PageRefusal::PushedRequestUnusable => (
            400,
            "This sign-in request has expired, was already used, or was not made for this application. Go back to the application and start again.",
        ),
        PageRefusal::PushedRequestRequired => (
            400,
            "This application must send its sign-in request to the server directly (a pushed authorization request). Contact the application's developer.",
        ),
    }
}

/// Every refusal, one of each (the rows of [`refusal_row`]).
const EVERY_REFUSAL: [PageRefusal; 16] = [
    PageRefusal::NoClientId,
    PageRefusal::UnknownClient,
    PageRefusal::Document(cimd::Refused::NotAccepted),
    PageRefusal::Document(cimd::Refused::Unavailable),
    PageRefusal::RedirectUri(UntrustedRedirect::NotRegistered),
    PageRefusal::RedirectUri(UntrustedRedirect::Missing),
    PageRefusal::RequestExpired,
    PageRefusal::SessionEnded,
    PageRefusal::NoDecision,
    PageRefusal::ClientGone,
    PageRefusal::RegistrationChanged,
    PageRefusal::NotPermitted(Denied::NotOnAllowlist),
    PageRefusal::NotPermitted(Denied::NotAuthorizedUser),
    PageRefusal::NotPermitted(Denied::NotAdministrator),
    PageRefusal::PushedRequestUnusable,
    PageRefusal::PushedRequestRequired,
];

/// A flow step as the authorization endpoint renders it.
async fn rendered(h: &H, outcome: Outcome) -> Resp {
    let resp = crate::http::browser::render(&h.app, outcome.into(), &Secret::new("browser"));
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn every_authorization_refusal_renders_its_sentence_and_status() {
    let h = h().await;
    let mut seen = Vec::new();
    for why in EVERY_REFUSAL {
        let (status, sentence) = refusal_row(why);
        let r = rendered(&h, Outcome::Refused(why)).await;
        assert_eq!(r.status, status, "{why:?}: {}", r.body);
        assert!(r.has(CONTENT_TYPE, "text/html"), "{why:?}: {:?}", r.headers);
        assert!(r.header(LOCATION).is_none(), "{why:?}: never a redirect");
        assert!(r.body.contains(&escaped(sentence)), "{why:?}: {}", r.body);
        seen.push(sentence);
    }
    // One sentence per refusal: none says what another says.
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), EVERY_REFUSAL.len(), "{seen:?}");
}

#[tokio::test]
async fn every_login_failure_renders_its_sentence_with_401() {
    let h = h().await;
    let failures = [
        (
            LoginFailure::BadCredentials,
            "The username or password is incorrect.",
        ),
        (
            LoginFailure::Locked { retry_after: 1 },
            "Too many failed sign-in attempts for this account. Try again in 1 minute.",
        ),
        (
            LoginFailure::Locked { retry_after: 60 },
            "Too many failed sign-in attempts for this account. Try again in 1 minute.",
        ),
        (
            LoginFailure::Locked { retry_after: 61 },
            "Too many failed sign-in attempts for this account. Try again in 2 minutes.",
        ),
    ];
    let login = |failure| {
        Outcome::NeedLogin(LoginRequest {
            pending_id: "p1".into(),
            client_name: Some("SPA".into()),
            username: "alice".into(),
            failure,
            redirect_uri: CB.into(),
        })
    };
    for (failure, sentence) in failures {
        // The exhaustive match: a new failure does not compile until it is listed above.
        match failure {
            LoginFailure::BadCredentials | LoginFailure::Locked { .. } => {}
        }
        let r = rendered(&h, login(Some(failure))).await;
        assert_eq!(r.status, 401, "{failure:?}: {}", r.body);
        assert!(r.body.contains(&escaped(sentence)), "{failure:?}: {}", r.body);
        assert!(r.body.contains("role=\"alert\""), "{}", r.body);
        // The form may answer with a 303 to the client: its origin is a form-action.
        let csp = r.header(axum::http::header::CONTENT_SECURITY_POLICY).unwrap();
        assert!(csp.contains("form-action 'self' https://app.example;"), "{csp}");
    }
    let first = rendered(&h, login(None)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(!first.body.contains("role=\"alert\""), "{}", first.body);
}

/// The refusals a stranger can reach at the endpoint, through the router.
#[tokio::test]
async fn authorize_refusals_reach_the_browser_in_their_words() {
    let h = h().await;
    let check = |r: Resp, why: PageRefusal| {
        let (status, sentence) = refusal_row(why);
        assert_eq!(r.status, status, "{why:?}: {}", r.body);
        assert!(r.body.contains(&escaped(sentence)), "{why:?}: {}", r.body);
    };
    let challenge = "a".repeat(43);
    let r = get(&h, "/oauth2/authorize?response_type=code", &[]).await;
    check(r, PageRefusal::NoClientId);
    let r = get(&h, &authorize_url("no-such-client", CB, Some(&challenge)), &[]).await;
    check(r, PageRefusal::UnknownClient);
    let id = public_client(&h).await;
    let evil = authorize_url(&id, "https://evil.example/cb", Some(&challenge));
    check(
        get(&h, &evil, &[]).await,
        PageRefusal::RedirectUri(UntrustedRedirect::NotRegistered),
    );
    let mut two = spa();
    two["redirect_uris"] = json!([CB, "https://app.example/other"]);
    let r = register(&h, &into_acme(), two).await;
    let two = r.json()["client_id"].as_str().unwrap().to_string();
    let url = authorize_url(&two, CB, Some(&challenge)).replace(&format!("&redirect_uri={}", enc(CB)), "");
    check(
        get(&h, &url, &[]).await,
        PageRefusal::RedirectUri(UntrustedRedirect::Missing),
    );
    // A form answering a request that does not exist (or not this browser's).
    let form = [("action", "login"), ("interaction", "nope"), ("csrf", "x")];
    let r = post(&h, "/oauth2/authorize", &[(COOKIE, "bulwark_bid=b")], &form).await;
    check(r, PageRefusal::RequestExpired);

    // A wrong password: the login form again, in its words.
    alice(&h).await;
    let login = get(&h, &authorize_url(&id, CB, Some(&challenge)), &[]).await;
    let jar = login.cookies().join("; ");
    let fields = hidden(&login.body);
    let mut fields = pairs(&fields);
    fields.extend([("username", "alice"), ("password", "wrong")]);
    let again = post(&h, "/oauth2/authorize", &[(COOKIE, &jar)], &fields).await;
    assert_eq!(again.status, 401, "{}", again.body);
    assert!(
        again.body.contains("The username or password is incorrect."),
        "{}",
        again.body
    );
    assert!(again.body.contains("value=\"alice\""), "{}", again.body);
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- the account page, the admin API, the console ----------------------------------------

#[tokio::test]
async fn account_offers_a_login_form_that_signs_the_user_in() {
    let h = h().await;
    alice(&h).await;
    let page = get(&h, "/account?tenant=acme", &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.has(CONTENT_TYPE, "text/html"));
    let action = format!("action=\"{ISSUER}/account/login\"");
    assert!(page.body.contains(&action), "{}", page.body);
    let fields = hidden(&page.body);
    let csrf = fields.iter().any(|(k, v)| k == "csrf" && !v.is_empty());
    assert!(csrf, "{fields:?}");
    let mut fields = pairs(&fields);
    fields.extend([("username", "alice"), ("password", PASSWORD)]);

    // The CSRF token is bound to the browser: another browser's post of the form is refused.
    let forged = post(&h, "/account/login", &[(COOKIE, "bulwark_bid=other")], &fields).await;
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(!forged.sets("bulwark_session_acme"));

    let browser = page.cookies().join("; ");
    let done = post(&h, "/account/login", &[(COOKIE, &browser)], &fields).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let account = format!("{ISSUER}/account?tenant=acme");
    assert_eq!(done.header(LOCATION), Some(&*account));
    assert!(done.sets("bulwark_session_acme"), "{:?}", done.headers);
    let session = done.cookies().join("; ");
    let signed_in = get(&h, "/account?tenant=acme", &[(COOKIE, &session)]).await;
    assert_eq!(signed_in.status, 200);
    assert!(signed_in.body.contains("Connected apps"), "{}", signed_in.body);
    assert_eq!(get(&h, "/account?tenant=nobody", &[]).await.status, 404);
}

#[tokio::test]
async fn admin_api_challenges_without_a_token_and_forbids_a_non_admin_token() {
    let h = h().await;
    let r = get(&h, "/admin/v1/clients", &[]).await;
    assert_eq!((r.status, &r.json()["status"]), (401, &json!(401)), "{}", r.body);
    assert_eq!(r.header(CONTENT_TYPE), Some("application/problem+json"));
    assert!(r.has(WWW_AUTHENTICATE, "Bearer "), "{:?}", r.headers);

    let m = machine(&h, "api:read").await;
    let bearer = format!("Bearer {}", cc_token(&h, &m, "api:read").await);
    let r = get(&h, "/admin/v1/clients", &[(AUTHORIZATION, &bearer)]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.header(CONTENT_TYPE), Some("application/problem+json"));
    assert!(r.has(WWW_AUTHENTICATE, "insufficient_scope"), "{:?}", r.headers);

    let admin_scope = crate::domain::client::ADMIN_SCOPE;
    let ops = machine(&h, admin_scope).await;
    let bearer = format!("Bearer {}", cc_token(&h, &ops, admin_scope).await);
    let r = get(&h, "/admin/v1/clients", &[(AUTHORIZATION, &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let listed = r.json()["items"].as_array().unwrap().clone();
    let ids: Vec<&str> = listed.iter().filter_map(|c| c["client_id"].as_str()).collect();
    assert!(ids.contains(&&*m.id) && ids.contains(&&*ops.id), "{ids:?}");
}

/// An `Authorization` header value for acme's admin API.
async fn admin_bearer(h: &H) -> String {
    let admin_scope = crate::domain::client::ADMIN_SCOPE;
    let ops = machine(h, admin_scope).await;
    format!("Bearer {}", cc_token(h, &ops, admin_scope).await)
}

/// An admin API call with `bearer`, with `body` (if any) as JSON.
async fn admin(h: &H, bearer: &str, method: &str, uri: &str, body: Option<Value>) -> Resp {
    match body {
        Some(b) => {
            let headers = [(AUTHORIZATION, bearer), (CONTENT_TYPE, "application/json")];
            send(h, method, uri, &headers, Body::from(b.to_string())).await
        }
        None => send(h, method, uri, &[(AUTHORIZATION, bearer)], Body::empty()).await,
    }
}

impl Resp {
    /// A 400 problem (RFC 9457) whose `field` is `field`, in the shape every problem has.
    #[track_caller]
    fn refused_field(&self, field: &str) {
        assert_eq!(self.status, 400, "{}", self.body);
        assert_eq!(self.header(CONTENT_TYPE), Some("application/problem+json"));
        let p = self.json();
        let mut members: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["detail", "field", "status", "title", "type"], "{p}");
        assert_eq!(
            (p["type"].as_str(), p["status"].as_u64(), p["field"].as_str()),
            (
                Some("urn:bulwark:problem:invalid-request"),
                Some(400),
                Some(field)
            ),
            "{p}"
        );
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    }
}

fn pipeline() -> Value {
    json!({"client_name": "Pipeline", "grant_types": ["client_credentials"], "scope": "api:read"})
}

#[tokio::test]
async fn admin_api_refuses_an_unknown_field_and_names_it() {
    let h = h().await;
    let bearer = admin_bearer(&h).await;
    let clients = admin(&h, &bearer, "GET", "/admin/v1/clients", None).await.json()["items"].clone();

    // A misspelt field of a client is not metadata to ignore: nothing is created.
    let mut typo = pipeline();
    typo["first_partie"] = json!(true);
    let r = admin(&h, &bearer, "POST", "/admin/v1/clients", Some(typo)).await;
    r.refused_field("first_partie");
    let after = admin(&h, &bearer, "GET", "/admin/v1/clients", None).await.json()["items"].clone();
    assert_eq!(after, clients);
    let mut nested = pipeline();
    nested["authorized_users"] = json!({"users": [], "teams": []});
    let r = admin(&h, &bearer, "POST", "/admin/v1/clients", Some(nested)).await;
    r.refused_field("authorized_users");
    assert!(
        r.json()["detail"].as_str().unwrap().contains("teams"),
        "{}",
        r.body
    );

    let created = admin(&h, &bearer, "POST", "/admin/v1/clients", Some(pipeline())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let one = format!(
        "/admin/v1/clients/{}",
        created.json()["client_id"].as_str().unwrap()
    );
    let cases = [
        (
            "PATCH",
            one.as_str(),
            Some(json!({"client_name": "P", "client_secret": "mine"})),
            "client_secret",
        ),
        (
            "PATCH",
            "/admin/v1/policy",
            Some(json!({"dcr": "open", "colour": "red"})),
            "colour",
        ),
        (
            "POST",
            "/admin/v1/groups",
            Some(json!({"name": "ops", "members": []})),
            "members",
        ),
        (
            "POST",
            "/admin/v1/users",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "x"})),
            "role",
        ),
        ("GET", "/admin/v1/users?limit=5&colour=red", None, "colour"),
        ("GET", "/admin/v1/audit?kind=client&colour=red", None, "colour"),
        ("GET", "/admin/v1/users?limit=5&limit=6", None, "limit"),
    ];
    for (method, uri, body, field) in cases {
        admin(&h, &bearer, method, uri, body).await.refused_field(field);
    }
}

#[tokio::test]
async fn admin_api_names_the_field_of_a_value_of_the_wrong_type_or_missing() {
    let h = h().await;
    let bearer = admin_bearer(&h).await;
    let created = admin(&h, &bearer, "POST", "/admin/v1/clients", Some(pipeline())).await;
    let one = format!(
        "/admin/v1/clients/{}",
        created.json()["client_id"].as_str().unwrap()
    );
    let cases = [
        // An agent's app is fixed, and a number names no app at all.
        ("PATCH", one.as_str(), Some(json!({"agent_of": 5})), "agent_of"),
        (
            "PATCH",
            one.as_str(),
            Some(json!({"resource_server_for": "https://api"})),
            "resource_server_for",
        ),
        (
            "POST",
            "/admin/v1/clients",
            Some(json!({"client_name": ["Pipeline"]})),
            "client_name",
        ),
        (
            "POST",
            "/admin/v1/clients",
            Some(json!({"authorized_users": {"users": [7]}})),
            "authorized_users",
        ),
        (
            "PATCH",
            "/admin/v1/policy",
            Some(json!({"access_token_ttl": "600"})),
            "access_token_ttl",
        ),
        (
            "PATCH",
            "/admin/v1/policy",
            Some(json!({"dcr": "sometimes"})),
            "dcr",
        ),
        (
            "PATCH",
            "/admin/v1/policy",
            Some(json!({"app_allowlist": [1]})),
            "app_allowlist",
        ),
        ("PATCH", "/admin/v1/policy", Some(json!({"cimd": true})), "cimd"),
        (
            "PATCH",
            "/admin/v1/policy",
            Some(json!({"cimd": ["not a host"]})),
            "cimd",
        ),
        (
            "POST",
            "/admin/v1/initial-access-tokens",
            Some(json!({"max_uses": -1})),
            "max_uses",
        ),
        (
            "POST",
            "/admin/v1/issuers",
            Some(json!({"issuer": "https://idp.example", "jwks": "keys"})),
            "jwks",
        ),
        (
            "PUT",
            "/admin/v1/scopes/files",
            Some(json!({"description": 5})),
            "description",
        ),
        ("GET", "/admin/v1/audit?since=yesterday", None, "since"),
        ("GET", "/admin/v1/clients?limit=many", None, "limit"),
        // A required field left out is named too.
        (
            "PUT",
            "/admin/v1/scopes/files",
            Some(json!({"restricted": true})),
            "description",
        ),
        (
            "POST",
            "/admin/v1/users",
            Some(json!({"username": "bob"})),
            "password",
        ),
        ("DELETE", "/admin/v1/resources", None, "resource"),
    ];
    for (method, uri, body, field) in cases {
        admin(&h, &bearer, method, uri, body).await.refused_field(field);
    }
}

#[tokio::test]
async fn admin_api_patch_clears_a_null_field_and_leaves_an_absent_one() {
    let h = h().await;
    let bearer = admin_bearer(&h).await;
    let bob = json!({"username": "bob", "password": PASSWORD, "name": "Bob", "email": "bob@example.com"});
    let r = admin(&h, &bearer, "POST", "/admin/v1/users", Some(bob)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bob = format!("/admin/v1/users/{}", r.json()["user_id"].as_str().unwrap());
    let r = admin(&h, &bearer, "PATCH", &bob, Some(json!({"email": null}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = admin(&h, &bearer, "GET", &bob, None).await.json();
    assert_eq!((u.get("email"), &u["name"]), (None, &json!("Bob")), "{u}");
    // A new password is never null.
    let r = admin(&h, &bearer, "PATCH", &bob, Some(json!({"password": null}))).await;
    r.refused_field("password");

    let mut app = pipeline();
    app["client_uri"] = json!("https://app.example/");
    app["logo_uri"] = json!("https://app.example/logo.png");
    let r = admin(&h, &bearer, "POST", "/admin/v1/clients", Some(app)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let one = format!("/admin/v1/clients/{}", r.json()["client_id"].as_str().unwrap());
    let r = admin(&h, &bearer, "PATCH", &one, Some(json!({"client_uri": null}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = admin(&h, &bearer, "GET", &one, None).await.json();
    assert_eq!(c.get("client_uri"), None, "{c}");
    assert_eq!(
        (&c["logo_uri"], &c["client_name"]),
        (&json!("https://app.example/logo.png"), &json!("Pipeline"))
    );
    // `null` leaves `disabled` as it is.
    let r = admin(&h, &bearer, "PATCH", &one, Some(json!({"disabled": null}))).await;
    assert_eq!(
        (r.status, &r.json()["disabled"]),
        (200, &json!(false)),
        "{}",
        r.body
    );

    let set = json!({"access_token_ttl": 600, "session_ttl": 3600});
    let r = admin(&h, &bearer, "PATCH", "/admin/v1/policy", Some(set)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin(
        &h,
        &bearer,
        "PATCH",
        "/admin/v1/policy",
        Some(json!({"access_token_ttl": null})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = admin(&h, &bearer, "GET", "/admin/v1/policy", None).await.json();
    assert_eq!(
        (&p["access_token_ttl"], &p["session_ttl"]),
        (&Value::Null, &json!(3600)),
        "{p}"
    );
    let r = admin(
        &h,
        &bearer,
        "PATCH",
        "/admin/v1/policy",
        Some(json!({"cimd": null})),
    )
    .await;
    r.refused_field("cimd");
    for (cimd, shown) in [
        (json!(["App.Example.com"]), json!(["app.example.com"])),
        (json!("allow"), json!("allow")),
    ] {
        let r = admin(
            &h,
            &bearer,
            "PATCH",
            "/admin/v1/policy",
            Some(json!({"cimd": cimd})),
        )
        .await;
        assert_eq!((r.status, &r.json()["cimd"]), (200, &shown), "{}", r.body);
    }
}

#[tokio::test]
async fn admin_api_documents_each_body_as_it_reads_it() {
    let h = h().await;
    let doc = get(&h, "/admin/v1/openapi.json", &[]).await.json();
    let schemas = &doc["components"]["schemas"];
    let mut bodies = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(content) = op["requestBody"]["content"]["application/json"].as_object() else {
                continue;
            };
            // `T`, or (a body that may be left out) `T` or null.
            let schema = &content["schema"];
            let named = schema["oneOf"]
                .as_array()
                .and_then(|o| o.iter().find(|s| s["$ref"].is_string()));
            let name = named.unwrap_or(schema)["$ref"].as_str().unwrap();
            let name = name.rsplit('/').next().unwrap();
            assert_eq!(
                schemas[name]["additionalProperties"],
                json!(false),
                "{method} {path}: {name} takes fields it does not list"
            );
            bodies += 1;
        }
    }
    assert_eq!(bodies, 11, "the operations that take a body");
    // A merge patch's clearable field is documented as such.
    let patch = &schemas["ClientPatch"]["properties"]["client_uri"]["type"];
    assert!(
        patch.as_array().is_some_and(|t| t.contains(&json!("null"))),
        "{patch}"
    );
}

#[tokio::test]
async fn console_sends_a_visitor_without_a_session_to_sign_in() {
    let h = h().await;
    let r = get(&h, "/console?tenant=acme", &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header(LOCATION).unwrap().to_string();
    assert!(to.starts_with(&format!("{ISSUER}/oauth2/authorize?")), "{to}");
    assert_eq!(r.location_query()["code_challenge_method"], "S256");
    assert!(r.sets("bulwark_console_flow"), "{:?}", r.headers);
    // The sign-in it starts is one our authorization endpoint accepts: its login page.
    let login = get(&h, to.strip_prefix(ISSUER).unwrap(), &[]).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(hidden(&login.body).iter().any(|(k, _)| k == "csrf"));
    // A console page sends the visitor to that start; an unknown tenant has no console.
    let r = get(&h, "/console/apps?tenant=acme", &[]).await;
    assert_eq!(r.status, 303);
    let start = format!("{ISSUER}/console?tenant=acme");
    assert_eq!(r.header(LOCATION), Some(&*start));
    assert_eq!(get(&h, "/console?tenant=nobody", &[]).await.status, 404);
}

#[tokio::test]
async fn admin_api_sets_and_clears_dpop_bound_access_tokens() {
    let h = h().await;
    let bearer = admin_bearer(&h).await;
    let mut app = pipeline();
    app["dpop_bound_access_tokens"] = json!(true);
    let r = admin(&h, &bearer, "POST", "/admin/v1/clients", Some(app)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["dpop_bound_access_tokens"], json!(true), "{}", r.body);
    let one = format!("/admin/v1/clients/{}", r.json()["client_id"].as_str().unwrap());
    let r = admin(
        &h,
        &bearer,
        "PATCH",
        &one,
        Some(json!({"dpop_bound_access_tokens": null})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().get("dpop_bound_access_tokens"), None, "{}", r.body);
    let r = admin(
        &h,
        &bearer,
        "PATCH",
        &one,
        Some(json!({"dpop_bound_access_tokens": "yes"})),
    )
    .await;
    r.refused_field("dpop_bound_access_tokens");
}

// ---- pushed authorization requests (RFC 9126) -------------------------------------------------

#[tokio::test]
async fn par_answers_201_with_a_request_uri_the_authorization_endpoint_takes_once() {
    let h = h().await;
    let id = public_client(&h).await;
    let challenge = "a".repeat(43);
    let q = authorize_url(&id, CB, Some(&challenge));
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.split_once('?').unwrap().1.as_bytes())
        .into_owned()
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = post(&h, "/oauth2/par", &[], &pairs).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header(CACHE_CONTROL), Some("no-store"));
    let body = r.json();
    assert_eq!(body["expires_in"], 60);
    let uri = body["request_uri"].as_str().unwrap();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"), "{uri}");
    let at = format!(
        "/oauth2/authorize?client_id={}&request_uri={}",
        enc(&id),
        enc(uri)
    );
    let login = get(&h, &at, &[]).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(hidden(&login.body).iter().any(|(k, _)| k == "interaction"));
    let again = get(&h, &at, &[]).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.header(LOCATION).is_none(), "never a redirect");

    // Client authentication as at the token endpoint; the authorization endpoint's checks.
    let m = machine(&h, "api:read").await;
    let wrong = basic(&m.id, "not-the-secret");
    post(&h, "/oauth2/par", &[(AUTHORIZATION, wrong.as_str())], &pairs)
        .await
        .refused(401, "invalid_client");
    // A machine client, authenticated, has no redirect URI to push a request for.
    post(&h, "/oauth2/par", &m.auth(), &[("response_type", "code")])
        .await
        .refused(400, "invalid_request");
    let no_pkce: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    post(&h, "/oauth2/par", &[], &no_pkce)
        .await
        .refused(400, "invalid_request");
}

#[tokio::test]
async fn par_settings_reach_discovery_and_the_admin_api() {
    let h = h().await;
    for (path, issuer) in [
        ("/.well-known/openid-configuration", ISSUER.to_string()),
        (
            "/t/acme/.well-known/openid-configuration",
            format!("{ISSUER}/t/acme"),
        ),
    ] {
        let doc = get(&h, path, &[]).await.json();
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            format!("{issuer}/oauth2/par")
        );
        assert_eq!(doc["require_pushed_authorization_requests"], false, "{path}");
    }
    let bearer = admin_bearer(&h).await;
    let r = admin(
        &h,
        &bearer,
        "PATCH",
        "/admin/v1/policy",
        Some(json!({"require_pushed_authorization_requests": true})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["require_pushed_authorization_requests"], true);
    let doc = get(&h, "/t/acme/.well-known/openid-configuration", &[])
        .await
        .json();
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    // The shared issuer serves every tenant: it requires nothing of all of them.
    let doc = get(&h, "/.well-known/openid-configuration", &[]).await.json();
    assert_eq!(doc["require_pushed_authorization_requests"], false);
    admin(
        &h,
        &bearer,
        "PATCH",
        "/admin/v1/policy",
        Some(json!({"require_pushed_authorization_requests": "yes"})),
    )
    .await
    .refused_field("require_pushed_authorization_requests");

    let mut app = pipeline();
    app["require_pushed_authorization_requests"] = json!(true);
    let r = admin(&h, &bearer, "POST", "/admin/v1/clients", Some(app)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.json()["require_pushed_authorization_requests"],
        true,
        "{}",
        r.body
    );
    let one = format!("/admin/v1/clients/{}", r.json()["client_id"].as_str().unwrap());
    let body = json!({"require_pushed_authorization_requests": null});
    let r = admin(&h, &bearer, "PATCH", &one, Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json().get("require_pushed_authorization_requests"),
        None,
        "{}",
        r.body
    );
    let body = json!({"require_pushed_authorization_requests": 1});
    admin(&h, &bearer, "PATCH", &one, Some(body))
        .await
        .refused_field("require_pushed_authorization_requests");
}
