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
    assert!(active(&server, &plain, &at).await);
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
    assert!(!active(&server, &plain, &at).await);
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
