//! Every page action on an app whose client id is a URL (a Client ID Metadata Document's
//! client, `https://app.example.com/client.json`), in process through the real routers
//! (`http::app`, so the tenant issuers' prefix stripping too): the account page's Revoke and
//! Stop, and the console's app page, Disable, Enable, Rotate secret, the delete confirmation
//! and Delete; and the console's policy page's Trust issuer and Remove forms (trusted workload
//! issuers) and Create application's federated app. Each test follows the link or form the
//! page itself rendered, as a browser does, and checks that the id reached its handler (the
//! change happened), not only a 2xx.

use crate::domain::id::ClientId;
use crate::service::testing::tid;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::json;
use tower::ServiceExt;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::claims::{UserGrant, user_claims};
use crate::domain::consent::Delegation;
use crate::domain::grant::Grant;
use crate::domain::scope::ScopeSet;
use crate::domain::tenant::{DcrPolicy, TenantId};
use crate::fetch::{Document, FetchError, Fetcher};
use crate::secret::{Secret, random_id};
use crate::service::testing;
use crate::service::{App, admin, clients, tenants, users};

const ISSUER: &str = "http://127.0.0.1:8080";
/// A metadata-document client's id: every character a path segment must not carry raw.
const URL_ID: &str = "https://app.example.com/client.json";
/// What every link or form naming it must carry instead.
const URL_ID_ENCODED: &str = "https%3A%2F%2Fapp.example.com%2Fclient.json";
const CB: &str = "https://app.example.com/cb";

/// Serves `URL_ID`'s metadata document.
struct Documents;

#[async_trait]
impl Fetcher for Documents {
    async fn get_json(&self, _url: &str) -> Result<serde_json::Value, FetchError> {
        Err(FetchError::Failed(
            "documents are fetched with get_document".into(),
        ))
    }
    async fn get_document(&self, url: &str, _max: usize) -> Result<Document, FetchError> {
        if url != URL_ID {
            return Err(FetchError::Failed("status 404".into()));
        }
        Ok(Document {
            json: json!({"client_id": URL_ID, "client_name": "Files Helper", "redirect_uris": [CB],
                         "grant_types": ["authorization_code", "refresh_token"],
                         "token_endpoint_auth_method": "none", "scope": "openid api:read"}),
            max_age: Some(3600),
        })
    }
}

struct H {
    app: Arc<App>,
    router: Router,
    alice: String,
    root: String,
    _dir: tempfile::TempDir,
}

/// Tenant `acme` accepting metadata documents, its record of `URL_ID`, a user (alice) and an
/// administrator (root).
async fn h() -> H {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at(1_800_000_000);
    let config = Config::new(ISSUER).expect("config");
    let base = testing::embedded_app(dir.path(), config, clock);
    let app = testing::with_fetcher(&base, Arc::new(Documents));
    tenants::create(&app, "acme", DcrPolicy::Open, None)
        .await
        .expect("tenant");
    tenants::add_scope(&app, &tid("acme"), "api:read", "Read", None)
        .await
        .expect("scope");
    let policy = admin::PolicyChanges {
        cimd: Some(crate::domain::cimd::CimdPolicy::Allow),
        ..Default::default()
    };
    admin::patch_policy(&app, &tid("acme"), None, policy, "test")
        .await
        .expect("policy");
    let t = tenants::get(&app, "acme").await.expect("tenant");
    let c = crate::service::cimd::resolve(&app, &t, URL_ID, Some(CB))
        .await
        .expect("resolve")
        .expect("accepted");
    assert_eq!(c.client_id, URL_ID);
    let person = |name: &'static str, is_admin: bool| {
        let app = app.clone();
        async move {
            users::create(
                &app,
                users::NewUser {
                    tenant: "acme",
                    username: name,
                    password: &Secret::new("correct horse battery staple"),
                    email: None,
                    name: None,
                    admin: is_admin,
                },
            )
            .await
            .expect("user")
            .sub
        }
    };
    let alice = person("alice", false).await;
    let root = person("root", true).await;
    H {
        router: crate::http::app(app.clone()),
        app,
        alice: alice.into(),
        root: root.into(),
        _dir: dir,
    }
}

/// A grant of `sub` to `client_id` (with its consent) and a refresh token of it.
async fn grant(
    app: &App,
    sub: &str,
    client_id: &str,
    user_epoch: Option<u64>,
    scope: &str,
) -> (Grant, Secret) {
    testing::seed_grant(app, "acme", sub, client_id, user_epoch, scope).await
}

/// What a browser gets.
struct Page {
    status: u16,
    location: Option<String>,
    html: String,
}

/// Send a request to the routers. `url` is what a page or a redirect named (absolute, on
/// `ISSUER`); `form` is the body of a form post.
async fn send(
    router: &Router,
    method: &str,
    url: &str,
    cookie: &str,
    form: Option<&[(String, String)]>,
) -> Page {
    let path = url
        .strip_prefix(ISSUER)
        .unwrap_or_else(|| panic!("{url} is not on {ISSUER}"));
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie);
    let body = match form {
        Some(pairs) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish(),
            )
        }
        None => Body::empty(),
    };
    let resp = router
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    Page {
        status,
        location,
        html: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// An attribute value as a browser reads it.
fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// The value of attribute `name` in the tag `tag` (its text from `<` to `>`).
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The form around the submit button whose text is `label`: where it posts and its hidden
/// fields, as a browser would send them.
fn form(html: &str, label: &str) -> (String, Vec<(String, String)>) {
    let at = html
        .find(&format!(">{label}</button>"))
        .unwrap_or_else(|| panic!("no {label} button in {html}"));
    let start = html[..at].rfind("<form").expect("in a form");
    let end = html[at..].find("</form>").expect("form ends") + at;
    let f = &html[start..end];
    let action = attr(&f[..f.find('>').unwrap()], "action").expect("action");
    let mut fields = Vec::new();
    let mut rest = f;
    while let Some(i) = rest.find("<input type=\"hidden\"") {
        let tag_end = rest[i..].find('>').unwrap() + i;
        let tag = &rest[i..tag_end];
        fields.push((attr(tag, "name").unwrap(), attr(tag, "value").unwrap()));
        rest = &rest[tag_end..];
    }
    (action, fields)
}

/// The href of the link whose text is `text`.
fn link(html: &str, text: &str) -> String {
    let at = html
        .find(&format!(">{text}</a>"))
        .unwrap_or_else(|| panic!("no {text} link in {html}"));
    let start = html[..at].rfind("<a ").expect("a link");
    attr(&html[start..at], "href").expect("href")
}

/// Post the form of button `label` on `html`, as the page's browser.
async fn submit(h: &H, html: &str, label: &str, cookie: &str) -> Page {
    let (action, fields) = form(html, label);
    send(&h.router, "POST", &action, cookie, Some(&fields)).await
}

// ---- the account page -------------------------------------------------------------------------

/// Alice's session cookie.
async fn alice_session(h: &H) -> String {
    let user = testing::user(&h.app, &h.alice).await.unwrap();
    let (cookie, _) = users::start_session(&h.app, &user).await.expect("session");
    format!(
        "{}={}",
        crate::http::browser::session_cookie_name(&h.app, "acme"),
        cookie.expose()
    )
}

/// `POST /oauth2/introspect` by a resource server of the tenant: whether `token` is active.
async fn introspects_active(h: &H, rs: &clients::Registered, token: &str) -> bool {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        rs.client.client_id,
        rs.secret.as_ref().unwrap().expose()
    ));
    let req = Request::post("/oauth2/introspect")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}")))
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    body["active"] == true
}

/// `POST /t/acme/oauth2/token` with `grant_type=refresh_token`, as the metadata-document client
/// (known only at its tenant's issuer): the status and the body.
async fn refresh(h: &H, rt: &str) -> (u16, serde_json::Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("client_id", URL_ID)
        .append_pair("refresh_token", rt)
        .finish();
    let req = Request::post("/t/acme/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body =
        serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    (status, body)
}

/// Revoke on the account page, at the shared issuer and at the tenant's own: the app's
/// refresh token is refused and its access token introspects inactive.
#[tokio::test]
async fn account_revoke_of_a_url_client_ends_its_grant_and_tokens() {
    for account in [
        format!("{ISSUER}/account?tenant=acme"),
        format!("{ISSUER}/t/acme/account"),
    ] {
        let h = h().await;
        // The resource server of the tenant's default audience: it may introspect the app's
        // access tokens (`domain::introspection`).
        let rs = clients::create_by_admin(
            &h.app,
            &tid("acme"),
            &json!({"client_name": "RS", "grant_types": ["client_credentials"], "scope": "api:read"}),
            clients::AdminFields {
                resource_server_for: vec!["urn:bulwark:tenant:acme".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let (g, rt) = grant(&h.app, &h.alice, URL_ID, None, "openid api:read").await;
        // Real tokens: a refresh at the tenant's issuer gives an access token and the next
        // refresh token of the family.
        let (status, t) = refresh(&h, rt.expose()).await;
        assert_eq!(status, 200, "{t}");
        let (at, rt) = (
            t["access_token"].as_str().unwrap().to_string(),
            t["refresh_token"].as_str().unwrap().to_string(),
        );
        assert!(introspects_active(&h, &rs, &at).await);

        let cookie = alice_session(&h).await;
        let page = send(&h.router, "GET", &account, &cookie, None).await;
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("app.example.com"), "{}", page.html);
        assert!(
            page.html.contains(URL_ID_ENCODED),
            "the Revoke form names the app encoded: {}",
            page.html
        );
        let done = submit(&h, &page.html, "Revoke", &cookie).await;
        assert_eq!(
            done.status, 303,
            "{account}: the Revoke form reaches its handler: {}",
            done.html
        );
        let back = send(&h.router, "GET", done.location.as_deref().unwrap(), &cookie, None).await;
        assert!(back.html.contains("Access removed"), "{}", back.html);
        assert!(!back.html.contains("app.example.com"), "{}", back.html);

        assert!(testing::grant(&h.app, &h.alice, &g.gid).await.is_none());
        assert!(testing::consent(&h.app, "acme", &h.alice, URL_ID).await.is_none());
        assert!(
            !introspects_active(&h, &rs, &at).await,
            "{account}: access token still active"
        );
        let (status, body) = refresh(&h, &rt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
    }
}

/// Stop on the account page for an agent acting through the URL-named app. (No agent can be
/// registered for a metadata-document app today: an agent's app is found with `Repo::client`,
/// which never finds one. The page must not depend on that: the delegation is written here.)
#[tokio::test]
async fn account_stop_of_an_agent_of_a_url_client_reaches_its_handler() {
    let h = h().await;
    let app_of_agent = clients::create_by_admin(
        &h.app,
        &tid("acme"),
        &json!({"client_name": "Reports", "grant_types": ["authorization_code"],
                "redirect_uris": ["https://reports.example/cb"], "scope": "openid api:read agent:act"}),
        Default::default(),
    )
    .await
    .unwrap()
    .client;
    let agent = clients::create_by_admin(
        &h.app,
        &tid("acme"),
        &json!({"client_name": "Report Bot", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
                "scope": "api:read"}),
        clients::AdminFields {
            agent_of: Some(&app_of_agent.client_id),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .client;
    grant(&h.app, &h.alice, URL_ID, None, "openid api:read agent:act").await;
    let d = Delegation {
        tenant: tid("acme"),
        sub: h.alice.clone().into(),
        app: URL_ID.into(),
        agent: agent.client_id.clone(),
        did: random_id(16),
        stopped: false,
        stopped_consent: None,
        first_acted: h.app.now(),
        last_acted: h.app.now(),
    };
    testing::seed_delegation(&h.app, &d).await;

    let cookie = alice_session(&h).await;
    let page = send(
        &h.router,
        "GET",
        &format!("{ISSUER}/account?tenant=acme"),
        &cookie,
        None,
    )
    .await;
    assert!(page.html.contains("Report Bot"), "{}", page.html);
    let (action, _) = form(&page.html, "Stop");
    assert!(
        action.ends_with(&format!(
            "?client_id={URL_ID_ENCODED}&agent_id={}",
            agent.client_id
        )),
        "the Stop form names the app encoded: {action}"
    );
    let done = submit(&h, &page.html, "Stop", &cookie).await;
    assert_eq!(
        done.status, 303,
        "the Stop form reaches its handler: {}",
        done.html
    );
    let d = testing::delegation(&h.app, &h.alice, URL_ID, &agent.client_id)
        .await
        .unwrap();
    assert!(d.stopped, "the agent was stopped");
}

// ---- the console -----------------------------------------------------------------------------

/// A console session of root (the administrator): its cookie, as the console's sign-in leaves
/// it (an access token of the console client with `bulwark:admin` for the admin audience).
async fn console_session(h: &H) -> String {
    console_session_of(h, &h.root.clone()).await
}

/// A console session cookie of `sub` for tenant acme, made as the sign-in makes one.
async fn console_session_of(h: &H, sub: &str) -> String {
    let console = crate::service::console::ensure_client(&h.app, &TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    let root = testing::user(&h.app, sub).await.unwrap();
    let (g, _) = grant(
        &h.app,
        &root.sub,
        &console.client_id,
        Some(root.session_epoch),
        crate::domain::client::ADMIN_SCOPE,
    )
    .await;
    let now = h.app.now();
    let claims = user_claims(UserGrant {
        issuer: &h.app.config.issuer,
        tenant: "acme",
        client_id: &console.client_id,
        sub: &root.sub,
        gid: &g.gid,
        auth_time: now,
        scope: &ScopeSet::parse(crate::domain::client::ADMIN_SCOPE).unwrap(),
        audience: &crate::service::tokens::admin_audience(&h.app),
        ttl: 600,
        now,
        jti: random_id(16),
    });
    let token = h
        .app
        .signer
        .sign_jwt(
            crate::service::tokens::ACCESS_TOKEN_TYP,
            &serde_json::to_vec(&claims).unwrap(),
        )
        .await
        .unwrap();
    format!("bulwark_console_s_acme={token}")
}

/// The console's app page of `URL_ID`, reached by its link on the app list.
async fn open_app(h: &H, cookie: &str) -> Page {
    let list = send(
        &h.router,
        "GET",
        &format!("{ISSUER}/console/apps?tenant=acme"),
        cookie,
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.html);
    assert!(
        list.html.contains(URL_ID_ENCODED),
        "the app list links to the app encoded: {}",
        list.html
    );
    let href = link(&list.html, "Files Helper");
    send(&h.router, "GET", &href, cookie, None).await
}

#[tokio::test]
async fn console_opens_the_page_of_a_url_client() {
    let h = h().await;
    let cookie = console_session(&h).await;
    let page = open_app(&h, &cookie).await;
    assert_eq!(
        page.status, 200,
        "the app list's link reaches the app page: {}",
        page.html
    );
    assert!(page.html.contains(URL_ID), "{}", page.html);
    assert!(page.html.contains("Disable"), "{}", page.html);
    // Every link and form on it names the app encoded.
    for tag in ["action=\"", "href=\""] {
        for piece in page.html.split(tag).skip(1) {
            let value = &piece[..piece.find('"').unwrap()];
            assert!(!value.contains(URL_ID), "raw id in a URL: {value}");
        }
    }
    assert!(page.html.contains(URL_ID_ENCODED), "{}", page.html);
}

#[tokio::test]
async fn console_disables_a_url_client() {
    let h = h().await;
    let (g, _) = grant(&h.app, &h.alice, URL_ID, None, "openid api:read").await;
    let cookie = console_session(&h).await;
    let page = open_app(&h, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(URL_ID_ENCODED), "{}", page.html);
    let done = submit(&h, &page.html, "Disable", &cookie).await;
    assert_eq!(
        done.status, 303,
        "the Disable form reaches its handler: {}",
        done.html
    );
    let c = testing::client_in(&h.app, "acme", URL_ID).await.unwrap();
    assert!(c.disabled);
    assert!(
        testing::grant(&h.app, &h.alice, &g.gid).await.is_none(),
        "disabling ends its grants"
    );
}

#[tokio::test]
async fn console_enables_a_url_client() {
    let h = h().await;
    admin::patch_client(
        &h.app,
        &tid("acme"),
        &ClientId::from(URL_ID),
        None,
        &json!({"disabled": true}),
        "test",
    )
    .await
    .unwrap();
    let cookie = console_session(&h).await;
    let page = open_app(&h, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(URL_ID_ENCODED), "{}", page.html);
    let done = submit(&h, &page.html, "Enable", &cookie).await;
    assert_eq!(
        done.status, 303,
        "the Enable form reaches its handler: {}",
        done.html
    );
    let c = testing::client_in(&h.app, "acme", URL_ID).await.unwrap();
    assert!(!c.disabled);
}

/// A metadata-document client has no secret (its page offers no rotation), so rotation is
/// followed on a client with one; its id needs no encoding, but its links are made the same
/// way.
#[tokio::test]
async fn console_rotates_the_secret_of_a_client_and_offers_none_for_a_url_client() {
    let h = h().await;
    let cookie = console_session(&h).await;
    let page = open_app(&h, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(!page.html.contains("Rotate secret"), "{}", page.html);

    let svc = clients::create_by_admin(
        &h.app,
        &tid("acme"),
        &json!({"client_name": "Pipeline", "grant_types": ["client_credentials"], "scope": "api:read"}),
        Default::default(),
    )
    .await
    .unwrap();
    let id = svc.client.client_id.clone();
    let list = send(
        &h.router,
        "GET",
        &format!("{ISSUER}/console/apps?tenant=acme"),
        &cookie,
        None,
    )
    .await;
    let page = send(&h.router, "GET", &link(&list.html, "Pipeline"), &cookie, None).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let (action, _) = form(&page.html, "Rotate secret");
    assert_eq!(
        action,
        format!("{ISSUER}/console/app/secret?tenant=acme&client_id={id}"),
        "the app is named in the query, as every app link names it"
    );
    let before = testing::client_in(&h.app, "acme", &id).await.unwrap();
    let done = submit(&h, &page.html, "Rotate secret", &cookie).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.html.contains("shown only this once"), "{}", done.html);
    let after = testing::client_in(&h.app, "acme", &id).await.unwrap();
    assert_ne!(after.secret_hash, before.secret_hash, "rotated");
    // Its way back to the app page works.
    let back = send(
        &h.router,
        "GET",
        &link(&done.html, "I have stored the secret"),
        &cookie,
        None,
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.html);
}

#[tokio::test]
async fn console_confirms_the_delete_of_a_url_client() {
    let h = h().await;
    let cookie = console_session(&h).await;
    let page = open_app(&h, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let confirm = send(&h.router, "GET", &link(&page.html, "Delete…"), &cookie, None).await;
    assert_eq!(
        confirm.status, 200,
        "the Delete link reaches the confirmation: {}",
        confirm.html
    );
    assert!(confirm.html.contains("cannot be undone"), "{}", confirm.html);
    assert!(confirm.html.contains(URL_ID_ENCODED), "{}", confirm.html);
    // Cancel goes back to the app page.
    let back = send(&h.router, "GET", &link(&confirm.html, "Cancel"), &cookie, None).await;
    assert_eq!(back.status, 200, "{}", back.html);
    assert!(back.html.contains("Disable"), "{}", back.html);
}

#[tokio::test]
async fn console_deletes_a_url_client() {
    let h = h().await;
    let (g, _) = grant(&h.app, &h.alice, URL_ID, None, "openid api:read").await;
    let cookie = console_session(&h).await;
    let page = open_app(&h, &cookie).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let confirm = send(&h.router, "GET", &link(&page.html, "Delete…"), &cookie, None).await;
    assert_eq!(confirm.status, 200, "{}", confirm.html);
    let done = submit(&h, &confirm.html, "Delete application", &cookie).await;
    assert_eq!(
        done.status, 303,
        "the Delete form reaches its handler: {}",
        done.html
    );
    assert!(testing::client_in(&h.app, "acme", URL_ID).await.is_none());
    assert!(testing::grant(&h.app, &h.alice, &g.gid).await.is_none());
    let list = send(&h.router, "GET", done.location.as_deref().unwrap(), &cookie, None).await;
    assert!(list.html.contains("Application deleted"), "{}", list.html);
}

/// The routes with the id in the path, kept for links made before, take a URL id encoded into
/// one segment (`%2F` is no separator; axum decodes it), also under the tenant's issuer, whose
/// prefix is taken off the raw path. A form naming no app changes nothing.
#[tokio::test]
async fn the_path_routes_kept_for_old_links_take_an_encoded_url_id() {
    let seg = crate::http::links::segment(URL_ID);
    assert_eq!(seg, URL_ID_ENCODED);
    for account in ["/account", "/t/acme/account"] {
        let h = h().await;
        let (g, _) = grant(&h.app, &h.alice, URL_ID, None, "openid api:read").await;
        let cookie = alice_session(&h).await;
        let page = send(
            &h.router,
            "GET",
            &format!("{ISSUER}{account}?tenant=acme"),
            &cookie,
            None,
        )
        .await;
        let (_, fields) = form(&page.html, "Revoke");
        let incomplete = send(
            &h.router,
            "POST",
            &format!("{ISSUER}{account}/apps/revoke"),
            &cookie,
            Some(&fields),
        )
        .await;
        assert_eq!(incomplete.status, 400, "{}", incomplete.html);
        assert!(testing::grant(&h.app, &h.alice, &g.gid).await.is_some());
        let done = send(
            &h.router,
            "POST",
            &format!("{ISSUER}{account}/apps/{seg}/revoke"),
            &cookie,
            Some(&fields),
        )
        .await;
        assert_eq!(done.status, 303, "{account}: {}", done.html);
        assert!(
            testing::grant(&h.app, &h.alice, &g.gid).await.is_none(),
            "{account}"
        );
    }
    let h = h().await;
    let cookie = console_session(&h).await;
    let page = send(
        &h.router,
        "GET",
        &format!("{ISSUER}/console/apps/{seg}?tenant=acme"),
        &cookie,
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(URL_ID), "{}", page.html);
}

// ---- the console's trusted workload issuers ----------------------------------------------------

const WORKLOAD_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A JWK Set of one public EC P-256 key (RFC 7517 A.1), as an administrator pastes it.
fn workload_jwks() -> String {
    json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "1",
        "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]})
    .to_string()
}

/// The console's policy page, reached by its tab from the app list.
async fn open_policy(h: &H, cookie: &str) -> Page {
    let list = send(
        &h.router,
        "GET",
        &format!("{ISSUER}/console/apps?tenant=acme"),
        cookie,
        None,
    )
    .await;
    assert_eq!(list.status, 200, "{}", list.html);
    let page = send(&h.router, "GET", &link(&list.html, "Policy"), cookie, None).await;
    assert_eq!(page.status, 200, "{}", page.html);
    page
}

/// The Trust issuer form of `page` filled in with `fields` (besides its hidden ones).
fn trust_form(page: &Page, fields: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
    let (action, mut all) = form(&page.html, "Trust issuer");
    all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    (action, all)
}

async fn tenant_issuers(h: &H) -> Vec<crate::domain::tenant::TrustedIssuer> {
    tenants::get(&h.app, "acme").await.unwrap().trusted_issuers
}

/// The audit events of `kind` about `subject`: their actors.
async fn audit_actors(h: &H, kind: &str, subject: &str) -> Vec<String> {
    let (events, _) = admin::audit(&h.app, &tid("acme"), &admin::AuditFilter::default(), None, 100)
        .await
        .unwrap();
    events
        .into_iter()
        .filter(|e| e.kind == kind && e.subject == subject)
        .map(|e| e.actor)
        .collect()
}

/// The policy page's Trust issuer form trusts a workload issuer (pasted keys, each token once)
/// through the service the CLI and admin API call, under the administrator's name; its row's
/// Remove stops trusting it, likewise.
#[tokio::test]
async fn console_trusts_and_removes_a_workload_issuer() {
    let h = h().await;
    let cookie = console_session(&h).await;
    let page = open_policy(&h, &cookie).await;
    assert!(page.html.contains("None."), "{}", page.html);
    let jwks = workload_jwks();
    let (action, fields) = trust_form(
        &page,
        &[
            ("issuer", WORKLOAD_ISSUER),
            ("jwks_uri", ""),
            ("jwks", &jwks),
            ("single_use", "on"),
        ],
    );
    let done = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
    assert_eq!(done.status, 303, "{}", done.html);
    let issuers = tenant_issuers(&h).await;
    assert_eq!(issuers.len(), 1);
    let i = &issuers[0];
    assert_eq!(i.issuer, WORKLOAD_ISSUER);
    assert!(i.workload && i.single_use && !i.id_jag);
    assert!(i.jwks.is_some() && i.jwks_uri.is_none());
    assert_eq!(
        audit_actors(&h, "issuer.trusted", WORKLOAD_ISSUER).await,
        [h.root.as_str()]
    );
    let shown = send(&h.router, "GET", done.location.as_deref().unwrap(), &cookie, None).await;
    assert!(shown.html.contains("Issuer trusted."), "{}", shown.html);
    assert!(
        shown.html.contains("Workloads (federated apps); each token once"),
        "{}",
        shown.html
    );

    // By its keys URL instead: the same entry renewed (single use off).
    let (action, fields) = trust_form(
        &shown,
        &[
            ("issuer", WORKLOAD_ISSUER),
            (
                "jwks_uri",
                "https://token.actions.githubusercontent.com/.well-known/jwks",
            ),
            ("jwks", ""),
        ],
    );
    let done = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
    assert_eq!(done.status, 303, "{}", done.html);
    let issuers = tenant_issuers(&h).await;
    assert_eq!(issuers.len(), 1);
    assert!(issuers[0].jwks_uri.is_some() && issuers[0].jwks.is_none() && !issuers[0].single_use);

    let shown = send(&h.router, "GET", done.location.as_deref().unwrap(), &cookie, None).await;
    let (action, fields) = form(&shown.html, "Remove");
    assert!(
        fields.contains(&("issuer".into(), WORKLOAD_ISSUER.into())),
        "{fields:?}"
    );
    let done = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
    assert_eq!(done.status, 303, "{}", done.html);
    assert!(tenant_issuers(&h).await.is_empty());
    assert_eq!(
        audit_actors(&h, "issuer.removed", WORKLOAD_ISSUER).await,
        [h.root.as_str()]
    );
    let shown = send(&h.router, "GET", done.location.as_deref().unwrap(), &cookie, None).await;
    assert!(shown.html.contains("Issuer removed."), "{}", shown.html);
    // Removing it again: no such issuer, said on the page.
    let again = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
    assert_eq!(again.status, 400, "{}", again.html);
    assert!(again.html.contains("no longer exists"), "{}", again.html);
}

/// The service's checks answer on the page, with the form filled in as it was: a plain-http
/// issuer, no keys or both, keys that are not a JWK Set, a private key, and a user-federation
/// issuer cannot be switched to workloads (the kind-switch refusal). Nothing changes.
#[tokio::test]
async fn console_shows_why_a_workload_issuer_is_refused() {
    let h = h().await;
    tenants::add_issuer(
        &h.app,
        &tid("acme"),
        crate::domain::tenant::TrustedIssuer {
            issuer: "https://idp.example.com".into(),
            jwks: Some(serde_json::from_str(&workload_jwks()).unwrap()),
            jwks_uri: None,
            id_jag: false,
            idp_tenant: None,
            workload: false,
            single_use: false,
        },
        "test",
    )
    .await
    .unwrap();
    let cookie = console_session(&h).await;
    let page = open_policy(&h, &cookie).await;
    let jwks = workload_jwks();
    let private = jwks.replace(
        "\"kid\"",
        "\"d\":\"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE\",\"kid\"",
    );
    let uri = "https://k8s.example.com/jwks";
    for (issuer, jwks_uri, keys, says) in [
        (
            "http://k8s.example.com",
            "",
            jwks.as_str(),
            "Issuer must be an https URL",
        ),
        ("https://k8s.example.com", "", "", "a Keys URL or pasted Keys"),
        (
            "https://k8s.example.com",
            uri,
            jwks.as_str(),
            "a Keys URL or pasted Keys",
        ),
        ("https://k8s.example.com", "", "[1]", "Keys must be a JWK Set"),
        (
            "https://k8s.example.com",
            "",
            "{not json",
            "Keys must be a JWK Set",
        ),
        ("https://k8s.example.com", "", private.as_str(), "Keys:"),
        ("https://idp.example.com", "", jwks.as_str(), "remove it first"),
    ] {
        let (action, fields) = trust_form(
            &page,
            &[("issuer", issuer), ("jwks_uri", jwks_uri), ("jwks", keys)],
        );
        let r = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
        assert_eq!(r.status, 400, "{issuer} {keys}: {}", r.html);
        assert!(r.html.contains(says), "{says}: {}", r.html);
        for cli in ["--issuer", "--jwks", "--workload", "bulwark issuer"] {
            assert!(!r.html.contains(cli), "the CLI's words: {}", r.html);
        }
        assert!(
            r.html.contains(&format!("value=\"{issuer}\"")),
            "filled in as it was: {}",
            r.html
        );
    }
    let issuers = tenant_issuers(&h).await;
    assert_eq!(issuers.len(), 1);
    assert!(!issuers[0].workload, "still trusted for users");
    assert!(
        audit_actors(&h, "issuer.trusted", "https://k8s.example.com")
            .await
            .is_empty()
    );
}

/// Refused, and nothing changed: a form without the session's CSRF token, a session of a user
/// who is no administrator, and acme's session cookie presented for another tenant.
#[tokio::test]
async fn console_issuer_forms_refuse_a_forged_form_a_non_admin_and_another_tenant() {
    let h = h().await;
    tenants::create(&h.app, "other", DcrPolicy::Open, None)
        .await
        .expect("tenant");
    let cookie = console_session(&h).await;
    let page = open_policy(&h, &cookie).await;
    let jwks = workload_jwks();
    let (action, fields) = trust_form(&page, &[("issuer", WORKLOAD_ISSUER), ("jwks", &jwks)]);
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| {
            if k == "csrf" {
                (k.clone(), "forged".into())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let r = send(&h.router, "POST", &action, &cookie, Some(&forged)).await;
    assert_eq!(r.status, 400, "{}", r.html);
    let bare: Vec<(String, String)> = fields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    let r = send(&h.router, "POST", &action, &cookie, Some(&bare)).await;
    assert_eq!(r.status, 400, "{}", r.html);
    assert!(tenant_issuers(&h).await.is_empty());

    // Alice is no administrator: her token (even one of the console client) is no session.
    let alice = console_session_of(&h, &h.alice.clone()).await;
    let r = send(&h.router, "POST", &action, &alice, Some(&fields)).await;
    assert_eq!(r.status, 401, "{}", r.html);
    assert!(tenant_issuers(&h).await.is_empty());

    // acme's administrator at another tenant's console: no session there.
    let token = cookie.strip_prefix("bulwark_console_s_acme=").unwrap();
    let elsewhere = format!("bulwark_console_s_other={token}");
    let other_action = action.replace("tenant=acme", "tenant=other");
    assert_ne!(other_action, action);
    let r = send(&h.router, "POST", &other_action, &elsewhere, Some(&fields)).await;
    assert_eq!(r.status, 401, "{}", r.html);
    assert!(
        tenants::get(&h.app, "other")
            .await
            .unwrap()
            .trusted_issuers
            .is_empty()
    );

    // The real form, for contrast, then its Remove refused the same ways.
    let done = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
    assert_eq!(done.status, 303, "{}", done.html);
    let shown = send(&h.router, "GET", done.location.as_deref().unwrap(), &cookie, None).await;
    let (remove, rfields) = form(&shown.html, "Remove");
    let bare: Vec<(String, String)> = rfields.iter().filter(|(k, _)| k != "csrf").cloned().collect();
    assert_eq!(
        send(&h.router, "POST", &remove, &cookie, Some(&bare))
            .await
            .status,
        400
    );
    assert_eq!(
        send(&h.router, "POST", &remove, &alice, Some(&rfields))
            .await
            .status,
        401
    );
    let other_remove = remove.replace("tenant=acme", "tenant=other");
    assert_eq!(
        send(&h.router, "POST", &other_remove, &elsewhere, Some(&rfields))
            .await
            .status,
        401
    );
    assert_eq!(tenant_issuers(&h).await.len(), 1);
}

/// Create application offers a federated app once the tenant trusts a workload issuer: its
/// issuer picked from those, its subjects and audience, made by the same service function as
/// `POST /admin/v1/clients` (no secret: its page, not the secret page). Without subjects the
/// service refuses and nothing is made.
#[tokio::test]
async fn console_creates_a_federated_app_of_a_trusted_workload_issuer() {
    let h = h().await;
    let cookie = console_session(&h).await;
    let new_href = |html: &str| link(html, "Create application");
    let list = send(
        &h.router,
        "GET",
        &format!("{ISSUER}/console/apps?tenant=acme"),
        &cookie,
        None,
    )
    .await;
    let page = send(&h.router, "GET", &new_href(&list.html), &cookie, None).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        !page.html.contains("value=\"federated\""),
        "no workload issuer, no federated choice: {}",
        page.html
    );

    let policy = open_policy(&h, &cookie).await;
    let jwks = workload_jwks();
    let (action, fields) = trust_form(&policy, &[("issuer", WORKLOAD_ISSUER), ("jwks", &jwks)]);
    assert_eq!(
        send(&h.router, "POST", &action, &cookie, Some(&fields))
            .await
            .status,
        303
    );
    let page = send(&h.router, "GET", &new_href(&list.html), &cookie, None).await;
    assert!(
        page.html
            .contains(&format!("<option value=\"{WORKLOAD_ISSUER}\"")),
        "{}",
        page.html
    );
    let subject = "repo:acme/deploy:ref:refs/heads/main";
    let filled = |subjects: &str| {
        let (action, mut fields) = form(&page.html, "Create application");
        for (k, v) in [
            ("name", "deploy"),
            ("kind", "federated"),
            ("federated_issuer", WORKLOAD_ISSUER),
            ("subjects", subjects),
            ("audience", "https://acme.example"),
            ("scope.api:read", "on"),
        ] {
            fields.push((k.into(), v.into()));
        }
        (action, fields)
    };
    let (action, fields) = filled("  \n");
    let refused = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
    assert_eq!(refused.status, 400, "{}", refused.html);
    let alert = refused.html.split("role=\"alert\">").nth(1).expect("an alert");
    let alert = &alert[..alert.find("</div>").unwrap()];
    assert!(alert.contains("subjects"), "{alert}");
    let (apps, _) = admin::list_clients(&h.app, &tid("acme"), None, 100)
        .await
        .unwrap();
    assert!(
        !apps
            .iter()
            .any(|c| c.metadata.client_name.as_deref() == Some("deploy"))
    );

    let (action, fields) = filled(&format!("{subject}\n"));
    let done = send(&h.router, "POST", &action, &cookie, Some(&fields)).await;
    assert_eq!(done.status, 303, "no secret to show: {}", done.html);
    let (apps, _) = admin::list_clients(&h.app, &tid("acme"), None, 100)
        .await
        .unwrap();
    let c = apps
        .iter()
        .find(|c| c.metadata.client_name.as_deref() == Some("deploy"))
        .expect("made");
    assert_eq!(
        c.metadata.token_endpoint_auth_method,
        crate::domain::grant_type::ClientAuthMethod::Federated
    );
    let f = c.metadata.federated_credential.as_ref().expect("credential");
    assert_eq!(
        (f.issuer.as_str(), f.subjects.as_slice(), f.audience.as_deref()),
        (
            WORKLOAD_ISSUER,
            [subject.to_string()].as_slice(),
            Some("https://acme.example")
        )
    );
    let app_page = send(&h.router, "GET", done.location.as_deref().unwrap(), &cookie, None).await;
    assert!(
        app_page.html.contains(subject) && app_page.html.contains(WORKLOAD_ISSUER),
        "{}",
        app_page.html
    );
}
