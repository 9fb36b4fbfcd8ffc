//! Dynamic client registration (RFC 7591) and client management (RFC 7592).

use serde_json::{Value, json};

use crate::support::*;

async fn register(server: &Server, tenant: Option<&str>, iat: Option<&str>, body: &Value) -> Resp {
    let mut req = http().post(server.url("/oauth2/register")).json(body);
    if let Some(t) = tenant {
        req = req.header("x-bulwark-tenant", t);
    }
    if let Some(t) = iat {
        req = req.bearer_auth(t);
    }
    Resp::from(req.send().await.unwrap()).await
}

fn cc_metadata() -> Value {
    json!({"client_name": "nightly build", "grant_types": ["client_credentials"], "scope": "api:read"})
}

fn iat(data: &DataDir, tenant: &str, extra: &[&str]) -> String {
    let mut args = vec!["iat", "create", "--tenant", tenant];
    args.extend_from_slice(extra);
    data.cli(&args)["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn registration_with_an_initial_access_token_returns_the_rfc7591_response_and_the_client_works() {
    let data = DataDir::new();
    data.tenant_with_client("acme");
    let server = Server::start(&data);
    let token = iat(&data, "acme", &[]);
    let r = register(&server, Some("acme"), Some(&token), &cc_metadata()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let b = &r.body;
    for field in [
        "client_id",
        "client_secret",
        "registration_access_token",
        "registration_client_uri",
    ] {
        assert!(b[field].as_str().is_some_and(|s| !s.is_empty()), "{field} in {b}");
    }
    assert!(b["client_id_issued_at"].as_i64().is_some());
    assert_eq!(b["client_secret_expires_at"], 0);
    assert_eq!(b["client_name"], "nightly build");
    assert_eq!(b["grant_types"], json!(["client_credentials"]));
    assert_eq!(b["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(b["scope"], "api:read");
    assert_eq!(
        b["registration_client_uri"],
        server
            .url(&format!("/oauth2/register/{}", b["client_id"].as_str().unwrap()))
            .as_str()
    );
    let c = TestClient::from_registration(b);
    let t = token_for(&server, &c).await;
    assert_eq!(jwt_part(&t, 1)["tid"], "acme");
    // The client shows up in the operator's list.
    let list = data.cli(&["client", "list", "--tenant", "acme"]);
    assert!(
        list["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["client_id"] == c.id.as_str())
    );
    assert!(
        !list.to_string().contains(&c.secret),
        "the list never shows secrets"
    );
}

async fn token_for(server: &Server, c: &TestClient) -> String {
    token(server, c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn registration_without_wrong_expired_or_used_up_initial_access_tokens_is_refused() {
    let data = DataDir::new();
    data.tenant_with_client("acme");
    let server = Server::start(&data);
    let md = cc_metadata();

    let r = register(&server, Some("acme"), None, &md).await;
    r.assert_error(401, "invalid_token");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    register(&server, Some("acme"), Some("not-a-real-token"), &md)
        .await
        .assert_error(401, "invalid_token");

    // Used up: max 2 uses.
    let twice = iat(&data, "acme", &["--max-uses", "2"]);
    assert_eq!(
        register(&server, Some("acme"), Some(&twice), &md).await.status,
        201
    );
    assert_eq!(
        register(&server, Some("acme"), Some(&twice), &md).await.status,
        201
    );
    register(&server, Some("acme"), Some(&twice), &md)
        .await
        .assert_error(401, "invalid_token");

    // A failed registration (bad metadata) does not use up the token.
    let once = iat(&data, "acme", &[]);
    let bad = json!({"grant_types": ["client_credentials"], "scope": "not-in-catalog"});
    register(&server, Some("acme"), Some(&once), &bad)
        .await
        .assert_error(400, "invalid_client_metadata");
    assert_eq!(
        register(&server, Some("acme"), Some(&once), &md).await.status,
        201
    );

    // Expired: a server whose clock runs 120 s ahead sees a 60 s token as expired.
    let short = iat(&data, "acme", &["--expires-in", "60"]);
    let later = Server::start_with(&data, &[], &[("BULWARK_CLOCK_OFFSET_SECS", "120")]);
    register(&later, Some("acme"), Some(&short), &md)
        .await
        .assert_error(401, "invalid_token");
    // ...while the same token is still good on the present-time server.
    assert_eq!(
        register(&server, Some("acme"), Some(&short), &md).await.status,
        201
    );
}

#[tokio::test]
async fn concurrent_registrations_cannot_overuse_an_initial_access_token() {
    let data = DataDir::new();
    data.tenant_with_client("acme");
    let server = Server::start(&data);
    let token = iat(&data, "acme", &["--max-uses", "3"]);
    let md = cc_metadata();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, token, md) = (server.url("/oauth2/register"), token.clone(), md.clone());
        tasks.push(tokio::spawn(async move {
            http()
                .post(url)
                .header("x-bulwark-tenant", "acme")
                .bearer_auth(token)
                .json(&md)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut created = 0;
    for t in tasks {
        let s = t.await.unwrap().as_u16();
        assert!(s == 201 || s == 401, "status {s}");
        if s == 201 {
            created += 1;
        }
    }
    assert!(created <= 3, "an IAT with 3 uses registered {created} clients");
    assert!(created >= 1);
}

#[tokio::test]
async fn tenant_dcr_policies_open_token_closed() {
    let data = DataDir::new();
    data.cli(&["tenant", "create", "open-t", "--dcr", "open"]);
    data.cli(&["tenant", "create", "closed-t", "--dcr", "closed"]);
    data.cli(&["tenant", "create", "token-t"]);
    let server = Server::start(&data);
    let md = json!({"grant_types": ["client_credentials"], "scope": "profile"});
    // Open registration: public or private_key_jwt clients only; a client with a secret needs
    // an initial access token even where registration is open.
    register(&server, Some("open-t"), None, &md)
        .await
        .assert_error(400, "invalid_client_metadata");
    let public = json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "scope": "profile"});
    let r = register(&server, Some("open-t"), None, &public).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("client_secret").is_none());
    let open_iat = iat(&data, "open-t", &[]);
    assert_eq!(
        register(&server, Some("open-t"), Some(&open_iat), &md)
            .await
            .status,
        201
    );
    let closed_iat = iat(&data, "closed-t", &[]);
    register(&server, Some("closed-t"), Some(&closed_iat), &md)
        .await
        .assert_error(403, "access_denied");
    register(&server, Some("token-t"), None, &md)
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn tenant_header_is_required_valid_and_known() {
    let data = DataDir::new();
    data.tenant_with_client("acme");
    let server = Server::start(&data);
    let token = iat(&data, "acme", &[]);
    let md = cc_metadata();
    register(&server, None, Some(&token), &md)
        .await
        .assert_error(400, "invalid_request");
    register(&server, Some("Not_Valid"), Some(&token), &md)
        .await
        .assert_error(400, "invalid_request");
    register(&server, Some("nosuchtenant"), Some(&token), &md)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn an_initial_access_token_of_tenant_a_cannot_register_into_tenant_b() {
    let data = DataDir::new();
    data.tenant_with_client("tenant-a");
    data.tenant_with_client("tenant-b");
    let server = Server::start(&data);
    let a_token = iat(&data, "tenant-a", &[]);
    register(&server, Some("tenant-b"), Some(&a_token), &cc_metadata())
        .await
        .assert_error(401, "invalid_token");
    // It still works where it belongs.
    assert_eq!(
        register(&server, Some("tenant-a"), Some(&a_token), &cc_metadata())
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn each_bad_metadata_case_gets_its_rfc7591_error() {
    let data = DataDir::new();
    data.cli(&["tenant", "create", "acme", "--dcr", "open"]);
    data.cli(&["scope", "add", "--tenant", "acme", "api:read", "Read"]);
    let server = Server::start(&data);
    let cc = |extra: Value| {
        let mut m = json!({"grant_types": ["client_credentials"], "scope": "api:read"});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            cc(json!({"redirect_uris": ["http://app.example.com/cb"]})),
            "invalid_redirect_uri",
        ),
        (
            cc(json!({"redirect_uris": ["https://app.example.com/cb#frag"]})),
            "invalid_redirect_uri",
        ),
        (
            cc(json!({"redirect_uris": ["https://*.example.com/cb"]})),
            "invalid_redirect_uri",
        ),
        (
            cc(json!({"redirect_uris": ["javascript:alert(1)"]})),
            "invalid_redirect_uri",
        ),
        (
            cc(json!({"redirect_uris": ["data:text/html,<script>alert(1)</script>"]})),
            "invalid_redirect_uri",
        ),
        (
            cc(json!({"redirect_uris": ["/relative"]})),
            "invalid_redirect_uri",
        ),
        (
            cc(json!({"redirect_uris": ["https://user:pass@app.example.com/cb"]})),
            "invalid_redirect_uri",
        ),
        (
            cc(json!({"redirect_uris": "https://app.example.com/cb"})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"grant_types": ["password"]})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"grant_types": ["implicit"]})),
            "invalid_client_metadata",
        ),
        (cc(json!({"grant_types": []})), "invalid_client_metadata"),
        (json!({"scope": "api:read"}), "invalid_redirect_uri"),
        (
            cc(json!({"response_types": ["token"]})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"token_endpoint_auth_method": "none"})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"token_endpoint_auth_method": "private_key_jwt"})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"token_endpoint_auth_method": "client_secret_jwt"})),
            "invalid_client_metadata",
        ),
        (cc(json!({"scope": "api:read admin"})), "invalid_client_metadata"),
        (cc(json!({"scope": ["api:read"]})), "invalid_client_metadata"),
        (
            cc(json!({"client_name": "x".repeat(201)})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"client_name": "line\nbreak"})),
            "invalid_client_metadata",
        ),
        (cc(json!({"client_name": 5})), "invalid_client_metadata"),
        (
            cc(json!({"client_uri": "javascript:alert(1)"})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"logo_uri": "http://app.example.com/logo.png"})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"tos_uri": "data:text/plain,hi"})),
            "invalid_client_metadata",
        ),
        (
            cc(json!({"contacts": ["not an email"]})),
            "invalid_client_metadata",
        ),
        (cc(json!({"first_party": true})), "invalid_client_metadata"),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (md, error) in cases {
        let r = register(&server, Some("acme"), None, &md).await;
        assert_eq!(r.status, 400, "{md} -> {}", r.body);
        assert_eq!(r.body["error"], error, "{md} -> {}", r.body);
    }
    // Good metadata with every optional field passes, and unknown fields are ignored.
    let good = cc(json!({
        "client_name": "Agent ✓", "client_uri": "https://app.example.com", "logo_uri": "https://app.example.com/l.png",
        "tos_uri": "https://app.example.com/tos", "policy_uri": "https://app.example.com/privacy",
        "contacts": ["ops@example.com"], "software_id": "agent", "software_version": "1.2.3",
        "redirect_uris": ["https://app.example.com/cb", "http://127.0.0.1:8765/cb"], "x-unknown": 1
    }));
    let token = iat(&data, "acme", &[]);
    let r = register(&server, Some("acme"), Some(&token), &good).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("x-unknown").is_none());
}

#[tokio::test]
async fn rfc7592_read_update_delete_with_the_registration_access_token() {
    let data = DataDir::new();
    data.tenant_with_client("acme");
    let server = Server::start(&data);
    let iat_token = iat(&data, "acme", &[]);
    let r = register(&server, Some("acme"), Some(&iat_token), &cc_metadata()).await;
    assert_eq!(r.status, 201);
    let c = TestClient::from_registration(&r.body);
    let rat = c
        .registration_token
        .clone()
        .expect("a DCR client gets a registration token");
    let uri = r.body["registration_client_uri"].as_str().unwrap().to_string();

    // Wrong token, no token, another client's token: 401 invalid_token.
    let other_iat = iat(&data, "acme", &[]);
    let other = register(&server, Some("acme"), Some(&other_iat), &cc_metadata()).await;
    let other_rat = other.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for bad in [Some("wrong-token"), None, Some(other_rat.as_str())] {
        let mut req = http().get(&uri);
        if let Some(t) = bad {
            req = req.bearer_auth(t);
        }
        Resp::from(req.send().await.unwrap())
            .await
            .assert_error(401, "invalid_token");
    }
    let unknown = server.url("/oauth2/register/ffffffffffffffffffffffffffffffff");
    Resp::from(http().get(&unknown).bearer_auth(&rat).send().await.unwrap())
        .await
        .assert_error(401, "invalid_token");

    let read = Resp::from(http().get(&uri).bearer_auth(&rat).send().await.unwrap()).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["client_id"], c.id.as_str());
    assert_eq!(read.body["client_name"], "nightly build");
    assert!(
        read.body.get("client_secret").is_none(),
        "the secret is shown once only"
    );

    // Update: full metadata with client_id. It may rename the client, but not widen it.
    let mut md = cc_metadata();
    md["client_id"] = c.id.clone().into();
    md["client_name"] = "renamed".into();
    let mut wider = md.clone();
    wider["scope"] = "api:read api:write".into();
    Resp::from(
        http()
            .put(&uri)
            .bearer_auth(&rat)
            .json(&wider)
            .send()
            .await
            .unwrap(),
    )
    .await
    .assert_error(400, "invalid_client_metadata");
    let up = Resp::from(http().put(&uri).bearer_auth(&rat).json(&md).send().await.unwrap()).await;
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.body["client_name"], "renamed");
    assert_eq!(up.body["scope"], "api:read");
    post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials"), ("scope", "api:write")],
    )
    .await
    .assert_error(400, "invalid_scope");
    // Update with a mismatched client_id or bad metadata fails and changes nothing.
    let mut wrong = md.clone();
    wrong["client_id"] = "someone-else".into();
    Resp::from(
        http()
            .put(&uri)
            .bearer_auth(&rat)
            .json(&wrong)
            .send()
            .await
            .unwrap(),
    )
    .await
    .assert_error(400, "invalid_request");
    let mut bad = md.clone();
    bad["redirect_uris"] = json!(["http://evil.example/cb"]);
    Resp::from(
        http()
            .put(&uri)
            .bearer_auth(&rat)
            .json(&bad)
            .send()
            .await
            .unwrap(),
    )
    .await
    .assert_error(400, "invalid_redirect_uri");
    // Wrong token cannot update or delete.
    Resp::from(
        http()
            .put(&uri)
            .bearer_auth("nope")
            .json(&md)
            .send()
            .await
            .unwrap(),
    )
    .await
    .assert_error(401, "invalid_token");
    Resp::from(http().delete(&uri).bearer_auth("nope").send().await.unwrap())
        .await
        .assert_error(401, "invalid_token");

    let del = http().delete(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(del.status().as_u16(), 204);
    Resp::from(http().get(&uri).bearer_auth(&rat).send().await.unwrap())
        .await
        .assert_error(401, "invalid_token");
    post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
    let events = data.cli(&["audit", "list", "--tenant", "acme"]);
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["client.created", "client.updated", "client.deleted"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
}

/// Open registration is bounded per tenant: past the limit in a minute, 429 with Retry-After
/// (another tenant is not affected, and registration with an initial access token neither).
#[tokio::test]
async fn open_registration_is_rate_limited_per_tenant() {
    let data = DataDir::new();
    data.cli(&["tenant", "create", "busy", "--dcr", "open"]);
    data.cli(&["tenant", "create", "calm", "--dcr", "open"]);
    let server = Server::start(&data);
    let public = json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
    let mut created = 0;
    let mut limited = None;
    for _ in 0..70 {
        let r = register(&server, Some("busy"), None, &public).await;
        match r.status {
            201 => created += 1,
            429 => {
                limited = Some(r);
                break;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    let limited = limited.expect("a 429 within 70 registrations");
    assert_eq!(
        limited.body["error"], "temporarily_unavailable",
        "{}",
        limited.body
    );
    assert_eq!(limited.header("retry-after"), Some("60"));
    // 30 per minute; a minute boundary during the loop may allow up to twice that.
    assert!((30..=60).contains(&created), "{created}");
    assert_eq!(register(&server, Some("calm"), None, &public).await.status, 201);
    let token = iat(&data, "busy", &[]);
    let cc = json!({"grant_types": ["client_credentials"]});
    assert_eq!(
        register(&server, Some("busy"), Some(&token), &cc).await.status,
        201
    );
}

/// Clients that anyone registered (open DCR, no initial access token) and that got no token for
/// 30 days are deleted by the sweep (`bulwark client sweep`; on AWS the sweeper function, which
/// runs the same service function), as a delete would: their refresh tokens stop working and
/// introspect inactive, with an audit event `client.expired`. A client used within the 30 days,
/// one registered with an initial access token and one the operator made all stay.
#[tokio::test]
async fn unused_open_registrations_expire_and_nothing_else_does() {
    use crate::flow::*;
    const DAY: i64 = 86_400;
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    // Refresh tokens outlive the 30 days, so that only the sweep can end them.
    data.cli(&[
        "tenant",
        "set-lifetimes",
        &tenant,
        "--refresh-idle",
        &(60 * DAY).to_string(),
    ]);
    let sub = user(&data, &tenant, "alice");
    let server = Server::start(&data);
    let md = json!({"client_name": "Agent", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "scope": "openid offline_access api:read"});
    let public = |r: Resp| {
        assert_eq!(r.status, 201, "{}", r.body);
        TestClient {
            id: r.body["client_id"].as_str().unwrap().to_string(),
            secret: String::new(),
            registration_token: None,
            serves: Vec::new(),
        }
    };
    let open = || async { public(register(&server, Some(&tenant), None, &md).await) };
    let used = open().await; // tokens now, used again 20 days in
    let stale = open().await; // tokens now, never used again
    let unused = open().await; // never a token
    let token_dcr = iat(&data, &tenant, &[]);
    let with_iat = public(register(&server, Some(&tenant), Some(&token_dcr), &md).await);
    let by_operator = data.client(&tenant, "api:read", "client_secret_basic");

    let tokens = |c: TestClient| {
        let (server, tenant, sub) = (&server, tenant.clone(), sub.clone());
        async move {
            let w = World {
                tenant,
                client: c.clone(),
                sub,
            };
            let p = pkce();
            let code = get_code(&Browser::new(), server, &w, "openid offline_access api:read", &p).await;
            let t = redeem(server, &c, &code, &p.verifier).await;
            assert_eq!(t.status, 200, "{}", t.body);
            t.body["refresh_token"].as_str().unwrap().to_string()
        }
    };
    let used_rt = tokens(used.clone()).await;
    let stale_rt = tokens(stale.clone()).await;
    drop(server);

    let at = |days: i64| {
        Server::start_with(
            &data,
            &[],
            &[("BULWARK_CLOCK_OFFSET_SECS", &(days * DAY).to_string())],
        )
    };
    let later = at(20);
    let r = refresh(&later, &used, &used_rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let used_rt = r.body["refresh_token"].as_str().unwrap().to_string();
    drop(later);

    // 31 days in: the sweep.
    let (ok, swept, err) = data.cli_raw(
        &["client", "sweep", "--tenant", &tenant],
        &[("BULWARK_CLOCK_OFFSET_SECS", &(31 * DAY).to_string())],
    );
    assert!(ok, "{swept} {err}");
    let mut expired: Vec<&str> = swept["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    expired.sort_unstable();
    let mut expected = vec![stale.id.as_str(), unused.id.as_str()];
    expected.sort_unstable();
    assert_eq!(expired, expected);
    let listed = data.cli(&["client", "list", "--tenant", &tenant]);
    let ids: Vec<&str> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    for c in [&used, &with_iat, &by_operator] {
        assert!(ids.contains(&c.id.as_str()), "{} was deleted", c.id);
    }
    for c in [&stale, &unused] {
        assert!(!ids.contains(&c.id.as_str()), "{} is still there", c.id);
    }

    // The stale client's refresh token is dead (its client is gone); the used one's works.
    // (Public clients: nobody may introspect their refresh tokens, so the refreshes tell.)
    let later = at(31);
    refresh(&later, &stale, &stale_rt, &[])
        .await
        .assert_error(401, "invalid_client");
    let r = refresh(&later, &used, &used_rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Audited, each once.
    let events = data.cli(&["audit", "list", "--tenant", &tenant, "--kind", "client.expired"]);
    let mut subjects: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    assert_eq!(subjects, expected, "{events}");
}
