//! Federation: the JWT bearer grant (RFC 7523 §2.1) for users linked to a subject at an
//! identity provider the tenant trusts. Both backends.

use jsonwebtoken::{Algorithm, Header, encode};
use serde_json::{Value, json};

use crate::flow::*;
use crate::keyless::{Key, jwks_host, key, now};
use crate::support::*;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const IDP: &str = "https://idp.example";

/// An assertion from `iss` about `sub`, claims patched by `patch` (null removes).
fn idp_assertion(k: &Key, iss: &str, sub: &str, aud: &str, typ: Option<&str>, patch: Value) -> String {
    let mut c =
        json!({"iss": iss, "sub": sub, "aud": aud, "iat": now(), "exp": now() + 300, "jti": unique()});
    for (name, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = v.clone();
        }
    }
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(k.kid.clone());
    h.typ = typ.map(str::to_string);
    crate::support::jwt();
    encode(&h, &c, &k.enc).unwrap()
}

struct Fed {
    tenant: String,
    sub: String,
    client: TestClient,
    idp: Key,
}

fn setup(data: &DataDir) -> Fed {
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:write", "Write"]);
    let sub = user(data, &tenant, "alice");
    let idp = key("idp-1");
    let f = data.path().join(format!("idp-{}.json", unique()));
    std::fs::write(&f, json!({"keys": [idp.jwk]}).to_string()).unwrap();
    let listed = data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        IDP,
        "--jwks-file",
        f.to_str().unwrap(),
    ]);
    assert_eq!(listed["issuers"][0]["issuer"], IDP);
    data.cli(&[
        "user",
        "link",
        "--tenant",
        &tenant,
        "--username",
        "alice",
        "--issuer",
        IDP,
        "--subject",
        "ext-alice",
    ]);
    let client = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Federated",
        "--grant-type",
        GRANT,
        "--scope",
        "openid api:read",
    ]));
    Fed {
        tenant,
        sub,
        client,
        idp,
    }
}

async fn bearer(server: &Server, c: &TestClient, assertion: &str, extra: &[(&str, &str)]) -> Resp {
    let mut form = vec![("grant_type", GRANT), ("assertion", assertion)];
    form.extend_from_slice(extra);
    post_form(&server.url("/oauth2/token"), Some((&c.id, &c.secret)), &form).await
}

#[tokio::test]
async fn a_trusted_issuers_assertion_gets_tokens_for_the_linked_user_and_nothing_else_does() {
    let data = DataDir::new();
    let f = setup(&data);
    let server = Server::start(&data);
    let iss = server.issuer.clone();
    let te = server.url("/oauth2/token");
    let plain = data.client(&f.tenant, "api:read", "client_secret_basic");
    let rs = data.resource_server(&f.tenant, &[]);

    let r = bearer(
        &server,
        &f.client,
        &idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({})),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let c = jwt_part(&at, 1);
    assert_eq!(c["sub"], f.sub.as_str(), "sub is the Bulwark user id");
    assert_eq!(c["client_id"], f.client.id.as_str());
    assert!(c["gid"].is_string());
    assert_eq!(r.body["scope"], "api:read openid");
    assert!(active(&server, &rs, &at).await);
    // The token endpoint as audience (untyped), and a narrower scope.
    let r = bearer(
        &server,
        &f.client,
        &idp_assertion(&f.idp, IDP, "ext-alice", &te, Some("JWT"), json!({})),
        &[("scope", "api:read")],
    )
    .await;
    assert_eq!(
        (r.status, r.body["scope"].as_str()),
        (200, Some("api:read")),
        "{}",
        r.body
    );

    // Refusals: invalid_grant for every assertion problem.
    let once = idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({}));
    assert_eq!(bearer(&server, &f.client, &once, &[]).await.status, 200);
    let stranger = key("idp-1");
    for (why, a) in [
        ("a replay", once.clone()),
        (
            "an unlinked subject",
            idp_assertion(&f.idp, IDP, "ext-bob", &iss, None, json!({})),
        ),
        (
            "an untrusted issuer",
            idp_assertion(&f.idp, "https://evil.example", "ext-alice", &iss, None, json!({})),
        ),
        (
            "another key under the trusted kid",
            idp_assertion(&stranger, IDP, "ext-alice", &iss, None, json!({})),
        ),
        (
            "a wrong audience",
            idp_assertion(&f.idp, IDP, "ext-alice", "https://other.example", None, json!({})),
        ),
        (
            "several audiences",
            idp_assertion(
                &f.idp,
                IDP,
                "ext-alice",
                &iss,
                None,
                json!({"aud": [iss, "https://other.example"]}),
            ),
        ),
        (
            "exp over 10 minutes ahead",
            idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({"exp": now() + 1200})),
        ),
        (
            "expired",
            idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({"exp": now() - 120})),
        ),
        (
            "no exp",
            idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({"exp": null})),
        ),
        (
            "no jti",
            idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({"jti": null})),
        ),
        (
            "not yet valid",
            idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({"nbf": now() + 600})),
        ),
        (
            "a client authentication JWT",
            idp_assertion(
                &f.idp,
                IDP,
                "ext-alice",
                &iss,
                Some("client-authentication+jwt"),
                json!({}),
            ),
        ),
        ("garbage", "not.a.jwt".to_string()),
    ] {
        let r = bearer(&server, &f.client, &a, &[]).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{why}: {}",
            r.body
        );
    }
    post_form(
        &te,
        Some((&f.client.id, &f.client.secret)),
        &[("grant_type", GRANT)],
    )
    .await
    .assert_error(400, "invalid_request");
    bearer(
        &server,
        &f.client,
        &idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({})),
        &[("scope", "api:write")],
    )
    .await
    .assert_error(400, "invalid_scope");
    // A client without the grant, and DCR asking for it.
    bearer(
        &server,
        &plain,
        &idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({})),
        &[],
    )
    .await
    .assert_error(400, "unauthorized_client");
    let iat = data.cli(&["iat", "create", "--tenant", &f.tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http()
        .post(server.url("/oauth2/register"))
        .header("x-bulwark-tenant", &f.tenant)
        .bearer_auth(&iat)
        .json(&json!({"grant_types": [GRANT], "scope": "api:read"}))
        .send()
        .await
        .unwrap();
    Resp::from(r).await.assert_error(400, "invalid_client_metadata");

    // 32 concurrent uses of one assertion: exactly one token.
    let a = idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({}));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (url, c, a) = (te.clone(), f.client.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            post_form(
                &url,
                Some((&c.id, &c.secret)),
                &[("grant_type", GRANT), ("assertion", &a)],
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");

    // The CLI's rules.
    let (ok, _, e) = data.cli_raw(
        &[
            "issuer",
            "add",
            "--tenant",
            &f.tenant,
            "--issuer",
            "https://keyless.example",
        ],
        &[],
    );
    assert!(!ok && e.contains("--jwks-file or --jwks-uri"), "{e}");
    let (ok, _, e) = data.cli_raw(
        &[
            "issuer",
            "add",
            "--tenant",
            &f.tenant,
            "--issuer",
            "http://idp.example",
            "--jwks-uri",
            "https://idp.example/jwks",
        ],
        &[],
    );
    assert!(!ok && e.contains("https"), "{e}");
    let (ok, _, e) = data.cli_raw(
        &[
            "user",
            "link",
            "--tenant",
            &f.tenant,
            "--username",
            "alice",
            "--issuer",
            "https://evil.example",
            "--subject",
            "x",
        ],
        &[],
    );
    assert!(!ok && e.contains("not a trusted issuer"), "{e}");
    user(&data, &f.tenant, "bob");
    let (ok, _, e) = data.cli_raw(
        &[
            "user",
            "link",
            "--tenant",
            &f.tenant,
            "--username",
            "bob",
            "--issuer",
            IDP,
            "--subject",
            "ext-alice",
        ],
        &[],
    );
    assert!(!ok && e.contains("already exists"), "one subject, one user: {e}");

    // Deactivating the user ends the token and refuses new assertions; so does distrusting the issuer.
    data.cli(&["user", "deactivate", "--tenant", &f.tenant, "--username", "alice"]);
    assert!(!active(&server, &rs, &at).await);
    bearer(
        &server,
        &f.client,
        &idp_assertion(&f.idp, IDP, "ext-alice", &iss, None, json!({})),
        &[],
    )
    .await
    .assert_error(400, "invalid_grant");
    data.cli(&[
        "user",
        "link",
        "--tenant",
        &f.tenant,
        "--username",
        "bob",
        "--issuer",
        IDP,
        "--subject",
        "ext-bob",
    ]);
    assert_eq!(
        bearer(
            &server,
            &f.client,
            &idp_assertion(&f.idp, IDP, "ext-bob", &iss, None, json!({})),
            &[]
        )
        .await
        .status,
        200
    );
    data.cli(&["issuer", "remove", "--tenant", &f.tenant, "--issuer", IDP]);
    after_tenant_change().await;
    bearer(
        &server,
        &f.client,
        &idp_assertion(&f.idp, IDP, "ext-bob", &iss, None, json!({})),
        &[],
    )
    .await
    .assert_error(400, "invalid_grant");
    let audit: Vec<String> = data.cli(&["audit", "list", "--tenant", &f.tenant])["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    for k in ["issuer.trusted", "user.linked", "grant.created", "issuer.removed"] {
        assert!(audit.iter().any(|x| x == k), "{k} missing: {audit:?}");
    }
}

#[tokio::test]
async fn an_issuers_keys_may_be_fetched_from_its_jwks_uri() {
    let data = DataDir::new();
    let f = setup(&data);
    let other = key("idp-2");
    let (base, hits, task) = jwks_host(json!({"keys": [other.jwk]})).await;
    let idp2 = "https://idp2.example";
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &f.tenant,
        "--issuer",
        idp2,
        "--jwks-uri",
        &format!("{base}/jwks"),
    ]);
    data.cli(&[
        "user",
        "link",
        "--tenant",
        &f.tenant,
        "--username",
        "alice",
        "--issuer",
        idp2,
        "--subject",
        "a-at-2",
    ]);
    let server = Server::start(&data);
    for _ in 0..2 {
        let r = bearer(
            &server,
            &f.client,
            &idp_assertion(&other, idp2, "a-at-2", &server.issuer, None, json!({})),
            &[],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            jwt_part(r.body["access_token"].as_str().unwrap(), 1)["sub"],
            f.sub.as_str()
        );
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "cached");
    // The first issuer's key does not speak for the second.
    bearer(
        &server,
        &f.client,
        &idp_assertion(&f.idp, idp2, "a-at-2", &server.issuer, None, json!({})),
        &[],
    )
    .await
    .assert_error(400, "invalid_grant");
    task.abort();
}

// ID-JAG: the Identity Assertion JWT Authorization Grant profile
// (draft-ietf-oauth-identity-assertion-authz-grant), from an issuer trusted with `--id-jag`.

const JAG_IDP: &str = "https://acme.idp.example";
const JAG_TYP: &str = "oauth-id-jag+jwt";

/// An ID-JAG from `iss` about `sub` for `client_id`, claims patched by `patch` (null removes).
fn id_jag(k: &Key, iss: &str, sub: &str, aud: &str, client_id: &str, patch: Value) -> String {
    let mut p = json!({"client_id": client_id});
    for (name, v) in patch.as_object().unwrap() {
        p[name] = v.clone();
    }
    idp_assertion(k, iss, sub, aud, Some(JAG_TYP), p)
}

struct Jag {
    tenant: String,
    /// Its trusted ID-JAG issuer.
    issuer: String,
    sub: String,
    idp: Key,
    /// Registered for the code flow with refresh tokens too, and for jwt-bearer.
    client: TestClient,
    /// Another client of the tenant registered for jwt-bearer.
    other: TestClient,
    api: String,
}

fn setup_id_jag(data: &DataDir, issuer: &str) -> Jag {
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:write", "Write"]);
    let api = format!("https://api.{tenant}.example");
    data.cli(&["resource", "add", "--tenant", &tenant, &api]);
    let sub = user(data, &tenant, "alice");
    let idp = key("jag-1");
    let f = data.path().join(format!("jag-{}.json", unique()));
    std::fs::write(&f, json!({"keys": [idp.jwk]}).to_string()).unwrap();
    let listed = data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        issuer,
        "--jwks-file",
        f.to_str().unwrap(),
        "--id-jag",
    ]);
    assert_eq!(listed["issuers"][0]["id_jag"], true, "{listed}");
    data.cli(&[
        "user",
        "link",
        "--tenant",
        &tenant,
        "--username",
        "alice",
        "--issuer",
        issuer,
        "--subject",
        "ext-alice",
    ]);
    let client = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Agent",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        GRANT,
        "--redirect-uri",
        "https://agent.example/cb",
        "--scope",
        "openid api:read api:write",
    ]));
    let other = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Other",
        "--grant-type",
        GRANT,
        "--scope",
        "openid api:read api:write",
    ]));
    Jag {
        tenant,
        issuer: issuer.to_string(),
        sub,
        idp,
        client,
        other,
        api,
    }
}

#[tokio::test]
async fn an_id_jag_gets_an_access_token_for_the_linked_user_within_its_scope_and_resource() {
    let data = DataDir::new();
    let j = setup_id_jag(&data, JAG_IDP);
    let server = Server::start(&data);
    let iss = server.base.clone();
    let api = format!("https://api.{}.example", j.tenant);
    let default = format!("urn:bulwark:tenant:{}", j.tenant);
    let rs = data.resource_server(&j.tenant, &[&api, &default]);

    let r = bearer(
        &server,
        &j.client,
        &id_jag(
            &j.idp,
            JAG_IDP,
            "ext-alice",
            &iss,
            &j.client.id,
            json!({"scope": "api:read", "resource": j.api, "auth_time": now() - 60, "amr": ["mfa"]}),
        ),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.get("refresh_token").is_none(),
        "no refresh token for an ID-JAG, even to a client registered for them: {}",
        r.body
    );
    assert_eq!(r.body["scope"], "api:read");
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let c = jwt_part(&at, 1);
    assert_eq!(c["sub"], j.sub.as_str(), "sub is the Bulwark user id");
    assert_eq!(c["client_id"], j.client.id.as_str());
    assert_eq!(c["aud"], j.api.as_str(), "the ID-JAG's resource is the audience");
    assert!(active(&server, &rs, &at).await);

    // No scope claim: nothing by default (least privilege) — only what the request names,
    // within the client's scopes; no resource claim: the default audience.
    bearer(
        &server,
        &j.client,
        &id_jag(&j.idp, JAG_IDP, "ext-alice", &iss, &j.client.id, json!({})),
        &[],
    )
    .await
    .assert_error(400, "invalid_scope");
    let r = bearer(
        &server,
        &j.client,
        &id_jag(&j.idp, JAG_IDP, "ext-alice", &iss, &j.client.id, json!({})),
        &[("scope", "api:write openid")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "api:write openid");
    let tenant = &j.tenant;
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["aud"],
        format!("urn:bulwark:tenant:{tenant}").as_str()
    );
    // The request may narrow the ID-JAG's scope; the claim's scopes the client may not hold
    // are left out; aud may be a one-element array.
    let r = bearer(
        &server,
        &j.client,
        &id_jag(
            &j.idp,
            JAG_IDP,
            "ext-alice",
            &iss,
            &j.client.id,
            json!({"scope": "api:read api:write"}),
        ),
        &[("scope", "api:write")],
    )
    .await;
    assert_eq!(
        (r.status, r.body["scope"].as_str()),
        (200, Some("api:write")),
        "{}",
        r.body
    );
    let r = bearer(
        &server,
        &j.client,
        &id_jag(
            &j.idp,
            JAG_IDP,
            "ext-alice",
            &iss,
            &j.client.id,
            json!({"scope": "api:read admin:everything", "aud": [iss]}),
        ),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.body["scope"].as_str()),
        (200, Some("api:read")),
        "{}",
        r.body
    );

    // At the tenant's own issuer, the ID-JAG names that issuer, and the token carries it.
    let tiss = format!("{iss}/t/{tenant}");
    let r = post_form(
        &server.url(&format!("/t/{tenant}/oauth2/token")),
        Some((&j.client.id, &j.client.secret)),
        &[
            ("grant_type", GRANT),
            (
                "assertion",
                &id_jag(
                    &j.idp,
                    JAG_IDP,
                    "ext-alice",
                    &tiss,
                    &j.client.id,
                    json!({"scope": "api:read"}),
                ),
            ),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["iss"],
        tiss.as_str()
    );

    let audit = data.cli(&["audit", "list", "--tenant", tenant])["events"].to_string();
    assert!(audit.contains("grant_type=id-jag"), "{audit}");
}

#[tokio::test]
async fn an_id_jag_is_refused_for_another_client_audience_tenant_or_profile_and_beyond_its_scope_and_resource()
 {
    let data = DataDir::new();
    let j = setup_id_jag(&data, JAG_IDP);
    let tenant = j.tenant.clone();
    // The same tenant trusts a plain issuer too, for alice.
    let plain_idp = "https://plain.idp.example";
    let plain_key = key("plain-1");
    let f = data.path().join(format!("plain-{}.json", unique()));
    std::fs::write(&f, json!({"keys": [plain_key.jwk]}).to_string()).unwrap();
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        plain_idp,
        "--jwks-file",
        f.to_str().unwrap(),
    ]);
    data.cli(&[
        "user",
        "link",
        "--tenant",
        &tenant,
        "--username",
        "alice",
        "--issuer",
        plain_idp,
        "--subject",
        "ext-alice",
    ]);
    // Another tenant, with an ID-JAG issuer of its own, a user with the same subject there, and
    // a resource of its own.
    let g = setup_id_jag(&data, "https://globex.idp.example");
    let server = Server::start(&data);
    let iss = server.base.clone();
    let te = server.url("/oauth2/token");
    let tiss = format!("{iss}/t/{tenant}");
    let rs = data.resource_server(&tenant, &[]);
    // Each with a scope claim (an ID-JAG without one buys nothing the request does not name).
    let jag = |patch: Value| {
        let mut p = json!({"scope": "api:read"});
        for (k, v) in patch.as_object().unwrap() {
            p[k] = v.clone();
        }
        id_jag(&j.idp, &j.issuer, "ext-alice", &iss, &j.client.id, p)
    };

    // A stolen ID-JAG is nothing to another client, even of the same tenant and grant; the
    // attempt does not use it up for its client.
    let stolen = jag(json!({}));
    bearer(&server, &j.other, &stolen, &[])
        .await
        .assert_error(400, "invalid_grant");
    let r = bearer(&server, &j.client, &stolen, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = r.body["access_token"].as_str().unwrap().to_string();
    // The plain issuer's assertions still work in the same tenant.
    let r = bearer(
        &server,
        &j.other,
        &idp_assertion(&plain_key, plain_idp, "ext-alice", &iss, None, json!({})),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    for (why, a) in [
        ("a replay", stolen.clone()),
        ("no client_id", jag(json!({"client_id": null}))),
        (
            "another tenant's issuer as aud",
            jag(json!({"aud": format!("{iss}/t/{}", g.tenant)})),
        ),
        (
            "the tenant's own issuer as aud at the shared one",
            jag(json!({"aud": tiss})),
        ),
        ("the token endpoint as aud", jag(json!({"aud": te}))),
        (
            "several audiences",
            jag(json!({"aud": [iss, "https://other.example"]})),
        ),
        (
            "another tenant's trusted issuer",
            id_jag(&g.idp, &g.issuer, "ext-alice", &iss, &j.client.id, json!({})),
        ),
        (
            "the ID-JAG claims as a plain JWT",
            idp_assertion(
                &j.idp,
                JAG_IDP,
                "ext-alice",
                &iss,
                Some("JWT"),
                json!({"client_id": j.client.id}),
            ),
        ),
        (
            "the ID-JAG claims untyped",
            idp_assertion(
                &j.idp,
                JAG_IDP,
                "ext-alice",
                &iss,
                None,
                json!({"client_id": j.client.id}),
            ),
        ),
        (
            "an ID-JAG from a plain issuer",
            id_jag(&plain_key, plain_idp, "ext-alice", &iss, &j.client.id, json!({})),
        ),
        ("expired", jag(json!({"exp": now() - 120}))),
        ("exp over 10 minutes ahead", jag(json!({"exp": now() + 1200}))),
        ("no iat", jag(json!({"iat": null}))),
        ("no jti", jag(json!({"jti": null}))),
        ("a proof-of-possession binding", jag(json!({"cnf": {"jkt": "x"}}))),
        (
            "authorization_details",
            jag(json!({"authorization_details": [{"type": "x"}]})),
        ),
        ("another aud_tenant", jag(json!({"aud_tenant": g.tenant}))),
        (
            "an unlinked subject",
            id_jag(
                &j.idp,
                JAG_IDP,
                "ext-bob",
                &iss,
                &j.client.id,
                json!({"scope": "api:read"}),
            ),
        ),
        (
            "another key under the trusted kid",
            id_jag(
                &key("jag-1"),
                JAG_IDP,
                "ext-alice",
                &iss,
                &j.client.id,
                json!({"scope": "api:read"}),
            ),
        ),
    ] {
        let r = bearer(&server, &j.client, &a, &[]).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{why}: {}",
            r.body
        );
    }
    // An ID-JAG for the shared issuer is nothing at the tenant's own.
    post_form(
        &server.url(&format!("/t/{tenant}/oauth2/token")),
        Some((&j.client.id, &j.client.secret)),
        &[("grant_type", GRANT), ("assertion", &jag(json!({})))],
    )
    .await
    .assert_error(400, "invalid_grant");

    // Resources: only the tenant's, and a token only for the ID-JAG's.
    for (why, a, extra) in [
        (
            "a resource not the tenant's",
            jag(json!({"resource": "https://evil.example/api"})),
            None,
        ),
        (
            "another tenant's resource",
            jag(json!({"resource": [j.api, g.api]})),
            None,
        ),
        (
            "a request for a resource the ID-JAG does not name",
            jag(json!({"resource": j.api})),
            Some(format!("urn:bulwark:tenant:{tenant}")),
        ),
    ] {
        let extra: Vec<(&str, &str)> = extra.iter().map(|r| ("resource", r.as_str())).collect();
        let r = bearer(&server, &j.client, &a, &extra).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_target")),
            "{why}: {}",
            r.body
        );
    }
    // Scope: never beyond the ID-JAG's, nor the client's.
    for (why, claim, asked) in [
        ("widening the ID-JAG's", "api:read", "api:read api:write"),
        (
            "beyond the client's",
            "api:read admin:everything",
            "admin:everything",
        ),
        ("none the client may hold", "admin:everything", ""),
    ] {
        let asked: Vec<(&str, &str)> = Some(asked)
            .filter(|a| !a.is_empty())
            .map(|a| ("scope", a))
            .into_iter()
            .collect();
        let r = bearer(&server, &j.client, &jag(json!({"scope": claim})), &asked).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{why}: {}",
            r.body
        );
    }

    // A deactivated user: the token ends, and no ID-JAG gets another.
    data.cli(&["user", "deactivate", "--tenant", &tenant, "--username", "alice"]);
    assert!(!active(&server, &rs, &at).await);
    bearer(&server, &j.client, &jag(json!({})), &[])
        .await
        .assert_error(400, "invalid_grant");

    // The reasons are in the log; the ID-JAGs and tokens are not (nor their signatures).
    let log_path = server.log.clone();
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("client_id is not the authenticated client"), "{log}");
    for secret in [&stolen, &at] {
        assert!(
            !log.contains(secret.rsplit('.').next().unwrap()),
            "a secret reached the log"
        );
    }
}

/// The draft's OPTIONAL `tenant` claim (an identity provider serving many tenants of its own
/// under one issuer): ignored where the issuer is trusted without `idp_tenant`; where it is
/// trusted for one of the provider's tenants (CLI `--idp-tenant`, admin API `idp_tenant`), the
/// claim must be that one. Issuers are managed through the admin API as through the CLI.
#[tokio::test]
async fn an_id_jags_tenant_claim_is_checked_where_the_issuer_is_trusted_for_one_of_its_tenants() {
    let data = DataDir::new();
    let j = setup_id_jag(&data, JAG_IDP);
    let server = Server::start(&data);
    let aud = server.issuer.clone();
    let jag = |patch: Value| {
        let mut p = json!({"scope": "api:read"});
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        id_jag(&j.idp, JAG_IDP, "ext-alice", &aud, &j.client.id, p)
    };
    let status = |r: Resp| (r.status, r.body["error"].as_str().map(str::to_string));
    let ok = (200, None);
    let refused = (400, Some("invalid_grant".to_string()));
    // Trusted without a provider tenant: the claim is ignored.
    assert_eq!(
        status(bearer(&server, &j.client, &jag(json!({"tenant": "contoso"})), &[]).await),
        ok
    );

    // The admin API trusts the same issuer for the provider's tenant `contoso`.
    let (_, admin) = crate::admin::admin_token(&data, &server, &j.tenant).await;
    let api = crate::admin::Api {
        server: &server,
        token: admin,
    };
    let r = api
        .post(
            "/admin/v1/issuers",
            json!({"issuer": JAG_IDP, "jwks": {"keys": [j.idp.jwk]}, "id_jag": true, "idp_tenant": "contoso"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"][0]["idp_tenant"], "contoso", "{}", r.body);
    let r = api.get("/admin/v1/issuers").await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1), "{}", r.body);
    let r = api
        .post(
            "/admin/v1/issuers",
            json!({"issuer": "https://other.idp.example", "jwks": {"keys": [j.idp.jwk]}, "idp_tenant": "contoso"}),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["field"]),
        (400, &json!("idp_tenant")),
        "{}",
        r.body
    );
    after_tenant_change().await;
    assert_eq!(
        status(bearer(&server, &j.client, &jag(json!({"tenant": "contoso"})), &[]).await),
        ok
    );
    assert_eq!(
        status(bearer(&server, &j.client, &jag(json!({"tenant": "fabrikam"})), &[]).await),
        refused
    );
    assert_eq!(
        status(bearer(&server, &j.client, &jag(json!({})), &[]).await),
        refused,
        "no tenant claim"
    );

    // The CLI moves the trust to `fabrikam`.
    let f = data.path().join("jag-again.json");
    std::fs::write(&f, json!({"keys": [j.idp.jwk]}).to_string()).unwrap();
    let listed = data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &j.tenant,
        "--issuer",
        JAG_IDP,
        "--jwks-file",
        f.to_str().unwrap(),
        "--id-jag",
        "--idp-tenant",
        "fabrikam",
    ]);
    assert_eq!(listed["issuers"][0]["idp_tenant"], "fabrikam", "{listed}");
    after_tenant_change().await;
    assert_eq!(
        status(bearer(&server, &j.client, &jag(json!({"tenant": "fabrikam"})), &[]).await),
        ok
    );
    assert_eq!(
        status(bearer(&server, &j.client, &jag(json!({"tenant": "contoso"})), &[]).await),
        refused
    );

    // Removed through the admin API: nothing from it any more.
    let r = api
        .call(
            reqwest::Method::DELETE,
            &format!("/admin/v1/issuers?issuer={}", urlencode(JAG_IDP)),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    after_tenant_change().await;
    assert_eq!(
        status(bearer(&server, &j.client, &jag(json!({"tenant": "fabrikam"})), &[]).await),
        refused
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An assertion's `jti` is used up in its own tenant only: another tenant that trusts an issuer
/// of the same name (with keys of its own) cannot burn this tenant's `jti`s in advance.
#[tokio::test]
async fn an_assertions_jti_is_used_up_only_in_its_own_tenant() {
    let data = DataDir::new();
    let a = setup(&data);
    let b = setup(&data);
    let server = Server::start(&data);
    let post = |url: String, c: TestClient, assertion: String| async move {
        post_form(
            &url,
            Some((&c.id, &c.secret)),
            &[("grant_type", GRANT), ("assertion", &assertion)],
        )
        .await
    };
    let jti = json!({"jti": "predictable-1"});
    // Tenant b (at the shared issuer), with its own key under the same issuer name, first.
    let r = post(
        server.shared_url("/oauth2/token"),
        b.client.clone(),
        idp_assertion(&b.idp, IDP, "ext-alice", &server.base, None, jti.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Tenant a's own assertion with that jti still works, once.
    let ours = idp_assertion(&a.idp, IDP, "ext-alice", &server.issuer, None, jti);
    let r = post(server.url("/oauth2/token"), a.client.clone(), ours.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    post(server.url("/oauth2/token"), a.client.clone(), ours)
        .await
        .assert_error(400, "invalid_grant");
}
