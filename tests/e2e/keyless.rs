//! Keyless clients: `private_key_jwt` (RFC 7523 §2.2, OIDC Core §9, RFC 10070 audiences) at the
//! token, introspection and revocation endpoints, with keys registered inline or published at a
//! `jwks_uri` that the server fetches through its SSRF-guarded fetcher. Both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::support::*;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub struct Key {
    pub enc: EncodingKey,
    pub jwk: Value,
    pub kid: String,
}

pub fn key(kid: &str) -> Key {
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePrivateKey;
    let sk = SigningKey::random(&mut rand::rngs::OsRng);
    let der = sk.to_pkcs8_der().unwrap();
    let mut jwk: Value =
        serde_json::from_str(&p256::PublicKey::from(sk.verifying_key()).to_jwk_string()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    Key {
        enc: EncodingKey::from_ec_der(der.as_bytes()),
        jwk,
        kid: kid.into(),
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A client assertion: claims patched by `patch` (null removes), header `typ` as given.
pub fn assertion(k: &Key, client_id: &str, aud: &str, typ: Option<&str>, patch: Value) -> String {
    let mut c = json!({
        "iss": client_id, "sub": client_id, "aud": aud, "iat": now(), "exp": now() + 120,
        "jti": unique(),
    });
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

async fn cc_with(server: &Server, client_id: Option<&str>, a: &str) -> Resp {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", a),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    post_form(&server.url("/oauth2/token"), None, &form).await
}

fn register(data: &DataDir, tenant: &str, keys: &[&Key]) -> String {
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    let f = data.path().join(format!("jwks-{}.json", unique()));
    std::fs::write(&f, jwks.to_string()).unwrap();
    let v = data.cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "Keyless CI",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        f.to_str().unwrap(),
    ]);
    assert!(
        v.get("client_secret").is_none(),
        "a private_key_jwt client has no secret: {v}"
    );
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    v["client_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn private_key_jwt_clients_authenticate_with_signed_assertions_and_nothing_else() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    let other_client = data.tenant_with_client(&tenant);
    let (k1, k2, stranger) = (key("k1"), key("k2"), key("k1"));
    let id = register(&data, &tenant, &[&k1, &k2]);
    let server = Server::start(&data);
    let iss = server.issuer.clone();
    let te = server.url("/oauth2/token");

    // Discovery says so.
    let d: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        d["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt"))
    );
    assert_eq!(
        d["token_endpoint_auth_signing_alg_values_supported"],
        json!(["ES256", "RS256", "PS256", "EdDSA"])
    );

    // Accepted: aud = issuer (typed or not), aud = token endpoint untyped; either key.
    for a in [
        assertion(&k1, &id, &iss, Some("client-authentication+jwt"), json!({})),
        assertion(&k1, &id, &iss, None, json!({})),
        assertion(&k2, &id, &te, Some("JWT"), json!({})),
        assertion(&k1, &id, &te, None, json!({"aud": [te]})),
    ] {
        let r = cc_with(&server, None, &a).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            jwt_part(r.body["access_token"].as_str().unwrap(), 1)["client_id"],
            id.as_str()
        );
    }
    let ok = assertion(&k1, &id, &iss, None, json!({}));
    assert_eq!(cc_with(&server, Some(&id), &ok).await.status, 200);
    // ... and never twice.
    cc_with(&server, Some(&id), &ok)
        .await
        .assert_error(401, "invalid_client");

    // Refused, each with 401 invalid_client.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    crate::support::jwt();
    let hmac = encode(
        &hs,
        &json!({"iss": id, "sub": id, "aud": iss, "exp": now() + 60, "jti": unique()}),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let unsigned = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b.encode(r#"{"alg":"none"}"#),
            b.encode(
                json!({"iss": id, "sub": id, "aud": iss, "exp": now() + 60, "jti": unique()}).to_string()
            )
        )
    };
    for (why, a) in [
        (
            "another key under a registered kid",
            assertion(&stranger, &id, &iss, None, json!({})),
        ),
        (
            "typed, aud = token endpoint",
            assertion(&k1, &id, &te, Some("client-authentication+jwt"), json!({})),
        ),
        (
            "typed, aud as an array",
            assertion(
                &k1,
                &id,
                &iss,
                Some("client-authentication+jwt"),
                json!({"aud": [iss]}),
            ),
        ),
        (
            "aud with another party",
            assertion(
                &k1,
                &id,
                &iss,
                None,
                json!({"aud": [iss, "https://other.example"]}),
            ),
        ),
        (
            "wrong aud",
            assertion(&k1, &id, "https://other.example", None, json!({})),
        ),
        (
            "an access token's typ",
            assertion(&k1, &id, &iss, Some("at+jwt"), json!({})),
        ),
        (
            "expired",
            assertion(&k1, &id, &iss, None, json!({"exp": now() - 120})),
        ),
        (
            "exp too far ahead",
            assertion(&k1, &id, &iss, None, json!({"exp": now() + 3600 + 120})),
        ),
        ("no exp", assertion(&k1, &id, &iss, None, json!({"exp": null}))),
        ("no jti", assertion(&k1, &id, &iss, None, json!({"jti": null}))),
        (
            "iss is someone else",
            assertion(&k1, &id, &iss, None, json!({"iss": other_client.id})),
        ),
        ("HMAC", hmac),
        ("alg none", unsigned),
    ] {
        let r = cc_with(&server, None, &a).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (401, Some("invalid_client")),
            "{why}: {}",
            r.body
        );
    }
    // sub naming another client: that client's keys are tried, and fail.
    let a = assertion(&k1, &other_client.id, &iss, None, json!({}));
    cc_with(&server, None, &a)
        .await
        .assert_error(401, "invalid_client");
    // The client_id in the body must be the assertion's.
    let a = assertion(&k1, &id, &iss, None, json!({}));
    cc_with(&server, Some(&other_client.id), &a)
        .await
        .assert_error(401, "invalid_client");
    // No secret works for it, and no second method alongside.
    post_form(
        &te,
        Some((&id, "anything")),
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
    let a = assertion(&k1, &id, &iss, None, json!({}));
    post_form(
        &te,
        Some((&id, "x")),
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await
    .assert_error(400, "invalid_request");

    // Introspection and revocation take assertions too.
    let mine = cc_with(&server, None, &assertion(&k1, &id, &iss, None, json!({})))
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let introspect_mine = || async {
        let a = assertion(&k1, &id, &iss, None, json!({}));
        let r = post_form(
            &server.url("/oauth2/introspect"),
            None,
            &[
                ("token", &mine),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &a),
            ],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["active"].clone()
    };
    assert_eq!(introspect_mine().await, json!(true));
    let a = assertion(&k2, &id, &iss, None, json!({}));
    let r = post_form(
        &server.url("/oauth2/revoke"),
        None,
        &[
            ("token", &mine),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(introspect_mine().await, json!(false));

    // 32 concurrent uses of one assertion: exactly one succeeds.
    let a = assertion(&k1, &id, &iss, None, json!({}));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (url, a) = (te.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            post_form(
                &url,
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", &a),
                ],
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
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
}

/// A JWKS host on 127.0.0.1: serves `body` at /jwks (counting requests), a redirect at
/// /moved, 70 KiB at /big, and a 3-second stall at /slow.
pub async fn jwks_host(body: Value) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new()
        .route(
            "/jwks",
            get(move || {
                let h = h.clone();
                let body = body.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    axum::Json(body)
                }
            }),
        )
        .route(
            "/moved",
            get(|| async { axum::response::Redirect::temporary("/jwks") }),
        )
        .route(
            "/big",
            get(|| async { format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(70 * 1024)) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "{}"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, hits, task)
}

/// A registration with an initial access token: a client_credentials client is a machine
/// client, which an anonymous registration may not be.
async fn dcr(server: &Server, tenant: &str, iat: &str, md: Value) -> Resp {
    Resp::from(
        http()
            .post(server.url("/oauth2/register"))
            .header("x-bulwark-tenant", tenant)
            .bearer_auth(iat)
            .json(&md)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn keyed(jwks_uri: &str) -> Value {
    json!({"client_name": "Keyless", "grant_types": ["client_credentials"], "scope": "api:read",
           "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri})
}

#[tokio::test]
async fn jwks_uri_keys_are_fetched_through_the_guarded_fetcher_and_cached() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    let iat = data.cli(&["iat", "create", "--tenant", &tenant, "--max-uses", "0"])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let k = key("rot-1");
    let (base, hits, task) = jwks_host(json!({"keys": [k.jwk]})).await;
    let server = Server::start(&data);
    let iss = server.issuer.clone();

    // Registration rules for keys.
    for (why, md) in [
        ("http to a non-loopback host", keyed("http://keys.example/jwks")),
        ("both jwks and jwks_uri", {
            let mut m = keyed(&format!("{base}/jwks"));
            m["jwks"] = json!({"keys": [k.jwk]});
            m
        }),
        (
            "no keys",
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
        ),
        (
            "a private key",
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                                 "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": k.jwk["x"], "y": k.jwk["y"], "d": "AAAA"}]}}),
        ),
        (
            "keys for a secret client",
            json!({"grant_types": ["client_credentials"], "jwks_uri": format!("{base}/jwks")}),
        ),
    ] {
        dcr(&server, &tenant, &iat, md)
            .await
            .assert_error(400, "invalid_client_metadata");
        let _ = why;
    }

    let r = dcr(&server, &tenant, &iat, keyed(&format!("{base}/jwks"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("client_secret").is_none(), "{}", r.body);
    let id = r.body["client_id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let r = cc_with(&server, None, &assertion(&k, &id, &iss, None, json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached");
    // An unknown kid right after a fetch does not make the server fetch again.
    let unknown = key("rot-2");
    cc_with(&server, None, &assertion(&unknown, &id, &iss, None, json!({})))
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "an unknown kid is refetched at most once a minute"
    );

    // Addresses the fetcher would refuse are refused at registration already (issue 19).
    for (why, uri) in [
        (
            "the metadata address",
            "https://169.254.169.254/latest/meta-data/",
        ),
        ("a private address", "https://10.0.0.1/jwks"),
        ("IPv6 unique-local", "https://[fd00:ec2::254]/jwks"),
    ] {
        dcr(&server, &tenant, &iat, keyed(uri))
            .await
            .assert_error(400, "invalid_client_metadata");
        let _ = why;
    }
    // What the fetcher refuses (each client's assertion fails; nothing reaches the host).
    for (why, uri) in [
        ("a redirect", format!("{base}/moved")),
        ("more than 64 KiB", format!("{base}/big")),
        ("slower than 2 s", format!("{base}/slow")),
    ] {
        let r = dcr(&server, &tenant, &iat, keyed(&uri)).await;
        assert_eq!(r.status, 201, "{why}: {}", r.body);
        let cid = r.body["client_id"].as_str().unwrap();
        let started = std::time::Instant::now();
        let r = cc_with(&server, None, &assertion(&k, cid, &iss, None, json!({}))).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (401, Some("invalid_client")),
            "{why}: {}",
            r.body
        );
        assert!(
            started.elapsed() < Duration::from_millis(2900),
            "{why}: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the redirect was not followed");
    drop(server);

    // With an https issuer, plain http and loopback are refused even for a registered client.
    let server = Server::start_with(&data, &["--issuer", "https://auth.example.test"], &[]);
    let r = cc_with(
        &server,
        None,
        &assertion(&k, &id, "https://auth.example.test", None, json!({})),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("invalid_client")),
        "{}",
        r.body
    );
    task.abort();
}
