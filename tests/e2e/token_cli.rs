//! `bulwark token`: the CLI as a client of an authorization server (this one, by discovery),
//! with each kind of credential, and the exit codes a pipeline acts on. Both backends (and the
//! tenant issuer, by path-inserted discovery, in the tenant pass); through the Lambda functions
//! in `lambda::bulwark_token_gets_tokens_from_the_functions`.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::keyless::Key;
use crate::support::*;

/// `bulwark token --issuer ISSUER ARGS...` with `env`: (exit code, stdout, stderr).
pub fn bulwark_token(issuer: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(&*BIN)
        .args(["token", "--issuer", issuer])
        .args(args)
        .env_remove("BULWARK_ISSUER")
        .envs(env.iter().copied())
        .output()
        .expect("run bulwark token");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A token printed alone on stdout: its claims.
fn printed_token(out: &(i32, String, String)) -> Value {
    assert_eq!(out.0, 0, "exit {}: {} {}", out.0, out.1, out.2);
    let lines: Vec<&str> = out.1.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", out.1);
    jwt_part(lines[0], 1)
}

/// An EC P-256 client key: its PKCS#8 and SEC1 PEM, and the test's own view of it.
pub struct EcKey {
    pub pkcs8_pem: String,
    pub sec1_pem: String,
    pub key: Key,
}

pub fn ec_key(kid: &str) -> EcKey {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let mut jwk: Value = serde_json::from_str(&sk.public_key().to_jwk_string()).unwrap();
    jwk["kid"] = json!(kid);
    EcKey {
        pkcs8_pem: sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        sec1_pem: sk.to_sec1_pem(LineEnding::LF).unwrap().to_string(),
        key: Key {
            enc: jsonwebtoken::EncodingKey::from_ec_der(sk.to_pkcs8_der().unwrap().as_bytes()),
            jwk,
            kid: kid.into(),
        },
    }
}

/// The 2048-bit RSA test key of `shared/src/keys/testdata`: (PKCS#1 PEM, PKCS#8 PEM, JWK).
pub fn rsa_key(kid: &str) -> (String, String, Value) {
    use p256::pkcs8::LineEnding;
    use p256::pkcs8::der::pem;
    let dir = repo().join("shared/src/keys/testdata");
    let pkcs1 = STANDARD
        .decode(
            std::fs::read_to_string(dir.join("rsa2048-pkcs1.der.b64"))
                .unwrap()
                .trim(),
        )
        .unwrap();
    let n = std::fs::read_to_string(dir.join("rsa2048-n.b64url")).unwrap();
    // PKCS#8: SEQUENCE { INTEGER 0, SEQUENCE { rsaEncryption, NULL }, OCTET STRING pkcs1 }.
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let n = body.len();
        let mut v = vec![tag];
        if n < 128 {
            v.push(n as u8);
        } else {
            v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend_from_slice(body);
        v
    }
    let alg = tlv(
        0x30,
        &[
            &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01][..],
            &[0x05, 0x00],
        ]
        .concat(),
    );
    let pkcs8 = tlv(
        0x30,
        &[&[0x02, 0x01, 0x00][..], &alg, &tlv(0x04, &pkcs1)].concat(),
    );
    (
        pem::encode_string("RSA PRIVATE KEY", LineEnding::LF, &pkcs1).unwrap(),
        pem::encode_string("PRIVATE KEY", LineEnding::LF, &pkcs8).unwrap(),
        json!({"kty": "RSA", "n": n.trim(), "e": "AQAB", "kid": kid}),
    )
}

/// A file in `data`'s directory with `contents`; its path.
fn file(data: &DataDir, name: &str, contents: &str) -> String {
    let p = data.path().join(format!("{}-{name}", unique()));
    std::fs::write(&p, contents).unwrap();
    p.to_str().unwrap().to_string()
}

/// A private_key_jwt client of `tenant` with these public keys.
pub fn keyed_client(data: &DataDir, tenant: &str, keys: &[&Value]) -> String {
    let jwks = file(data, "jwks.json", &json!({"keys": keys}).to_string());
    data.cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "keyed",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        &jwks,
    ])["client_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn bulwark_token_gets_client_credentials_tokens_with_a_secret_a_key_or_a_federated_token() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let post = data.client("acme", "api:read", "client_secret_post");
    data.cli(&[
        "resource",
        "add",
        "--tenant",
        "acme",
        "https://files.acme.example",
    ]);
    let ec = ec_key("ec-1");
    let (rsa_pkcs1, rsa_pkcs8, rsa_jwk) = rsa_key("rsa-1");
    let keyed = keyed_client(&data, "acme", &[&ec.key.jwk, &rsa_jwk]);
    let server = Server::start(&data);
    let iss = server.issuer.clone();

    // A secret from the environment, by Basic (the default: discovery lists it).
    let env = [("ACME_SECRET", c.secret.as_str())];
    let claims = printed_token(&bulwark_token(
        &iss,
        &["--client-id", &c.id, "--client-secret-env", "ACME_SECRET"],
        &env,
    ));
    assert_eq!(claims["iss"], iss.as_str());
    assert_eq!(claims["client_id"], c.id.as_str());
    assert_eq!(claims["scope"], "api:read api:write");
    // --scope and --resource reach the token.
    let claims = printed_token(&bulwark_token(
        &iss,
        &[
            "--client-id",
            &c.id,
            "--client-secret-env",
            "ACME_SECRET",
            "--scope",
            "api:read",
            "--resource",
            "https://files.acme.example",
        ],
        &env,
    ));
    assert_eq!(claims["scope"], "api:read");
    assert_eq!(claims["aud"], "https://files.acme.example");
    // --json: the whole token response, on one line.
    let (code, stdout, stderr) = bulwark_token(
        &iss,
        &[
            "--client-id",
            &c.id,
            "--client-secret-env",
            "ACME_SECRET",
            "--json",
        ],
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(r["token_type"], "Bearer");
    assert_eq!(r["expires_in"], 3600);
    assert_eq!(
        jwt_part(r["access_token"].as_str().unwrap(), 1)["client_id"],
        c.id.as_str()
    );
    assert!(!stdout.contains(&c.secret) && !stderr.contains(&c.secret));

    // client_secret_post, asked for; by Basic the server refuses that client (4).
    let env_post = [("POST_SECRET", post.secret.as_str())];
    let args = ["--client-id", &post.id, "--client-secret-env", "POST_SECRET"];
    let claims = printed_token(&bulwark_token(
        &iss,
        &[&args[..], &["--auth-method", "client_secret_post"]].concat(),
        &env_post,
    ));
    assert_eq!(claims["client_id"], post.id.as_str());
    let (code, _, stderr) = bulwark_token(&iss, &args, &env_post);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("invalid_client"), "{stderr}");

    // private_key_jwt: EC (PKCS#8, SEC1) and RSA (PKCS#1, PKCS#8) keys, by kid; the issuer as
    // the audience (typed, RFC 7523 as updated) or the token endpoint (untyped).
    for (pem, kid, extra) in [
        (&ec.pkcs8_pem, "ec-1", None),
        (&ec.sec1_pem, "ec-1", None),
        (&ec.pkcs8_pem, "ec-1", Some("token-endpoint")),
        (&rsa_pkcs1, "rsa-1", None),
        (&rsa_pkcs8, "rsa-1", Some("token-endpoint")),
    ] {
        let pem_file = file(&data, "key.pem", pem);
        let mut args = vec![
            "--client-id",
            &keyed,
            "--private-key-file",
            &pem_file,
            "--kid",
            kid,
        ];
        if let Some(aud) = extra {
            args.extend_from_slice(&["--assertion-audience", aud]);
        }
        let claims = printed_token(&bulwark_token(&iss, &args, &[]));
        assert_eq!(claims["client_id"], keyed.as_str(), "{kid} {extra:?}");
        assert_eq!(claims["scope"], "api:read");
    }

    // A federated token (here: an assertion the test signs with the client's key, as a
    // workload identity platform would sign one), from a file reread on every run, and from
    // the environment.
    let assertion = || {
        crate::keyless::assertion(
            &ec.key,
            &keyed,
            &iss,
            Some("client-authentication+jwt"),
            json!({}),
        )
    };
    let token_file = file(&data, "federated.jwt", &format!("{}\n", assertion()));
    let claims = printed_token(&bulwark_token(
        &iss,
        &["--client-id", &keyed, "--federated-token-file", &token_file],
        &[],
    ));
    assert_eq!(claims["client_id"], keyed.as_str());
    // The same file again: its assertion is spent (the server's refusal, 4)...
    let (code, _, stderr) = bulwark_token(
        &iss,
        &["--client-id", &keyed, "--federated-token-file", &token_file],
        &[],
    );
    assert_eq!(code, 4, "{stderr}");
    // ... until the platform rotates it.
    std::fs::write(&token_file, assertion()).unwrap();
    printed_token(&bulwark_token(
        &iss,
        &["--client-id", &keyed, "--federated-token-file", &token_file],
        &[],
    ));
    let a = assertion();
    let claims = printed_token(&bulwark_token(
        &iss,
        &["--client-id", &keyed, "--federated-token-env", "WORKLOAD_TOKEN"],
        &[("WORKLOAD_TOKEN", &a)],
    ));
    assert_eq!(claims["client_id"], keyed.as_str());
}

#[tokio::test]
async fn bulwark_token_exits_with_codes_a_pipeline_can_act_on_and_never_prints_a_secret() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let iss = server.issuer.clone();
    let wrong = "wrong-secret-4f9a2c-do-not-print";

    // The server refuses: 4, its error and description on stderr, the secret nowhere.
    for json in [false, true] {
        let mut args = vec!["--client-id", c.id.as_str(), "--client-secret-env", "ACME_SECRET"];
        if json {
            args.push("--json");
        }
        let (code, stdout, stderr) = bulwark_token(&iss, &args, &[("ACME_SECRET", wrong)]);
        assert_eq!(code, 4, "{stdout} {stderr}");
        assert!(stderr.contains("invalid_client"), "{stderr}");
        assert!(
            !stdout.contains(wrong) && !stderr.contains(wrong),
            "{stdout} {stderr}"
        );
        if json {
            let v: Value = serde_json::from_str(stdout.trim()).unwrap();
            assert_eq!(v["error"], "invalid_client");
            assert_eq!(v["exit_code"], 4);
            assert!(v["error_description"].is_string(), "{v}");
        } else {
            assert_eq!(stdout, "");
        }
    }
    // An assertion the server refuses is not printed either (a key it does not know).
    let stranger = ec_key("ec-unknown");
    let pem = data.path().join("stranger.pem");
    std::fs::write(&pem, &stranger.pkcs8_pem).unwrap();
    let (code, stdout, stderr) = bulwark_token(
        &iss,
        &["--client-id", &c.id, "--private-key-file", pem.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 4, "{stderr}");
    assert!(
        !stderr.contains("eyJ") && !stdout.contains("eyJ"),
        "{stdout} {stderr}"
    );

    // Usage: 2. A missing environment variable (named), no credential, two credentials, a
    // key file that is not there or not a key, an issuer that is not https.
    let (code, _, stderr) = bulwark_token(
        &iss,
        &["--client-id", &c.id, "--client-secret-env", "NO_SUCH_VAR_X1"],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("NO_SUCH_VAR_X1"), "{stderr}");
    let (code, _, stderr) = bulwark_token(
        &iss,
        &["--client-id", &c.id, "--client-secret-env", "EMPTY"],
        &[("EMPTY", "")],
    );
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = bulwark_token(&iss, &["--client-id", &c.id], &[]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = bulwark_token(
        &iss,
        &[
            "--client-id",
            &c.id,
            "--client-secret-env",
            "A",
            "--federated-token-env",
            "B",
        ],
        &[("A", "a"), ("B", "b")],
    );
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = bulwark_token(
        &iss,
        &["--client-id", &c.id, "--private-key-file", "/nonexistent/key.pem"],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    let not_a_key = data.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let (code, _, stderr) = bulwark_token(
        &iss,
        &[
            "--client-id",
            &c.id,
            "--private-key-file",
            not_a_key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = bulwark_token(
        "http://auth.example",
        &["--client-id", &c.id, "--client-secret-env", "S"],
        &[("S", &c.secret)],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("https only"), "{stderr}");

    // Discovery or network: 3. Nothing listening; a discovery document naming another issuer
    // (the same server, asked for as `localhost`: RFC 8414 §3.3 says refuse it).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = [("S", c.secret.as_str())];
    let args = ["--client-id", c.id.as_str(), "--client-secret-env", "S"];
    let (code, stdout, stderr) = bulwark_token(&format!("http://127.0.0.1:{port}"), &args, &env);
    assert_eq!(code, 3, "{stderr}");
    assert!(!stdout.contains(&c.secret) && !stderr.contains(&c.secret));
    let (code, _, stderr) = bulwark_token(&iss.replace("127.0.0.1", "localhost"), &args, &env);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("RFC 8414 §3.3"), "{stderr}");
    // A path that is no issuer: no discovery document there.
    let (code, _, stderr) = bulwark_token(&format!("{iss}/nowhere"), &args, &env);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("no discovery document"), "{stderr}");
}

/// A stand-in authorization server with the device authorization grant (RFC 8628), whose
/// answers the test scripts: discovery, the device authorization endpoint, and a token
/// endpoint that says `authorization_pending` `pending` times, then answers `last`. Against
/// this server's own device endpoint and pages: `device::bulwark_token_device_gets_a_token_once_its_user_approves_on_our_pages`.
async fn device_server(
    pending: usize,
    last: Value,
    with_device: bool,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    use axum::routing::{get, post};
    use std::sync::{Arc, Mutex};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let meta = {
        let mut m = json!({"issuer": base, "token_endpoint": format!("{base}/token"), "token_endpoint_auth_methods_supported": ["none"]});
        if with_device {
            m["device_authorization_endpoint"] = json!(format!("{base}/device"));
        }
        m
    };
    let (seen_d, seen_t) = (seen.clone(), seen.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { axum::Json(meta) }),
        )
        .route(
            "/device",
            post(move |body: String| async move {
                seen_d.lock().unwrap().push(format!("device {body}"));
                axum::Json(json!({
                    "device_code": "dc-secret-1", "user_code": "WDJB-MJHT",
                    "verification_uri": "https://as.example/device",
                    "verification_uri_complete": "https://as.example/device?user_code=WDJB-MJHT",
                    "expires_in": 60, "interval": 1
                }))
            }),
        )
        .route(
            "/token",
            post(move |body: String| async move {
                let mut seen = seen_t.lock().unwrap();
                seen.push(format!("token {body}"));
                let polls = seen.iter().filter(|s| s.starts_with("token ")).count();
                if polls <= pending {
                    (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": "authorization_pending"})),
                    )
                } else if last["access_token"].is_string() {
                    (axum::http::StatusCode::OK, axum::Json(last.clone()))
                } else {
                    (axum::http::StatusCode::BAD_REQUEST, axum::Json(last.clone()))
                }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, seen, task)
}

#[tokio::test]
async fn bulwark_token_device_polls_until_approved_and_stops_on_denial() {
    // Approved after one pending answer: the URL and code on stderr, the token on stdout.
    let (base, seen, task) = device_server(
        1,
        json!({"access_token": "at-device-1", "token_type": "Bearer"}),
        true,
    )
    .await;
    let b = base.clone();
    let out = tokio::task::spawn_blocking(move || {
        bulwark_token(&b, &["--client-id", "tv-app", "--device", "--scope", "read"], &[])
    })
    .await
    .unwrap();
    assert_eq!(out.0, 0, "{} {}", out.1, out.2);
    assert_eq!(out.1, "at-device-1\n");
    assert!(
        out.2.contains("https://as.example/device?user_code=WDJB-MJHT") && out.2.contains("WDJB-MJHT"),
        "{}",
        out.2
    );
    assert!(!out.2.contains("dc-secret-1"), "{}", out.2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].starts_with("device ")
            && seen[0].contains("client_id=tv-app")
            && seen[0].contains("scope=read")
    );
    for poll in &seen[1..] {
        assert!(
            poll.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"),
            "{poll}"
        );
        assert!(
            poll.contains("device_code=dc-secret-1") && poll.contains("client_id=tv-app"),
            "{poll}"
        );
    }
    task.abort();

    // The user said no: 4, with the server's error.
    let (base, _, task) = device_server(
        0,
        json!({"error": "access_denied", "error_description": "the user declined"}),
        true,
    )
    .await;
    let out = tokio::task::spawn_blocking(move || {
        bulwark_token(&base, &["--client-id", "tv-app", "--device"], &[])
    })
    .await
    .unwrap();
    assert_eq!(out.0, 4, "{}", out.2);
    assert!(
        out.2.contains("access_denied") && out.2.contains("the user declined"),
        "{}",
        out.2
    );
    task.abort();

    // No device authorization endpoint in discovery: 3, saying so.
    let (base, _, task) = device_server(0, json!({}), false).await;
    let out = tokio::task::spawn_blocking(move || {
        bulwark_token(&base, &["--client-id", "tv-app", "--device"], &[])
    })
    .await
    .unwrap();
    assert_eq!(out.0, 3, "{}", out.2);
    assert!(out.2.contains("device_authorization_endpoint"), "{}", out.2);
    task.abort();
}

/// The token's claims, for callers elsewhere in the suite.
pub fn claims_of(stdout: &str) -> Value {
    let t = stdout.trim();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// Serve `app` on a free loopback port: its base URL.
async fn serve_stub(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (
        base,
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }),
    )
}

#[tokio::test]
async fn bulwark_token_follows_no_redirect_and_sends_no_credential_over_plain_http() {
    use axum::routing::{any, get};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Another host, which must never hear from the CLI.
    let stolen = Arc::new(AtomicUsize::new(0));
    let s = stolen.clone();
    let (elsewhere, other) = serve_stub(axum::Router::new().fallback(any(move || async move {
        s.fetch_add(1, Ordering::SeqCst);
        "{}"
    })))
    .await;
    let run = |issuer: String| {
        tokio::task::spawn_blocking(move || {
            bulwark_token(
                &issuer,
                &["--client-id", "c1", "--client-secret-env", "S"],
                &[("S", "redirect-secret-77")],
            )
        })
    };
    let redirect_to = |to: String| {
        move || async move { (axum::http::StatusCode::TEMPORARY_REDIRECT, [("location", to)], "") }
    };

    // A token endpoint that redirects: not followed, 3, nothing sent on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let meta = json!({"issuer": base, "token_endpoint": format!("{base}/token")});
    let app = axum::Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { axum::Json(meta) }),
        )
        .route("/token", any(redirect_to(format!("{elsewhere}/steal"))));
    let a = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let out = run(base).await.unwrap();
    assert_eq!(out.0, 3, "{}", out.2);
    assert!(out.2.contains("redirect"), "{}", out.2);
    assert!(!out.2.contains("redirect-secret-77"), "{}", out.2);
    a.abort();

    // A discovery document that redirects: 3.
    let (base, b) = serve_stub(axum::Router::new().fallback(any(redirect_to(format!(
        "{elsewhere}/.well-known/oauth-authorization-server"
    )))))
    .await;
    let out = run(base).await.unwrap();
    assert_eq!(out.0, 3, "{}", out.2);
    b.abort();

    // A token endpoint on plain http to a host that is not loopback: refused before sending, 3.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let meta = json!({"issuer": base, "token_endpoint": "http://auth.example/token"});
    let app = axum::Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || async move { axum::Json(meta) }),
    );
    let c = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let out = run(base).await.unwrap();
    assert_eq!(out.0, 3, "{}", out.2);
    assert!(out.2.contains("https only"), "{}", out.2);
    c.abort();

    assert_eq!(stolen.load(Ordering::SeqCst), 0, "a request followed a redirect");
    other.abort();
}

#[tokio::test]
async fn bulwark_token_finds_an_openid_only_issuer_by_its_appended_well_known_path() {
    use axum::routing::{get, post};
    // An issuer with a path that serves only OpenID Connect Discovery (as many do): the RFC 8414
    // location (suffix inserted) is a 404, the appended one answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/realms/acme");
    let meta = json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token"),
                      "token_endpoint_auth_methods_supported": ["client_secret_post"]});
    let app = axum::Router::new()
        .route(
            "/realms/acme/.well-known/openid-configuration",
            get(move || async move { axum::Json(meta) }),
        )
        .route(
            "/realms/acme/token",
            post(|headers: axum::http::HeaderMap, body: String| async move {
                // Only post is listed: the secret comes in the form, not by Basic.
                let ok = headers.get("authorization").is_none()
                    && body.contains("client_id=c1")
                    && body.contains("client_secret=s%2B1")
                    && body.contains("grant_type=client_credentials");
                if ok {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"access_token": "at-oidc", "token_type": "Bearer"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": "invalid_client"})),
                    )
                }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let i = issuer.clone();
    let out = tokio::task::spawn_blocking(move || {
        bulwark_token(
            &i,
            &["--client-id", "c1", "--client-secret-env", "S"],
            &[("S", "s+1")],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.0, 0, "{} {}", out.1, out.2);
    assert_eq!(out.1, "at-oidc\n");
    // The same document asked for as another issuer (no path): neither location has one for it.
    let out = tokio::task::spawn_blocking(move || {
        bulwark_token(
            &base,
            &["--client-id", "c1", "--client-secret-env", "S"],
            &[("S", "s+1")],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.0, 3, "{}", out.2);
    assert!(out.2.contains("no discovery document"), "{}", out.2);
    task.abort();
}
