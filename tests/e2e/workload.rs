//! Workload identity federation: `federated` clients that authenticate with the token their
//! platform issued (GitHub Actions, Kubernetes) from an issuer the tenant trusts with `issuer add
//! --workload`, and no secret. Tokens shaped exactly like the platforms' (claim sets, RS256,
//! `kid`), signed by the test's own issuer key. Both backends.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::admin::{Api, admin_token};
use crate::flow::user;
use crate::keyless::{jwks_host, key, now};
use crate::support::*;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const GITHUB: &str = "https://token.actions.githubusercontent.com";
const K8S: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const MAIN: &str = "repo:octo-org/octo-repo:ref:refs/heads/main";

/// The platform's signing key: RSA 2048, as GitHub's and Kubernetes' are (RS256).
pub struct Platform {
    pub enc: EncodingKey,
    pub jwk: Value,
    pub kid: String,
}

pub fn platform(kid: &str) -> Platform {
    let b64 = base64::engine::general_purpose::STANDARD;
    let der = b64
        .decode(include_str!("../../shared/src/keys/testdata/rsa2048-pkcs1.der.b64").trim())
        .unwrap();
    let n = include_str!("../../shared/src/keys/testdata/rsa2048-n.b64url").trim();
    Platform {
        enc: EncodingKey::from_rsa_der(&der),
        // As GitHub publishes its keys (less the certificate chain).
        jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": n, "e": "AQAB"}),
        kid: kid.into(),
    }
}

/// Sign `claims` as the platform does: RS256, `typ: JWT`, its `kid`.
pub fn sign(p: &Platform, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(p.kid.clone());
    h.typ = Some("JWT".into());
    jwt();
    encode(&h, claims, &p.enc).unwrap()
}

fn patched(mut c: Value, patch: Value) -> Value {
    for (name, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = v.clone();
        }
    }
    c
}

/// A GitHub Actions OIDC token's claims for a push to `ref_` of `repo` (the claim set GitHub
/// documents, "Understanding the OIDC token"), `aud` as the workflow asked for it.
pub fn github_claims(repo: &str, ref_: &str, aud: &str, patch: Value) -> Value {
    let owner = repo.split('/').next().unwrap();
    let t = now();
    patched(
        json!({
            "jti": unique(),
            "sub": format!("repo:{repo}:ref:{ref_}"),
            "aud": aud,
            "ref": ref_,
            "sha": "example-sha-d6e7b1f5c0a4",
            "repository": repo,
            "repository_owner": owner,
            "repository_owner_id": "65",
            "run_id": "6447823123",
            "run_number": "42",
            "run_attempt": "1",
            "repository_visibility": "private",
            "repository_id": "35",
            "actor_id": "12",
            "actor": "octocat",
            "workflow": "deploy",
            "head_ref": "",
            "base_ref": "",
            "event_name": "push",
            "ref_protected": "true",
            "ref_type": "branch",
            "workflow_ref": format!("{repo}/.github/workflows/deploy.yml@{ref_}"),
            "workflow_sha": "example-sha-d6e7b1f5c0a4",
            "job_workflow_ref": format!("{repo}/.github/workflows/deploy.yml@{ref_}"),
            "job_workflow_sha": "example-sha-d6e7b1f5c0a4",
            "runner_environment": "github-hosted",
            "iss": GITHUB,
            "nbf": t - 5,
            "exp": t + 300,
            "iat": t,
        }),
        patch,
    )
}

/// A Kubernetes projected service-account token's claims (`serviceAccountToken` volume with
/// `audience` and `expirationSeconds: 3600`), for `namespace`/`sa`.
fn kubernetes_claims(namespace: &str, sa: &str, aud: &str, patch: Value) -> Value {
    let t = now();
    patched(
        json!({
            "aud": [aud],
            "exp": t + 3600,
            "iat": t,
            "iss": K8S,
            "jti": unique(),
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "ip-10-0-1-23.ec2.internal", "uid": "0d3e8f8a-5f49-4b2c-9b67-1f0e3c2a9d11"},
                "pod": {"name": format!("{sa}-7d9c6b5f4-x2k8p"), "uid": "7a1c0b52-3c1e-4e2b-8f0a-2d3b4c5d6e7f"},
                "serviceaccount": {"name": sa, "uid": "c7e1d2a3-b4c5-4d6e-8f90-a1b2c3d4e5f6"},
                "warnafter": t + 2880
            },
            "nbf": t,
            "sub": format!("system:serviceaccount:{namespace}:{sa}"),
        }),
        patch,
    )
}

/// The form body of [`cc`].
pub fn cc_form(client_id: &str, token: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", token)
        .finish()
}

/// `client_credentials` with a workload token as the client assertion, for `client_id`.
pub async fn cc(url: &str, client_id: &str, token: &str) -> Resp {
    post_form(
        url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", token),
        ],
    )
    .await
}

fn write_jwks(data: &DataDir, keys: &[&Value]) -> String {
    let f = data.path().join(format!("jwks-{}.json", unique()));
    std::fs::write(&f, json!({"keys": keys}).to_string()).unwrap();
    f.to_str().unwrap().to_string()
}

fn federated_client(
    data: &DataDir,
    tenant: &str,
    issuer: &str,
    subjects: &[&str],
    audience: Option<&str>,
) -> Value {
    let mut args = vec![
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "deploy",
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "federated",
        "--federated-issuer",
        issuer,
        "--scope",
        "api:read",
    ];
    for s in subjects {
        args.extend_from_slice(&["--federated-subject", s]);
    }
    if let Some(a) = audience {
        args.extend_from_slice(&["--federated-audience", a]);
    }
    data.cli(&args)
}

/// An unsigned token (`alg: none`) and HS256 tokens keyed with the issuer's public key (the
/// algorithm-confusion attack), each with the claims of a good token.
fn forged(p: &Platform, claims: &Value) -> Vec<(&'static str, String)> {
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": p.kid}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let hs = |secret: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(p.kid.clone());
        jwt();
        encode(&h, claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    vec![
        ("alg none", none),
        (
            "HS256 keyed with the issuer's JWKS",
            hs(json!({"keys": [p.jwk]}).to_string().as_bytes()),
        ),
        (
            "HS256 keyed with the issuer's modulus",
            hs(p.jwk["n"].as_str().unwrap().as_bytes()),
        ),
    ]
}

#[tokio::test]
async fn github_actions_tokens_authenticate_a_federated_client_and_nothing_else_does() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    let secret_client = data.tenant_with_client(&tenant);
    let gh = platform("gh-1");
    let (base, hits, task) = jwks_host(json!({"keys": [gh.jwk]})).await;
    // The tenant trusts GitHub for workloads, each token once (GitHub mints one per request).
    let listed = data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        GITHUB,
        "--jwks-uri",
        &format!("{base}/jwks"),
        "--workload",
        "--single-use",
    ]);
    assert_eq!(
        (
            &listed["issuers"][0]["workload"],
            &listed["issuers"][0]["single_use"]
        ),
        (&json!(true), &json!(true)),
        "{listed}"
    );
    // And an identity provider for its users (RFC 7523 user federation), not for workloads.
    let idp = key("idp-1");
    let idp_iss = "https://idp.example";
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        idp_iss,
        "--jwks-file",
        &write_jwks(&data, &[&idp.jwk]),
    ]);
    let created = federated_client(&data, &tenant, GITHUB, &[MAIN], None);
    assert!(created.get("client_secret").is_none(), "no secret: {created}");
    assert_eq!(created["token_endpoint_auth_method"], "federated");
    assert_eq!(created["federated_credential"]["subjects"], json!([MAIN]));
    let id = created["client_id"].as_str().unwrap().to_string();
    // A federated client of the user federation's issuer, or of none, is refused.
    for (why, issuer) in [
        ("a user federation's issuer", idp_iss),
        ("an untrusted issuer", "https://evil.example"),
    ] {
        let (ok, _, e) = data.cli_raw(
            &[
                "client",
                "create",
                "--tenant",
                &tenant,
                "--name",
                "x",
                "--grant-type",
                "client_credentials",
                "--auth-method",
                "federated",
                "--federated-issuer",
                issuer,
                "--federated-subject",
                MAIN,
            ],
            &[],
        );
        assert!(
            !ok && e.contains("not trusted by this tenant for workloads"),
            "{why}: {e}"
        );
    }
    let (ok, _, e) = data.cli_raw(
        &[
            "client",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "x",
            "--auth-method",
            "federated",
        ],
        &[],
    );
    assert!(!ok && e.contains("federated_credential"), "{e}");

    let server = Server::start(&data);
    let te = server.url("/oauth2/token");
    // The default audience: the tenant's issuer URL.
    let aud = format!("{}/t/{tenant}", server.base);
    let good = || {
        sign(
            &gh,
            &github_claims("octo-org/octo-repo", "refs/heads/main", &aud, json!({})),
        )
    };

    let first = good();
    let r = cc(&te, &id, &first).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let at = jwt_part(r.body["access_token"].as_str().unwrap(), 1);
    assert_eq!(
        (at["client_id"].as_str(), at["sub"].as_str()),
        (Some(id.as_str()), Some(id.as_str()))
    );
    assert_eq!(r.body["scope"], "api:read");
    assert!(
        cc(&te, &id, &good()).await.status == 200,
        "another token of the same job works"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the issuer's keys are cached"
    );
    // A single-use issuer's token does not work twice.
    cc(&te, &id, &first).await.assert_error(401, "invalid_client");

    // Everything else, each with a fresh jti: 401 invalid_client.
    let claims = |repo: &str, ref_: &str, patch: Value| github_claims(repo, ref_, &aud, patch);
    let main = |patch: Value| claims("octo-org/octo-repo", "refs/heads/main", patch);
    let stranger = key("gh-1");
    let mut attacks: Vec<(&str, String)> = vec![
        (
            "another repo",
            sign(&gh, &claims("evil-org/octo-repo", "refs/heads/main", json!({}))),
        ),
        (
            "a fork's look-alike",
            sign(
                &gh,
                &claims("octo-org/octo-repo-fork", "refs/heads/main", json!({})),
            ),
        ),
        (
            "another branch",
            sign(&gh, &claims("octo-org/octo-repo", "refs/heads/dev", json!({}))),
        ),
        (
            "a pull request",
            sign(&gh, &main(json!({"sub": "repo:octo-org/octo-repo:pull_request"}))),
        ),
        (
            "a subject with a suffix",
            sign(&gh, &main(json!({"sub": format!("{MAIN}:x")}))),
        ),
        (
            "another issuer with the trusted key",
            sign(&gh, &main(json!({"iss": "https://evil.example"}))),
        ),
        ("the user federation's issuer, its own key", {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some(idp.kid.clone());
            jwt();
            encode(&h, &main(json!({"iss": idp_iss})), &idp.enc).unwrap()
        }),
        ("another key under the trusted kid", {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some(stranger.kid.clone());
            jwt();
            encode(&h, &main(json!({})), &stranger.enc).unwrap()
        }),
        (
            "GitHub's default audience",
            sign(&gh, &main(json!({"aud": "https://github.com/octo-org"}))),
        ),
        (
            "the shared issuer as audience",
            sign(&gh, &main(json!({"aud": server.base}))),
        ),
        (
            "two audiences",
            sign(&gh, &main(json!({"aud": [aud, "https://github.com/octo-org"]}))),
        ),
        (
            "expired",
            sign(
                &gh,
                &main(json!({"exp": now() - 120, "iat": now() - 420, "nbf": now() - 420})),
            ),
        ),
        (
            "exp far in the future",
            sign(&gh, &main(json!({"exp": now() + 7200}))),
        ),
        ("no exp", sign(&gh, &main(json!({"exp": null})))),
        ("not yet valid", sign(&gh, &main(json!({"nbf": now() + 600})))),
        (
            "no jti at a single-use issuer",
            sign(&gh, &main(json!({"jti": null}))),
        ),
        ("an access token's typ", {
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some(gh.kid.clone());
            h.typ = Some("at+jwt".into());
            jwt();
            encode(&h, &main(json!({})), &gh.enc).unwrap()
        }),
    ];
    attacks.extend(forged(&gh, &main(json!({}))));
    for (why, t) in &attacks {
        let r = cc(&te, &id, t).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (401, Some("invalid_client")),
            "{why}: {}",
            r.body
        );
    }
    // The positive control: after all of that, a good token still works.
    assert_eq!(cc(&te, &id, &good()).await.status, 200);

    // A good token for another client of the tenant (a secret client; a federated client of
    // another branch) or of another tenant that trusts GitHub too: refused.
    let dev = federated_client(
        &data,
        &tenant,
        GITHUB,
        &["repo:octo-org/octo-repo:ref:refs/heads/dev"],
        None,
    );
    let other_tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &other_tenant]);
    data.cli(&["scope", "add", "--tenant", &other_tenant, "api:read", "Read"]);
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &other_tenant,
        "--issuer",
        GITHUB,
        "--jwks-uri",
        &format!("{base}/jwks"),
        "--workload",
        "--single-use",
    ]);
    let elsewhere = federated_client(&data, &other_tenant, GITHUB, &[MAIN], None);
    for (why, cid) in [
        ("a secret client", secret_client.id.as_str()),
        ("another federated client", dev["client_id"].as_str().unwrap()),
        (
            "another tenant's client for the same subject",
            elsewhere["client_id"].as_str().unwrap(),
        ),
    ] {
        cc(&te, cid, &good()).await.assert_error(401, "invalid_client");
        let _ = why;
    }
    // That tenant's client takes a token addressed to that tenant (the control).
    let there = sign(
        &gh,
        &github_claims(
            "octo-org/octo-repo",
            "refs/heads/main",
            &format!("{}/t/{other_tenant}", server.base),
            json!({}),
        ),
    );
    assert_eq!(
        cc(
            &server.shared_url("/oauth2/token"),
            elsewhere["client_id"].as_str().unwrap(),
            &there
        )
        .await
        .status,
        200
    );

    // A workload token is no user's assertion, even for a user linked to its subject at that
    // issuer and addressed as the JWT bearer grant wants.
    user(&data, &tenant, "alice");
    data.cli(&[
        "user",
        "link",
        "--tenant",
        &tenant,
        "--username",
        "alice",
        "--issuer",
        GITHUB,
        "--subject",
        MAIN,
    ]);
    let bearer_client = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "fed",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "--scope",
        "api:read",
    ]));
    post_form(
        &te,
        Some((&bearer_client.id, &bearer_client.secret)),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &sign(&gh, &main(json!({"aud": server.issuer})))),
        ],
    )
    .await
    .assert_error(400, "invalid_grant");

    // Registration cannot make a federated client: not DCR (even with an initial access
    // token), not RFC 7592 (a DCR client switching to it).
    let iat = data.cli(&["iat", "create", "--tenant", &tenant, "--max-uses", "0"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let fed_md = json!({"client_name": "mine now", "grant_types": ["client_credentials"], "scope": "api:read",
        "token_endpoint_auth_method": "federated",
        "federated_credential": {"issuer": GITHUB, "subjects": [MAIN]}});
    let dcr = |md: Value| {
        let (url, iat, tenant) = (server.url("/oauth2/register"), iat.clone(), tenant.clone());
        async move {
            Resp::from(
                http()
                    .post(url)
                    .header("x-bulwark-tenant", tenant)
                    .bearer_auth(iat)
                    .json(&md)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    dcr(fed_md.clone())
        .await
        .assert_error(400, "invalid_client_metadata");
    let mine =
        dcr(json!({"client_name": "mine", "grant_types": ["client_credentials"], "scope": "api:read"})).await;
    assert_eq!(mine.status, 201, "{}", mine.body);
    let mut switch = fed_md.clone();
    switch["client_id"] = mine.body["client_id"].clone();
    let up = Resp::from(
        http()
            .put(mine.body["registration_client_uri"].as_str().unwrap())
            .bearer_auth(mine.body["registration_access_token"].as_str().unwrap())
            .json(&switch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    up.assert_error(400, "invalid_client_metadata");
    cc(&te, mine.body["client_id"].as_str().unwrap(), &good())
        .await
        .assert_error(401, "invalid_client");

    // The tenant admin (admin API) may: create one, and change its subject, after which the
    // old subject's tokens no longer authenticate it.
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let r = api
        .post(
            "/admin/v1/clients",
            json!({"client_name": "deploy (api)", "grant_types": ["client_credentials"], "scope": "api:read",
                "token_endpoint_auth_method": "federated",
                "federated_credential": {"issuer": GITHUB, "subjects": [MAIN]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("client_secret").is_none(), "{}", r.body);
    assert_eq!(r.body["federated_credential"]["subjects"], json!([MAIN]));
    let api_id = r.body["client_id"].as_str().unwrap().to_string();
    assert_eq!(cc(&te, &api_id, &good()).await.status, 200);
    let path = format!("/admin/v1/clients/{api_id}");
    let etag = api.get(&path).await.header("etag").unwrap().to_string();
    let release = "repo:octo-org/octo-repo:ref:refs/heads/release";
    let r = api
        .patch(
            &path,
            json!({"federated_credential": {"issuer": GITHUB, "subjects": [release]}}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    cc(&te, &api_id, &good())
        .await
        .assert_error(401, "invalid_client");
    let rel = sign(
        &gh,
        &claims("octo-org/octo-repo", "refs/heads/release", json!({})),
    );
    assert_eq!(cc(&te, &api_id, &rel).await.status, 200);
    // Its authentication method is not the admin's to switch either.
    let etag = api.get(&path).await.header("etag").unwrap().to_string();
    let r = api
        .patch(
            &path,
            json!({"token_endpoint_auth_method": "client_secret_basic", "federated_credential": null}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // The issuer trusted only for users (--workload removed), then not at all: refused at once.
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        GITHUB,
        "--jwks-uri",
        &format!("{base}/jwks"),
    ]);
    cc(&te, &id, &good()).await.assert_error(401, "invalid_client");
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        GITHUB,
        "--jwks-uri",
        &format!("{base}/jwks"),
        "--workload",
        "--single-use",
    ]);
    assert_eq!(cc(&te, &id, &good()).await.status, 200, "trusted again");
    data.cli(&["issuer", "remove", "--tenant", &tenant, "--issuer", GITHUB]);
    cc(&te, &id, &good()).await.assert_error(401, "invalid_client");
    task.abort();
}

#[tokio::test]
async fn kubernetes_service_account_tokens_authenticate_again_until_they_expire() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    let k8s = platform("k8s-1");
    // Reusable (no --single-use): a pod rereads its projected token until the kubelet rotates it.
    let listed = data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        K8S,
        "--jwks-file",
        &write_jwks(&data, &[&k8s.jwk]),
        "--workload",
    ]);
    assert_eq!(listed["issuers"][0]["single_use"], false, "{listed}");
    let (ok, _, e) = data.cli_raw(
        &[
            "issuer",
            "add",
            "--tenant",
            &tenant,
            "--issuer",
            "https://x.example",
            "--jwks-uri",
            "https://x.example/jwks",
            "--single-use",
        ],
        &[],
    );
    assert!(!ok && e.contains("--workload"), "--single-use alone: {e}");
    const AUD: &str = "https://bulwark.example/workloads";
    let sa = "system:serviceaccount:payments:deploy";
    let id = federated_client(
        &data,
        &tenant,
        K8S,
        &[sa, "system:serviceaccount:payments:migrate"],
        Some(AUD),
    )["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&data);
    let te = server.url("/oauth2/token");

    let token = sign(&k8s, &kubernetes_claims("payments", "deploy", AUD, json!({})));
    for n in 0..3 {
        let r = cc(&te, &id, &token).await;
        assert_eq!(r.status, 200, "use {n}: {}", r.body);
    }
    // Its other service account too.
    assert_eq!(
        cc(
            &te,
            &id,
            &sign(&k8s, &kubernetes_claims("payments", "migrate", AUD, json!({})))
        )
        .await
        .status,
        200
    );
    let tenant_aud = format!("{}/t/{tenant}", server.base);
    let mut attacks: Vec<(&str, String)> = vec![
        (
            "the same account name in another namespace",
            sign(&k8s, &kubernetes_claims("default", "deploy", AUD, json!({}))),
        ),
        (
            "another account",
            sign(&k8s, &kubernetes_claims("payments", "default", AUD, json!({}))),
        ),
        (
            "the default audience when one is configured",
            sign(
                &k8s,
                &kubernetes_claims("payments", "deploy", &tenant_aud, json!({})),
            ),
        ),
        (
            "the API server's audience too",
            sign(
                &k8s,
                &kubernetes_claims(
                    "payments",
                    "deploy",
                    AUD,
                    json!({"aud": [AUD, "https://kubernetes.default.svc"]}),
                ),
            ),
        ),
        (
            "an extended token valid for a year",
            sign(
                &k8s,
                &kubernetes_claims("payments", "deploy", AUD, json!({"exp": now() + 31_536_000})),
            ),
        ),
        (
            "expired",
            sign(
                &k8s,
                &kubernetes_claims("payments", "deploy", AUD, json!({"exp": now() - 120})),
            ),
        ),
        (
            "another cluster",
            sign(
                &k8s,
                &kubernetes_claims(
                    "payments",
                    "deploy",
                    AUD,
                    json!({"iss": "https://kubernetes.default.svc.cluster.local"}),
                ),
            ),
        ),
    ];
    attacks.extend(forged(
        &k8s,
        &kubernetes_claims("payments", "deploy", AUD, json!({})),
    ));
    for (why, t) in &attacks {
        let r = cc(&te, &id, t).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (401, Some("invalid_client")),
            "{why}: {}",
            r.body
        );
    }
    assert_eq!(
        cc(&te, &id, &token).await.status,
        200,
        "the pod's token still works"
    );
}

/// `bulwark token --federated-token-file` (issue 23 part 3) with a real `federated` client: a
/// pod's projected token file, read on every run, works again until the kubelet rotates it.
#[tokio::test]
async fn bulwark_token_sends_a_pods_projected_token_for_a_federated_client() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    let k8s = platform("k8s-cli");
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        K8S,
        "--jwks-file",
        &write_jwks(&data, &[&k8s.jwk]),
        "--workload",
    ]);
    let id = federated_client(
        &data,
        &tenant,
        K8S,
        &["system:serviceaccount:payments:deploy"],
        None,
    )["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let server = Server::start(&data);
    let aud = format!("{}/t/{tenant}", server.base);
    let file = data.path().join("projected-token");
    std::fs::write(
        &file,
        sign(&k8s, &kubernetes_claims("payments", "deploy", &aud, json!({}))),
    )
    .unwrap();
    let run = || {
        crate::token_cli::bulwark_token(
            &server.issuer,
            &[
                "--client-id",
                &id,
                "--federated-token-file",
                file.to_str().unwrap(),
            ],
            &[],
        )
    };
    for n in 0..2 {
        let (code, out, err) = run();
        assert_eq!(code, 0, "run {n}: {out} {err}");
        assert_eq!(jwt_part(out.trim(), 1)["client_id"], id.as_str());
    }
    // Another service account's token in the file: the server's refusal (exit 4).
    std::fs::write(
        &file,
        sign(&k8s, &kubernetes_claims("payments", "other", &aud, json!({}))),
    )
    .unwrap();
    let (code, _, err) = run();
    assert_eq!(code, 4, "{err}");
}
