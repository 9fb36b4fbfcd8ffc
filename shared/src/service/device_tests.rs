//! The device authorization grant (RFC 8628) over the embedded store and the local signer:
//! the verification page's steps, polling, redemption exactly once, and what ends it.

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::client::Client;
use crate::domain::grant_type::{TokenResponse, TokenType};
use crate::domain::params::Params;
use crate::domain::tenant::DcrPolicy;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::Secret;
use crate::service::authorize::CookieSessions;
use crate::service::device::{self, DeviceAuthorization, DeviceOutcome, DeviceRefusal, DeviceStep};
use crate::service::testing::{embedded_app, tid};
use crate::service::token_endpoint::{TokenRequest, grant};
use crate::service::{App, clients, tenants, users};

const PASSWORD: &str = "correct horse battery staple";

struct Harness {
    app: Arc<App>,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
    client: Client,
    /// The browser's binding cookie and its session cookie for `acme`, as the page set it.
    browser: Secret,
    session: Mutex<Option<Secret>>,
    /// Its session cookie for `other`, once signed in there.
    other_session: Mutex<Option<Secret>>,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at(1_800_000_000);
    let config = Config::new("http://127.0.0.1:8080").expect("config");
    let app = embedded_app(dir.path(), config, clock.clone());
    for t in ["acme", "other"] {
        tenants::create(&app, t, DcrPolicy::Open, None)
            .await
            .expect("tenant");
        tenants::add_scope(&app, &tid(t), "api:read", "Read your things", None)
            .await
            .expect("scope");
        users::create(
            &app,
            users::NewUser {
                tenant: t,
                username: "alice",
                password: &Secret::new(PASSWORD),
                email: None,
                name: None,
                admin: false,
            },
        )
        .await
        .expect("user");
    }
    let client = device_client(&app, "acme").await;
    Harness {
        app,
        clock,
        dir,
        client,
        browser: crate::secret::generate(),
        session: Mutex::new(None),
        other_session: Mutex::new(None),
    }
}

async fn device_client(app: &App, tenant: &str) -> Client {
    let metadata = json!({
        "client_name": "Terminal",
        "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "scope": "openid api:read",
    });
    clients::create_by_admin(app, &tid(tenant), &metadata, Default::default())
        .await
        .expect("client")
        .client
}

fn params(s: &str) -> Params {
    Params::parse(s.as_bytes()).expect("params")
}

impl Harness {
    async fn start(&self) -> DeviceAuthorization {
        device::authorize(&self.app, &self.client, &params("scope=openid%20api:read"))
            .await
            .expect("device authorization")
    }

    /// The verification page for `tenant`, as this browser: `posted` form `body` (its CSRF
    /// token added unless `csrf` is false).
    async fn page_as(&self, tenant: &str, body: &str, posted: bool, csrf: bool) -> DeviceStep {
        let session = self.session.lock().unwrap().clone();
        let other = self.other_session.lock().unwrap().clone();
        let lookup = move |t: &str| match t {
            "acme" => session.clone(),
            "other" => other.clone(),
            _ => None,
        };
        let mut body = body.to_string();
        if csrf {
            body.push_str(&format!(
                "&csrf={}",
                crate::domain::csrf::token(self.browser.expose())
            ));
        }
        let step = device::page(
            &self.app,
            Some(tenant),
            &params(&body),
            posted,
            &self.browser,
            CookieSessions { lookup: &lookup },
        )
        .await
        .expect("page");
        if let Some((cookie, _)) = &step.new_session {
            let slot = if tenant == "other" {
                &self.other_session
            } else {
                &self.session
            };
            *slot.lock().unwrap() = Some(cookie.clone());
        }
        step
    }

    /// A posted form of the page; a decision carries the app's epoch as the page showed it.
    async fn post(&self, body: &str) -> DeviceStep {
        let mut body = body.to_string();
        if body.starts_with("action=decide") && !body.contains("epoch=") {
            let c = crate::service::testing::client(&self.app, &self.client.client_id)
                .await
                .expect("client");
            body.push_str(&format!("&epoch={}", c.consent_epoch));
        }
        self.page_as("acme", &body, true, true).await
    }

    /// Sign in as alice (the login form carrying `user_code`): back to the code, filled in.
    async fn sign_in(&self, user_code: &str) {
        let step = self
            .post(&format!(
                "action=login&user_code={user_code}&username=alice&password={}",
                PASSWORD.replace(' ', "+")
            ))
            .await;
        match step.outcome {
            DeviceOutcome::EnterCode { prefill } => assert_eq!(prefill, user_code),
            other => panic!("{other:?}"),
        }
    }

    /// Enter `user_code` (signing in first if need be: the page asks before it looks the code
    /// up), confirm it, and answer `decision`.
    async fn approve(&self, user_code: &str, decision: &str) -> DeviceStep {
        let mut step = self.post(&format!("action=code&user_code={user_code}")).await;
        if matches!(step.outcome, DeviceOutcome::NeedLogin { .. }) {
            self.sign_in(user_code).await;
            step = self.post(&format!("action=code&user_code={user_code}")).await;
        }
        assert!(
            matches!(step.outcome, DeviceOutcome::Confirm(_)),
            "{:?}",
            step.outcome
        );
        self.post(&format!(
            "action=decide&user_code={user_code}&decision={decision}"
        ))
        .await
    }

    async fn poll_as(&self, client: &Client, device_code: &Secret) -> Result<TokenResponse, OAuthError> {
        let p = params(&format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
            device_code.expose()
        ));
        grant(
            &self.app,
            &TokenRequest {
                client,
                params: &p,
                dpop: None,
            },
        )
        .await
    }

    async fn poll(&self, device_code: &Secret) -> Result<TokenResponse, OAuthError> {
        self.poll_as(&self.client, device_code).await
    }
}

/// `n` polls of `device_code` by the harness's client, all at once.
async fn concurrent_polls(
    h: &Harness,
    device_code: &Secret,
    n: usize,
) -> Vec<Result<TokenResponse, OAuthError>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (app, client) = (h.app.clone(), h.client.clone());
        let p = params(&format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
            device_code.expose()
        ));
        tasks.push(tokio::spawn(async move {
            grant(
                &app,
                &TokenRequest {
                    client: &client,
                    params: &p,
                    dpop: None,
                },
            )
            .await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

fn code_of(r: Result<TokenResponse, OAuthError>) -> ErrorCode {
    r.expect_err("an error").code
}

fn refusal(step: DeviceStep) -> DeviceRefusal {
    match step.outcome {
        DeviceOutcome::Refused(why) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_device_authorization_answers_a_user_code_of_the_alphabet_and_a_long_device_code() {
    let h = harness().await;
    let d = h.start().await;
    assert_eq!(d.user_code.len(), 9);
    assert_eq!(&d.user_code[4..5], "-");
    assert!(
        d.user_code
            .bytes()
            .filter(|b| *b != b'-')
            .all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)),
        "{}",
        d.user_code
    );
    assert!(d.device_code.expose().len() >= 43, "256 bits");
    assert_eq!((d.expires_in, d.interval), (600, 5));
    // A client not registered for the grant, or asking for a scope it may not have, is refused.
    let code_client = clients::create_by_admin(
        &h.app,
        &tid("acme"),
        &json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none"}),
        Default::default(),
    )
    .await
    .unwrap()
    .client;
    let e = device::authorize(&h.app, &code_client, &params(""))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnauthorizedClient);
    let e = device::authorize(&h.app, &h.client, &params("scope=api:write"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidScope);
    let e = device::authorize(&h.app, &h.client, &params("resource=https://nope.example"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidTarget);
}

#[tokio::test]
async fn the_codes_are_stored_only_as_hashes() {
    let h = harness().await;
    let d = h.start().await;
    let hash = d.device_code.hash().to_hex();
    assert!(h.app.repo.device(&hash).await.unwrap().is_some());
    // Nothing the store wrote holds either code in the clear.
    let plain = d.user_code.replace('-', "");
    for entry in std::fs::read_dir(h.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(d.device_code.expose()));
        assert!(!text.contains(&plain) && !text.contains(&d.user_code));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_is_approved_on_the_page_and_redeemed_exactly_once_under_32_concurrent_polls() {
    let h = harness().await;
    let d = h.start().await;
    // Before anyone decides: pending.
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::AuthorizationPending
    );
    // The complete URI, no session yet: sign in first, the code carried along (not looked up).
    let step = h
        .page_as(
            "acme",
            &format!("user_code={}", d.user_code.to_lowercase()),
            false,
            false,
        )
        .await;
    match step.outcome {
        DeviceOutcome::NeedLogin { user_code, .. } => assert_eq!(user_code, d.user_code),
        other => panic!("{other:?}"),
    }
    // Typed in lower case without the hyphen: the same code; no session yet, so sign in.
    let typed = d.user_code.replace('-', "").to_lowercase();
    let step = h.post(&format!("action=code&user_code={typed}")).await;
    assert!(
        matches!(step.outcome, DeviceOutcome::NeedLogin { .. }),
        "{:?}",
        step.outcome
    );
    let step = h
        .post(&format!(
            "action=login&user_code={typed}&username=alice&password={}",
            PASSWORD.replace(' ', "+")
        ))
        .await;
    assert!(step.new_session.is_some(), "signing in starts a session");
    // Back to the code, filled in: the user still submits it.
    match &step.outcome {
        DeviceOutcome::EnterCode { prefill } => assert_eq!(prefill, &d.user_code),
        other => panic!("{other:?}"),
    }
    let step = h.post(&format!("action=code&user_code={typed}")).await;
    match &step.outcome {
        DeviceOutcome::Confirm(c) => {
            assert_eq!(c.user_code, d.user_code, "the user sees the code to compare");
            assert_eq!(c.client.display_name(), "Terminal");
            let scopes: Vec<&str> = c.scopes.iter().map(|(s, _)| s.as_str()).collect();
            assert_eq!(scopes, ["openid", "api:read"]);
        }
        other => panic!("{other:?}"),
    }
    let step = h
        .post(&format!("action=decide&user_code={typed}&decision=approve"))
        .await;
    assert!(
        matches!(step.outcome, DeviceOutcome::Done { approved: true, .. }),
        "{:?}",
        step.outcome
    );
    // The code is answered: the page no longer takes it.
    let again = h.post(&format!("action=code&user_code={typed}")).await;
    assert_eq!(refusal(again), DeviceRefusal::UnknownCode);
    // 32 concurrent polls: exactly one token response.
    let results = concurrent_polls(&h, &d.device_code, 32).await;
    let issued: Vec<&TokenResponse> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let codes: Vec<Option<ErrorCode>> = results.iter().map(|r| r.as_ref().err().map(|e| e.code)).collect();
    assert_eq!(issued.len(), 1, "{codes:?}");
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.code, ErrorCode::InvalidGrant);
        }
    }
    let t = issued[0];
    assert!(t.refresh_token.is_some(), "registered for refresh_token");
    assert!(t.id_token.is_some(), "openid asked for");
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::InvalidGrant);
    // A grant as for the code flow: live, listed, and ended by revoking the app.
    let live = crate::service::tokens::live_claims(&h.app, &t.access_token, None)
        .await
        .unwrap()
        .expect("live");
    let sub = live.claims.sub.clone();
    assert!(live.grant.is_some());
    assert!(
        crate::service::testing::consent(&h.app, "acme", &sub, &h.client.client_id)
            .await
            .is_some()
    );
    crate::service::account::revoke_app(
        &h.app,
        &tid("acme"),
        &sub.as_str().into(),
        &h.client.client_id,
        "alice",
    )
    .await
    .unwrap();
    assert!(
        crate::service::tokens::live_claims(&h.app, &t.access_token, None)
            .await
            .unwrap()
            .is_none(),
        "revoking the app ends the device flow's access token"
    );
    let refresh = params(&format!(
        "grant_type=refresh_token&refresh_token={}",
        t.refresh_token.as_deref().unwrap()
    ));
    let e = grant(
        &h.app,
        &TokenRequest {
            client: &h.client,
            params: &refresh,
            dpop: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidGrant);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_too_fast_is_slow_down_and_the_stored_interval_grows_by_five_seconds() {
    let h = harness().await;
    let d = h.start().await;
    let hash = d.device_code.hash().to_hex();
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::AuthorizationPending
    );
    h.clock.advance(2);
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::SlowDown);
    assert_eq!(
        h.app.repo.device(&hash).await.unwrap().unwrap().value.interval,
        10
    );
    h.clock.advance(6);
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::SlowDown,
        "now 10 s"
    );
    assert_eq!(
        h.app.repo.device(&hash).await.unwrap().unwrap().value.interval,
        15
    );
    h.clock.advance(15);
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::AuthorizationPending
    );
    // Concurrent polls: one counts, the rest were too fast.
    h.clock.advance(15);
    let results = concurrent_polls(&h, &d.device_code, 8).await;
    let pending = results
        .iter()
        .filter(|r| {
            r.as_ref()
                .is_err_and(|e| e.code == ErrorCode::AuthorizationPending)
        })
        .count();
    assert_eq!(pending, 1, "{results:?}");
    assert!(results.iter().all(|r| {
        r.as_ref()
            .is_err_and(|e| matches!(e.code, ErrorCode::AuthorizationPending | ErrorCode::SlowDown))
    }));
    // Past its expiry: expired_token.
    h.clock.advance(600);
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::ExpiredToken);
}

#[tokio::test]
async fn only_the_client_it_was_issued_to_may_poll_it() {
    let h = harness().await;
    let d = h.start().await;
    let other = device_client(&h.app, "acme").await;
    assert_eq!(
        code_of(h.poll_as(&other, &d.device_code).await),
        ErrorCode::InvalidGrant
    );
    let elsewhere = device_client(&h.app, "other").await;
    assert_eq!(
        code_of(h.poll_as(&elsewhere, &d.device_code).await),
        ErrorCode::InvalidGrant
    );
    // Another client's poll did not count as a poll of the code.
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::AuthorizationPending
    );
    h.approve(&d.user_code, "approve").await;
    h.clock.advance(5);
    assert_eq!(
        code_of(h.poll_as(&other, &d.device_code).await),
        ErrorCode::InvalidGrant
    );
    assert!(h.poll(&d.device_code).await.is_ok(), "left for its own client");
    assert_eq!(
        code_of(h.poll(&Secret::new("nonsense")).await),
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn a_denied_code_answers_access_denied_once_and_is_gone() {
    let h = harness().await;
    let d = h.start().await;
    let step = h.approve(&d.user_code, "deny").await;
    assert!(matches!(
        step.outcome,
        DeviceOutcome::Done { approved: false, .. }
    ));
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::AccessDenied);
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::InvalidGrant);
    assert!(
        h.app
            .repo
            .device(&d.device_code.hash().to_hex())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_page_refuses_forms_without_their_csrf_token_or_session_and_other_tenants_codes() {
    let h = harness().await;
    let d = h.start().await;
    let body = format!("action=code&user_code={}", d.user_code);
    assert_eq!(
        refusal(h.page_as("acme", &body, true, false).await),
        DeviceRefusal::FormExpired
    );
    // A decision without a session for the tenant.
    let decide = format!("action=decide&user_code={}&decision=approve", d.user_code);
    assert_eq!(refusal(h.post(&decide).await), DeviceRefusal::SessionEnded);
    // Without a session the page looks no code up: sign in first. An unknown tenant is
    // refused. (Another tenant's page, signed in: `review_a_pending_code_cannot_be_decided…`.)
    assert!(matches!(
        h.page_as("other", &body, true, true).await.outcome,
        DeviceOutcome::NeedLogin { .. }
    ));
    assert_eq!(
        refusal(h.page_as("nope", &body, true, true).await),
        DeviceRefusal::UnknownTenant
    );
    // A wrong password shows the sign-in form again; nothing was decided.
    let step = h
        .post(&format!(
            "action=login&user_code={}&username=alice&password=wrong",
            d.user_code
        ))
        .await;
    assert!(
        matches!(step.outcome, DeviceOutcome::NeedLogin { failure: Some(_), .. }),
        "{:?}",
        step.outcome
    );
    assert!(step.new_session.is_none());
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::AuthorizationPending
    );
    // Neither approve nor deny.
    h.approve(&d.user_code, "maybe").await;
    assert_eq!(
        refusal(
            h.post(&format!("action=decide&user_code={}&decision=maybe", d.user_code))
                .await
        ),
        DeviceRefusal::NoDecision
    );
    // An expired code is not found.
    h.clock.advance(600);
    assert_eq!(refusal(h.post(&body).await), DeviceRefusal::UnknownCode);
}

#[tokio::test]
async fn guessing_is_bounded_per_user_and_tenant_and_audited_a_bounded_number_of_times() {
    let h = harness().await;
    let d = h.start().await;
    // Without a session no code is looked up (nor counted): sign in first.
    for _ in 0..(2 * device::USER_MISSES_PER_WINDOW) {
        let step = h.post("action=code&user_code=BBBB-BBBB").await;
        assert!(matches!(step.outcome, DeviceOutcome::NeedLogin { .. }));
    }
    h.sign_in("").await;
    for i in 0..device::USER_MISSES_PER_WINDOW {
        let guess = if i % 2 == 0 { "BBBB-BBBB" } else { "not a code" };
        assert_eq!(
            refusal(h.post(&format!("action=code&user_code={guess}")).await),
            DeviceRefusal::UnknownCode
        );
    }
    // Used up for alice: even the right code is refused to her until the window ends.
    let right = format!("action=code&user_code={}", d.user_code);
    assert_eq!(refusal(h.post(&right).await), DeviceRefusal::TooManyAttempts);
    let (events, _) = h
        .app
        .repo
        .audit_events_with_cursors("acme", None, 500, true)
        .await
        .unwrap();
    let refused = events
        .iter()
        .filter(|(e, _)| e.kind == "device.user_code_refused")
        .count();
    assert_eq!(refused as u64, device::AUDITED_PER_WINDOW);
    // Bob, another user of the tenant, is not affected: his right code is found.
    sign_in_as(&h, "bob").await;
    assert!(matches!(h.post(&right).await.outcome, DeviceOutcome::Confirm(_)));
    // Another tenant's page is not affected either.
    h.page_as(
        "other",
        &format!(
            "action=login&username=alice&password={}",
            PASSWORD.replace(' ', "+")
        ),
        true,
        true,
    )
    .await;
    let other = "action=code&user_code=BBBB-BBBB";
    assert_eq!(
        refusal(h.page_as("other", other, true, true).await),
        DeviceRefusal::UnknownCode
    );
    // The tenant-wide backstop: once the tenant's wrong codes are used up, codes are refused
    // to every user of it (honest load never gets there: 100 users' worth of wrong codes).
    while h
        .app
        .repo
        .take_from_window(
            "device-refused#acme",
            device::TENANT_MISSES_PER_WINDOW,
            device::ATTEMPT_WINDOW,
        )
        .await
        .unwrap()
    {}
    sign_in_as(&h, "carol").await;
    assert_eq!(refusal(h.post(&right).await), DeviceRefusal::TooManyAttempts);
    // The next window takes codes again, alice's too.
    h.clock.advance(device::ATTEMPT_WINDOW);
    let d = h.start().await;
    h.sign_in("").await;
    let right = format!("action=code&user_code={}", d.user_code);
    assert!(matches!(h.post(&right).await.outcome, DeviceOutcome::Confirm(_)));
}

/// Make `username` in acme and sign in as them in the harness's browser.
async fn sign_in_as(h: &Harness, username: &str) {
    users::create(
        &h.app,
        users::NewUser {
            tenant: "acme",
            username,
            password: &Secret::new(PASSWORD),
            email: None,
            name: None,
            admin: false,
        },
    )
    .await
    .expect("user");
    let step = h
        .post(&format!(
            "action=login&username={username}&password={}",
            PASSWORD.replace(' ', "+")
        ))
        .await;
    assert!(step.new_session.is_some(), "{:?}", step.outcome);
}

#[tokio::test]
async fn an_approval_is_worth_nothing_once_the_user_is_deactivated_or_signed_out_everywhere() {
    let h = harness().await;
    let d = h.start().await;
    h.approve(&d.user_code, "approve").await;
    users::deactivate(&h.app, &tid("acme"), "alice").await.unwrap();
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::InvalidGrant);
    users::reactivate(&h.app, &tid("acme"), "alice", "cli")
        .await
        .unwrap();
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::InvalidGrant,
        "nor after reactivation"
    );

    let h = harness().await;
    let d = h.start().await;
    h.approve(&d.user_code, "approve").await;
    users::set_password(
        &h.app,
        &tid("acme"),
        "alice",
        &Secret::new("another long password here"),
        users::SignOut::Everywhere,
    )
    .await
    .unwrap();
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn a_poll_with_a_dpop_proof_binds_the_tokens_to_its_key() {
    let h = harness().await;
    let d = h.start().await;
    h.approve(&d.user_code, "approve").await;
    let jkt = crate::domain::dpop::Jkt::parse("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").unwrap();
    let p = params(&format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
        d.device_code.expose()
    ));
    let t = grant(
        &h.app,
        &TokenRequest {
            client: &h.client,
            params: &p,
            dpop: Some(jkt.clone()),
        },
    )
    .await
    .unwrap();
    assert_eq!(t.token_type, TokenType::DPoP);
    let live = crate::service::tokens::live_claims(&h.app, &t.access_token, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        live.claims.cnf.as_ref().map(|c| c.jkt.as_str()),
        Some(jkt.as_str())
    );
}

#[tokio::test]
async fn the_page_names_the_apps_agents_for_agent_act_and_an_agent_then_acts_for_the_user() {
    let h = harness().await;
    let te = "urn:ietf:params:oauth:grant-type:token-exchange";
    // The CLI may ask for agent:act; it has an agent.
    let metadata = json!({
        "client_name": "Terminal",
        "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
        "token_endpoint_auth_method": "none",
        "scope": "openid api:read agent:act",
    });
    let app_client = clients::create_by_admin(&h.app, &tid("acme"), &metadata, Default::default())
        .await
        .unwrap()
        .client;
    let agent = clients::create_by_admin(
        &h.app,
        &tid("acme"),
        &json!({"client_name": "Report Bot", "grant_types": [te], "scope": "api:read"}),
        clients::AdminFields {
            agent_of: Some(&app_client.client_id),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .client;
    let h = Harness {
        client: app_client,
        ..h
    };
    let d = device::authorize(&h.app, &h.client, &params("scope=api:read%20agent:act"))
        .await
        .unwrap();
    let step = h.post(&format!("action=code&user_code={}", d.user_code)).await;
    assert!(matches!(step.outcome, DeviceOutcome::NeedLogin { .. }));
    h.sign_in(&d.user_code).await;
    let step = h.post(&format!("action=code&user_code={}", d.user_code)).await;
    let shown_epoch = match &step.outcome {
        DeviceOutcome::Confirm(c) => {
            assert_eq!(
                c.agents.as_ref().map(|a| a.names.clone()),
                Some(vec!["Report Bot".to_string()])
            );
            c.client_epoch
        }
        other => panic!("{other:?}"),
    };
    // A second agent made after the page was shown: the decision shows the page again, naming it.
    clients::create_by_admin(
        &h.app,
        &tid("acme"),
        &json!({"client_name": "Audit Bot", "grant_types": [te], "scope": "api:read"}),
        clients::AdminFields {
            agent_of: Some(&h.client.client_id),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let step = h
        .post(&format!(
            "action=decide&user_code={}&decision=approve&epoch={shown_epoch}",
            d.user_code
        ))
        .await;
    match &step.outcome {
        DeviceOutcome::Confirm(c) => assert_eq!(c.agents.as_ref().map(|a| a.names.len()), Some(2)),
        other => panic!("shown again, not approved: {other:?}"),
    }
    // A denial needs no epoch: it stands whatever changed.
    let d2 = device::authorize(&h.app, &h.client, &params("scope=api:read"))
        .await
        .unwrap();
    let step = h
        .page_as(
            "acme",
            &format!("action=decide&user_code={}&decision=deny&epoch=0", d2.user_code),
            true,
            true,
        )
        .await;
    assert!(
        matches!(step.outcome, DeviceOutcome::Done { approved: false, .. }),
        "{:?}",
        step.outcome
    );
    let step = h
        .post(&format!(
            "action=decide&user_code={}&decision=approve",
            d.user_code
        ))
        .await;
    assert!(
        matches!(step.outcome, DeviceOutcome::Done { approved: true, .. }),
        "{:?}",
        step.outcome
    );
    let t = h.poll(&d.device_code).await.unwrap();
    // The agent exchanges the user's token: a token that says it acts, with its delegation.
    let body = format!(
        "grant_type={te}&subject_token={}&subject_token_type=urn:ietf:params:oauth:token-type:access_token",
        t.access_token
    );
    let exchanged = crate::service::exchange::token_exchange(
        &h.app,
        &TokenRequest {
            client: &agent,
            params: &params(&body),
            dpop: None,
        },
    )
    .await
    .expect("the agent acts for the user");
    let live = crate::service::tokens::live_claims(&h.app, &exchanged.access_token, None)
        .await
        .unwrap()
        .expect("live");
    assert!(live.claims.act.is_some(), "act names the agent");
}

// ---- attacker's review (rev-device): these fail on 1c32ff3 -------------------------------

/// The verification page posted by a browser of its own (a stranger: no session, own CSRF).
async fn post_as_stranger(h: &Harness, stranger: &Secret, body: &str) -> DeviceStep {
    let lookup = |_: &str| None;
    let body = format!("{body}&csrf={}", crate::domain::csrf::token(stranger.expose()));
    device::page(
        &h.app,
        Some("acme"),
        &params(&body),
        true,
        stranger,
        CookieSessions { lookup: &lookup },
    )
    .await
    .expect("page")
}

#[tokio::test]
async fn review_a_stranger_cannot_lock_every_user_of_a_tenant_out_of_the_device_page() {
    let h = harness().await;
    // A stranger (own browser, own CSRF token, no account) types 100 wrong codes: 100 requests,
    // each answered "sign in first", none looked up or counted.
    let stranger = crate::secret::generate();
    for _ in 0..100 {
        let step = post_as_stranger(&h, &stranger, "action=code&user_code=BBBB-BBBB").await;
        assert!(
            matches!(step.outcome, DeviceOutcome::NeedLogin { .. }),
            "{:?}",
            step.outcome
        );
    }
    // A stranger with an account of the tenant (mallory) uses up only her own wrong codes.
    sign_in_as(&h, "mallory").await;
    for _ in 0..100 {
        h.post("action=code&user_code=BBBB-BBBB").await;
    }
    assert_eq!(
        refusal(h.post("action=code&user_code=BBBB-BBBB").await),
        DeviceRefusal::TooManyAttempts
    );
    // Alice, on her own browser, signs in and types the right code her TV shows.
    *h.session.lock().unwrap() = None;
    let d = h.start().await;
    let step = h.post(&format!("action=code&user_code={}", d.user_code)).await;
    assert!(
        matches!(step.outcome, DeviceOutcome::NeedLogin { .. }),
        "{:?}",
        step.outcome
    );
    h.sign_in(&d.user_code).await;
    let step = h.post(&format!("action=code&user_code={}", d.user_code)).await;
    assert!(
        matches!(step.outcome, DeviceOutcome::Confirm(_)),
        "alice is locked out by strangers' 200 requests: {:?}",
        step.outcome
    );
}

#[tokio::test]
async fn review_a_stranger_cannot_use_up_a_public_clients_lookups() {
    let h = harness().await;
    // The stranger knows only the public client's client_id (it is in the CLI's binary): it
    // starts one device flow of its own, and types that (valid) code again and again.
    let own = h.start().await;
    let stranger = crate::secret::generate();
    for _ in 0..300 {
        post_as_stranger(&h, &stranger, &format!("action=code&user_code={}", own.user_code)).await;
    }
    // Signed in (an account of the tenant), the same: it uses up only its own code's lookups.
    sign_in_as(&h, "mallory").await;
    for _ in 0..300 {
        h.post(&format!("action=code&user_code={}", own.user_code)).await;
    }
    assert_eq!(
        refusal(h.post(&format!("action=code&user_code={}", own.user_code)).await),
        DeviceRefusal::TooManyAttempts
    );
    // Every other user of that CLI still connects.
    *h.session.lock().unwrap() = None;
    let d = h.start().await;
    let step = h.approve(&d.user_code, "approve").await;
    assert!(
        matches!(step.outcome, DeviceOutcome::Done { approved: true, .. }),
        "the CLI's users are locked out by one stranger's 600 requests: {:?}",
        step.outcome
    );
}

#[tokio::test]
async fn review_the_client_lookup_budget_lets_more_than_100_users_connect_a_cli_per_window() {
    // Not an attack: a company's CLI rolled out on Monday morning. Each user takes three
    // lookups (code, login, decide): the 101st user in ten minutes is refused.
    let h = harness().await;
    for i in 0..=100 {
        *h.session.lock().unwrap() = None;
        let d = h.start().await;
        let step = h.approve(&d.user_code, "approve").await;
        assert!(
            matches!(step.outcome, DeviceOutcome::Done { approved: true, .. }),
            "user {i}: {:?}",
            step.outcome
        );
    }
}

#[tokio::test]
async fn review_an_anonymous_registrant_gets_no_device_client_to_phish_with() {
    // Open DCR, no initial access token: a stranger registers a public device client named
    // like the tenant's own app. The confirmation page shows nothing but that name (no
    // redirect origin as on the consent page, no "calls itself" as for a metadata document).
    let h = harness().await;
    let metadata = json!({
        "client_name": "Acme IT Helpdesk",
        "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "scope": "openid api:read",
    });
    let reg = clients::register_dynamic(&h.app, &crate::service::testing::tid("acme"), None, &metadata).await;
    assert!(
        reg.is_err(),
        "an anonymous registrant got a device_code client: {:?}",
        reg.map(|r| r.client.client_id)
    );
}

#[tokio::test]
async fn review_a_stranger_cannot_create_device_codes_without_bound() {
    // Only the public client's client_id is needed: every request is two conditional puts
    // (the code and its user-code pointer) living 20 and 10 minutes.
    let h = harness().await;
    let mut refused = false;
    for _ in 0..=device::CODES_PER_CLIENT_PER_WINDOW {
        match device::authorize(&h.app, &h.client, &params("scope=openid")).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code, ErrorCode::TemporarilyUnavailable, "{e:?}");
                refused = true;
                break;
            }
        }
    }
    assert!(
        refused,
        "1000 device codes for one client in one second, all stored"
    );
}

#[tokio::test]
async fn review_polling_without_end_does_not_write_without_end() {
    let h = harness().await;
    let d = h.start().await;
    let hash = d.device_code.hash().to_hex();
    for _ in 0..200 {
        let _ = h.poll(&d.device_code).await;
    }
    let version = h.app.repo.device(&hash).await.unwrap().unwrap().version;
    // 5 s → 300 s by 5 s is 59 growths: past that, a too-fast poll changes nothing worth a write.
    assert!(
        version <= 61,
        "200 polls in one second, {version} writes of the code"
    );
}

// ---- attacker's review: cascades that held (these pass on 1c32ff3; kept as regressions) ----

#[tokio::test]
async fn review_an_approval_is_worth_nothing_once_the_user_takes_the_app_back() {
    let h = harness().await;
    let d = h.start().await;
    assert!(matches!(
        h.approve(&d.user_code, "approve").await.outcome,
        DeviceOutcome::Done { approved: true, .. }
    ));
    let alice = h
        .app
        .repo
        .user_by_name("acme", "alice")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert!(
        crate::service::account::revoke_app(
            &h.app,
            &tid("acme"),
            &alice.sub,
            &h.client.client_id,
            alice.sub.as_str()
        )
        .await
        .unwrap()
    );
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::InvalidGrant);
    // ... and so after the revocation marker's 10 minutes (the code expired first anyway).
    h.clock.advance(601);
    assert_ne!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::AuthorizationPending
    );
}

#[tokio::test]
async fn review_an_approval_is_worth_nothing_once_the_client_is_deleted_or_made_again() {
    let h = harness().await;
    let d = h.start().await;
    h.approve(&d.user_code, "approve").await;
    crate::service::admin::delete_client(&h.app, &tid("acme"), &h.client.client_id, "admin")
        .await
        .unwrap();
    // The deleted client's object still in hand (a request in flight): nothing.
    assert_eq!(code_of(h.poll(&d.device_code).await), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn review_a_pending_code_cannot_be_decided_from_another_tenants_page_or_session() {
    let h = harness().await;
    let d = h.start().await;
    // Alice of "other" signed in at other's page types acme's code there: not found.
    h.page_as(
        "other",
        &format!(
            "action=login&username=alice&password={}",
            PASSWORD.replace(' ', "+")
        ),
        true,
        true,
    )
    .await;
    assert!(h.other_session.lock().unwrap().is_some(), "signed in at other");
    let step = h
        .page_as(
            "other",
            &format!("action=code&user_code={}", d.user_code),
            true,
            true,
        )
        .await;
    assert_eq!(refusal(step), DeviceRefusal::UnknownCode);
    // A decision posted to acme's page without acme's session: refused.
    let step = h
        .post(&format!(
            "action=decide&user_code={}&decision=approve",
            d.user_code
        ))
        .await;
    assert_eq!(refusal(step), DeviceRefusal::SessionEnded);
    assert_eq!(
        code_of(h.poll(&d.device_code).await),
        ErrorCode::AuthorizationPending
    );
}

#[tokio::test]
async fn review_a_stored_user_code_is_an_unkeyed_sha256_and_is_documented_as_such() {
    // 20⁸ ≈ 2.6·10¹⁰ candidates: an unkeyed SHA-256 of one is inverted in seconds by a reader
    // of the store. Decided (review L4): kept as is, and documented as hiding the code from a
    // casual look only — the code's protection is its short life, the per-user and tenant
    // bounds on wrong codes, and the user's confirmation. If the hash is ever keyed, this
    // test and the README's "Guessing" paragraph change together.
    let h = harness().await;
    let d = h.start().await;
    let plain = d.user_code.replace('-', "");
    let stored = h
        .app
        .repo
        .device(&d.device_code.hash().to_hex())
        .await
        .unwrap()
        .unwrap()
        .value
        .user_code_hash;
    assert_eq!(stored, Secret::new(&plain).hash().to_hex());
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains("from a casual look only"),
        "the README says what the user code's hash does not protect"
    );
}

#[tokio::test]
async fn review_a_code_lives_only_at_the_issuer_it_was_issued_at() {
    let h = harness().await;
    let at_tenant = h.app.scoped("acme");
    // Issued at the tenant's own issuer: the shared issuer's page does not find it, and its
    // token endpoint does not redeem it even once approved at the right page.
    let d = device::authorize(&at_tenant, &h.client, &params("scope=openid"))
        .await
        .unwrap();
    h.sign_in("").await;
    assert_eq!(
        refusal(h.post(&format!("action=code&user_code={}", d.user_code)).await),
        DeviceRefusal::UnknownCode
    );
    let p = params(&format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
        d.device_code.expose()
    ));
    let req = TokenRequest {
        client: &h.client,
        params: &p,
        dpop: None,
    };
    assert_eq!(code_of(grant(&h.app, &req).await), ErrorCode::InvalidGrant);
    assert_eq!(
        code_of(grant(&at_tenant, &req).await),
        ErrorCode::AuthorizationPending
    );
    // Issued at the shared issuer: the tenant issuer's token endpoint says nothing of it.
    let d = h.start().await;
    h.approve(&d.user_code, "approve").await;
    let p = params(&format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}",
        d.device_code.expose()
    ));
    let req = TokenRequest {
        client: &h.client,
        params: &p,
        dpop: None,
    };
    assert_eq!(code_of(grant(&at_tenant, &req).await), ErrorCode::InvalidGrant);
    assert!(grant(&h.app, &req).await.is_ok());
}
