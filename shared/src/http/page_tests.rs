//! Every page action on an app whose client id is a URL (a Client ID Metadata Document's
//! client, `https://app.example.com/client.json`), in process through the real routers
//! (`http::app`, so the tenant issuers' prefix stripping too): the account page's Revoke and
//! Stop, and the console's app page, Disable, Enable, Rotate secret, the delete confirmation
//! and Delete. Each test follows the link or form the page itself rendered, as a browser does,
//! and checks that the id reached its handler (the change happened), not only a 2xx.

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
    let console = crate::service::console::ensure_client(&h.app, &TenantId::parse("acme").unwrap())
        .await
        .unwrap();
    let root = testing::user(&h.app, &h.root).await.unwrap();
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
