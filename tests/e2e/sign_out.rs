//! What a user holds once signed in — the browser's single sign-on session, a refresh token,
//! the access token issued with it and an agent's delegated token exchanged from that — and
//! which of them an administrator's password reset ended. The admin API (`admin::`), the
//! console (`console::`) and the CLI (`cli::`) each reset through these, with and without
//! "sign out everywhere".

use serde_json::Value;

use crate::flow::*;
use crate::support::*;

const TE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const SCOPE: &str = "openid offline_access api:read agent:act";

/// A tenant with user `alice`, an app she signs in to (code flow, refresh tokens, agents), its
/// agent, and the resource server of the tenant's default audience, which introspects.
pub struct Fixture {
    pub w: World,
    pub agent: TestClient,
    pub rs: TestClient,
}

pub fn fixture(data: &DataDir) -> Fixture {
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
    let app = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Acme Notes",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        SCOPE,
        "--redirect-uri",
        CALLBACK,
    ]));
    // Made before alice's consent, which therefore names it.
    let agent = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Report Bot",
        "--grant-type",
        TE,
        "--agent-of",
        &app.id,
        "--scope",
        "api:read",
    ]));
    let rs = data.resource_server(&tenant, &[]);
    Fixture {
        w: World {
            tenant,
            client: app,
            sub,
        },
        agent,
        rs,
    }
}

/// What alice holds after signing in with `password` in a browser of her own.
pub struct Held {
    pub browser: Browser,
    pub refresh: String,
    pub access: String,
    pub delegated: String,
}

/// Alice signs in with `password` (consenting the first time), the app redeems the code, and
/// its agent exchanges her access token for a delegated one. Everything is live.
pub async fn sign_in(server: &Server, f: &Fixture, password: &str) -> Held {
    let b = Browser::new();
    let p = pkce();
    let page = b
        .get(&authorize_url(server, &f.w.client.id, SCOPE, &p.challenge, &[]))
        .await;
    let page = b.login(server, &page, "alice", password).await;
    let page = if page.has("name=\"decision\"") {
        b.consent(server, &page, "approve").await
    } else {
        page
    };
    assert_eq!(page.status, 303, "signed in with {password:?}: {}", page.html);
    let code = page.redirect_params()["code"].clone();
    let r = redeem(server, &f.w.client, &code, &p.verifier).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = r.body["access_token"].as_str().unwrap().to_string();
    let refresh = r.body["refresh_token"].as_str().unwrap().to_string();
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&f.agent.id, &f.agent.secret)),
        &[
            ("grant_type", TE),
            ("subject_token", &access),
            ("subject_token_type", AT),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "token exchange: {}", r.body);
    let delegated = r.body["access_token"].as_str().unwrap().to_string();
    let held = Held {
        browser: b,
        refresh,
        access,
        delegated,
    };
    assert!(in_session(server, f, &held).await);
    assert!(active(server, &f.rs, &held.delegated).await);
    held
}

/// Whether alice's browser is still signed in: an authorization request goes through without
/// asking for her password.
async fn in_session(server: &Server, f: &Fixture, held: &Held) -> bool {
    let p = pkce();
    let page = held
        .browser
        .get(&authorize_url(server, &f.w.client.id, SCOPE, &p.challenge, &[]))
        .await;
    !page.has("name=\"password\"")
}

/// A reset without "sign out everywhere" ended alice's session only: her access token, her
/// agent's delegated token and her refresh token still work. Returns what she holds after
/// that refresh (its new refresh token).
pub async fn only_sessions_ended(server: &Server, f: &Fixture, held: Held) -> Held {
    assert!(!in_session(server, f, &held).await, "her session ended");
    assert!(
        active(server, &f.rs, &held.access).await,
        "her access token lives"
    );
    assert_eq!(userinfo(server, &held.access).await.status, 200);
    assert!(
        active(server, &f.rs, &held.delegated).await,
        "the agent's delegated token lives"
    );
    let r = refresh(server, &f.w.client, &held.refresh, &[]).await;
    assert_eq!(r.status, 200, "her refresh token works: {}", r.body);
    Held {
        refresh: r.body["refresh_token"].as_str().unwrap().to_string(),
        ..held
    }
}

/// "Sign out everywhere" ended all of it: her session, her refresh token (`invalid_grant`),
/// her access token (inactive at introspection, refused by userinfo) and the agent's delegated
/// token (inactive).
pub async fn ended_everywhere(server: &Server, f: &Fixture, held: &Held) {
    assert!(!in_session(server, f, held).await, "her session ended");
    refresh(server, &f.w.client, &held.refresh, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(
        !active(server, &f.rs, &held.access).await,
        "her access token ended"
    );
    assert_eq!(userinfo(server, &held.access).await.status, 401);
    assert!(
        !active(server, &f.rs, &held.delegated).await,
        "the agent's delegated token ended"
    );
}

/// The `user.signed_out_everywhere` events of alice, oldest first (the CLI's audit listing).
pub fn signed_out_events(data: &DataDir, f: &Fixture) -> Vec<Value> {
    let v = data.cli(&[
        "audit",
        "list",
        "--tenant",
        &f.w.tenant,
        "--kind",
        "user.signed_out_everywhere",
        "--subject",
        &f.w.sub,
    ]);
    v["events"].as_array().cloned().unwrap_or_default()
}
