//! DPoP (RFC 9449): sender-constrained tokens at the token endpoint (every grant binds its
//! access token to the key of the request's proof), refresh tokens of public clients bound to
//! that key, codes bound by `dpop_jkt`, clients that must use DPoP, and the resource side
//! (introspection's `cnf`, userinfo's DPoP scheme). Each attack on a proof is refused. Both
//! backends (the replay cache is the store's), both issuers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::flow::*;
use crate::keyless::now;
use crate::support::*;

/// A client's DPoP key (P-256).
pub struct DpopKey {
    sk: SigningKey,
    pub jwk: Value,
}

impl DpopKey {
    pub fn new() -> Self {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let jwk: Value =
            serde_json::from_str(&p256::PublicKey::from(sk.verifying_key()).to_jwk_string()).unwrap();
        Self { sk, jwk }
    }

    /// The RFC 7638 thumbprint, computed here independently of the server.
    pub fn jkt(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().unwrap(),
            self.jwk["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for `htm` `htu` (with `ath` for `access_token`), its header and claims patched
    /// by `header`/`claims` (null removes a member).
    pub fn proof_with(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        header: Value,
        claims: Value,
    ) -> String {
        let mut h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let mut c = json!({"jti": unique(), "htm": htm, "htu": htu, "iat": now()});
        if let Some(t) = access_token {
            c["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())));
        }
        for (target, patch) in [(&mut h, header), (&mut c, claims)] {
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    target.as_object_mut().unwrap().remove(k);
                } else {
                    target[k] = v.clone();
                }
            }
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string())
        );
        let sig: Signature = self.sk.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    pub fn proof(&self, htm: &str, htu: &str, access_token: Option<&str>) -> String {
        self.proof_with(htm, htu, access_token, json!({}), json!({}))
    }
}

/// POST a form to the token endpoint with the given `DPoP` headers.
async fn token_with(
    server: &Server,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
    proofs: &[&str],
) -> Resp {
    let mut req = http().post(server.url("/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    Resp::from(req.send().await.unwrap()).await
}

async fn cc(server: &Server, c: &TestClient, proofs: &[&str]) -> Resp {
    token_with(
        server,
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials")],
        proofs,
    )
    .await
}

fn machine(data: &DataDir, tenant: &str, extra: &[&str]) -> TestClient {
    let mut args = vec![
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "worker",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
    ];
    args.extend_from_slice(extra);
    TestClient::from_registration(&data.cli(&args))
}

async fn userinfo_with(server: &Server, scheme: &str, token: &str, proofs: &[&str]) -> Resp {
    let mut req = http()
        .get(server.url("/oauth2/userinfo"))
        .header("Authorization", format!("{scheme} {token}"));
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    Resp::from(req.send().await.unwrap()).await
}

#[tokio::test]
async fn client_credentials_with_a_proof_gives_a_dpop_token_bound_to_its_key() {
    let data = DataDir::new();
    let w = world(&data);
    let c = machine(&data, &w.tenant, &[]);
    let server = Server::start(&data);
    let disc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let algs = disc["dpop_signing_alg_values_supported"]
        .as_array()
        .expect("dpop algs");
    for a in ["ES256", "RS256", "PS256", "EdDSA"] {
        assert!(algs.contains(&json!(a)), "{disc}");
    }

    let key = DpopKey::new();
    let url = server.url("/oauth2/token");
    let r = cc(&server, &c, &[&key.proof("POST", &url, None)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "DPoP");
    let at = r.body["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at, 1)["cnf"]["jkt"], key.jkt().as_str());
    let seen = introspect(&server, &c, at).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["token_type"], "DPoP");
    assert_eq!(seen["cnf"]["jkt"], key.jkt().as_str());

    // Without a proof: a bearer token, as before.
    let r = cc(&server, &c, &[]).await;
    assert_eq!(r.body["token_type"], "Bearer");
    let at = r.body["access_token"].as_str().unwrap();
    assert!(jwt_part(at, 1).get("cnf").is_none());
    let seen = introspect(&server, &c, at).await;
    assert_eq!(seen["token_type"], "Bearer");
    assert!(seen.get("cnf").is_none(), "{seen}");
}

#[tokio::test]
async fn every_bad_proof_is_refused_with_invalid_dpop_proof() {
    let data = DataDir::new();
    let w = world(&data);
    let c = machine(&data, &w.tenant, &[]);
    let server = Server::start(&data);
    let key = DpopKey::new();
    let other = DpopKey::new();
    let url = server.url("/oauth2/token");

    // A proof is good once: the same proof again is a replay.
    let once = key.proof("POST", &url, None);
    assert_eq!(cc(&server, &c, &[&once]).await.status, 200);
    cc(&server, &c, &[&once])
        .await
        .assert_error(400, "invalid_dpop_proof");

    let mut private = key.jwk.clone();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
    // Signed by another key than the one in its header.
    let forged = {
        let good = key.proof("POST", &url, None);
        let mut parts: Vec<&str> = good.split('.').collect();
        let by_other = other.proof("POST", &url, None);
        let sig = by_other.split('.').nth(2).unwrap().to_string();
        parts[2] = &sig;
        parts.join(".")
    };
    // A symmetric algorithm, signed with the HMAC of a key anyone could pick.
    let hmac = {
        let h = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
        let claims = json!({"jti": unique(), "htm": "POST", "htu": url, "iat": now()});
        crate::support::jwt();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("dpop+jwt".into());
        let t = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        let rest = t.split_once('.').unwrap().1.to_string();
        format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h.to_string()))
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "another URL",
            key.proof("POST", &server.url("/oauth2/introspect"), None),
        ),
        ("another method", key.proof("GET", &url, None)),
        (
            "stale iat",
            key.proof_with("POST", &url, None, json!({}), json!({"iat": now() - 600})),
        ),
        (
            "future iat",
            key.proof_with("POST", &url, None, json!({}), json!({"iat": now() + 600})),
        ),
        (
            "no jti",
            key.proof_with("POST", &url, None, json!({}), json!({"jti": null})),
        ),
        (
            "typ JWT",
            key.proof_with("POST", &url, None, json!({"typ": "JWT"}), json!({})),
        ),
        (
            "alg none",
            key.proof_with("POST", &url, None, json!({"alg": "none"}), json!({})),
        ),
        (
            "no jwk",
            key.proof_with("POST", &url, None, json!({"jwk": null}), json!({})),
        ),
        (
            "private key in jwk",
            key.proof_with("POST", &url, None, json!({"jwk": private}), json!({})),
        ),
        ("another key's signature", forged),
        ("HMAC", hmac),
        ("not a JWT", "not-a-jwt".to_string()),
    ];
    for (why, proof) in &cases {
        let r = cc(&server, &c, &[proof]).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{why}: {}",
            r.body
        );
    }
    // One proof per request.
    let (a, b) = (key.proof("POST", &url, None), key.proof("POST", &url, None));
    cc(&server, &c, &[&a, &b])
        .await
        .assert_error(400, "invalid_dpop_proof");
    // The htu is compared without query and fragment.
    let r = cc(&server, &c, &[&key.proof("POST", &format!("{url}?x=1#f"), None)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn a_client_registered_for_dpop_gets_no_token_without_a_proof() {
    let data = DataDir::new();
    let w = world(&data);
    let reg = data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "worker",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--dpop-bound",
    ]);
    // The registration says so.
    assert_eq!(reg["dpop_bound_access_tokens"], true, "{reg}");
    let c = TestClient::from_registration(&reg);
    let server = Server::start(&data);
    cc(&server, &c, &[]).await.assert_error(400, "invalid_dpop_proof");
    let key = DpopKey::new();
    let r = cc(
        &server,
        &c,
        &[&key.proof("POST", &server.url("/oauth2/token"), None)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "DPoP");
}

/// Log in and approve with `extra` authorization parameters; the code.
async fn code_with(b: &Browser, server: &Server, w: &World, p: &Pkce, extra: &[(&str, &str)]) -> String {
    let page = b
        .get(&authorize_url(
            server,
            &w.client.id,
            "openid offline_access",
            &p.challenge,
            extra,
        ))
        .await;
    let page = if page.has("name=\"password\"") {
        b.login(server, &page, "alice", PASSWORD).await
    } else {
        page
    };
    let page = if page.has("name=\"decision\"") {
        b.consent(server, &page, "approve").await
    } else {
        page
    };
    assert_eq!(page.status, 303, "{}", page.html);
    page.redirect_params().get("code").expect("code").clone()
}

async fn redeem_with(server: &Server, c: &TestClient, code: &str, verifier: &str, proofs: &[&str]) -> Resp {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
        ("client_id", c.id.as_str()),
    ];
    let basic = (!c.secret.is_empty()).then_some((c.id.as_str(), c.secret.as_str()));
    token_with(server, basic, &form, proofs).await
}

async fn refresh_with(server: &Server, c: &TestClient, rt: &str, proofs: &[&str]) -> Resp {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if c.secret.is_empty() {
        form.push(("client_id", c.id.as_str()));
    }
    let basic = (!c.secret.is_empty()).then_some((c.id.as_str(), c.secret.as_str()));
    token_with(server, basic, &form, proofs).await
}

#[tokio::test]
async fn a_public_clients_tokens_are_bound_to_its_key_through_refresh_and_at_userinfo() {
    let data = DataDir::new();
    let mut w = world(&data);
    w.client = code_client(&data, &w.tenant, "Agent CLI", "none", &[]);
    let server = Server::start(&data);
    let b = Browser::new();
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let url = server.url("/oauth2/token");
    let p = pkce();
    let code = code_with(&b, &server, &w, &p, &[]).await;
    let r = redeem_with(
        &server,
        &w.client,
        &code,
        &p.verifier,
        &[&key.proof("POST", &url, None)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "DPoP");
    let at = r.body["access_token"].as_str().unwrap().to_string();
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&at, 1)["cnf"]["jkt"], key.jkt().as_str());

    // The refresh token goes only with a proof of the same key; a wrong try changes nothing.
    refresh_with(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    refresh_with(&server, &w.client, &rt, &[&other.proof("POST", &url, None)])
        .await
        .assert_error(400, "invalid_grant");
    let r = refresh_with(&server, &w.client, &rt, &[&key.proof("POST", &url, None)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "DPoP");
    let rt2 = r.body["refresh_token"].as_str().unwrap().to_string();
    // Its successor is bound too.
    refresh_with(&server, &w.client, &rt2, &[&other.proof("POST", &url, None)])
        .await
        .assert_error(400, "invalid_grant");
    // Within the reuse grace, the old token again gets the same pair only with the same key.
    refresh_with(&server, &w.client, &rt, &[&other.proof("POST", &url, None)])
        .await
        .assert_error(400, "invalid_grant");
    let again = refresh_with(&server, &w.client, &rt, &[&key.proof("POST", &url, None)]).await;
    assert_eq!(again.body["refresh_token"], rt2.as_str(), "{}", again.body);
    assert_eq!(again.body["token_type"], "DPoP");

    // userinfo: the DPoP scheme with a proof over this request and this token.
    let ui = server.url("/oauth2/userinfo");
    let ok = userinfo_with(&server, "DPoP", &at, &[&key.proof("GET", &ui, Some(&at))]).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["sub"], w.sub.as_str());
    let refused = [
        (
            "as Bearer",
            userinfo_with(&server, "Bearer", &at, &[]).await,
            "invalid_token",
        ),
        (
            "proof of another key",
            userinfo_with(&server, "DPoP", &at, &[&other.proof("GET", &ui, Some(&at))]).await,
            "invalid_token",
        ),
        (
            "proof without ath",
            userinfo_with(&server, "DPoP", &at, &[&key.proof("GET", &ui, None)]).await,
            "invalid_dpop_proof",
        ),
        (
            "proof for the token endpoint",
            userinfo_with(&server, "DPoP", &at, &[&key.proof("POST", &url, Some(&at))]).await,
            "invalid_dpop_proof",
        ),
        (
            "no proof",
            userinfo_with(&server, "DPoP", &at, &[]).await,
            "invalid_dpop_proof",
        ),
    ];
    for (why, r, error) in refused {
        assert_eq!(r.status, 401, "{why}: {}", r.body);
        let challenge = r.header("www-authenticate").unwrap_or_default().to_string();
        assert!(
            challenge.starts_with("DPoP ") && challenge.contains(&format!("error=\"{error}\"")),
            "{why}: {challenge}"
        );
    }
    // A bearer token is not accepted under the DPoP scheme, and still works as a bearer.
    let plain = code_with(&b, &server, &w, &p, &[]).await;
    let r = redeem_with(&server, &w.client, &plain, &p.verifier, &[]).await;
    let bearer = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(
        userinfo_with(&server, "DPoP", &bearer, &[&key.proof("GET", &ui, Some(&bearer))])
            .await
            .status,
        401
    );
    assert_eq!(userinfo(&server, &bearer).await.status, 200);
}

#[tokio::test]
async fn a_code_bound_by_dpop_jkt_is_redeemed_only_with_that_key() {
    let data = DataDir::new();
    let mut w = world(&data);
    w.client = code_client(&data, &w.tenant, "Agent CLI", "none", &[]);
    let server = Server::start(&data);
    let b = Browser::new();
    let (key, other) = (DpopKey::new(), DpopKey::new());
    let url = server.url("/oauth2/token");
    let p = pkce();
    let jkt = key.jkt();
    let code = code_with(&b, &server, &w, &p, &[("dpop_jkt", &jkt)]).await;
    redeem_with(&server, &w.client, &code, &p.verifier, &[])
        .await
        .assert_error(400, "invalid_grant");
    redeem_with(
        &server,
        &w.client,
        &code,
        &p.verifier,
        &[&other.proof("POST", &url, None)],
    )
    .await
    .assert_error(400, "invalid_grant");
    // Those failures did not use up the code.
    let r = redeem_with(
        &server,
        &w.client,
        &code,
        &p.verifier,
        &[&key.proof("POST", &url, None)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        jwt_part(r.body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        jkt.as_str()
    );
    // A dpop_jkt that is not a thumbprint is refused at the authorization endpoint.
    let page = b
        .get(&authorize_url(
            &server,
            &w.client.id,
            "openid",
            &p.challenge,
            &[("dpop_jkt", "nope")],
        ))
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert_eq!(
        page.redirect_params().get("error").map(String::as_str),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_not_bound() {
    let data = DataDir::new();
    let w = world(&data);
    let server = Server::start(&data);
    let b = Browser::new();
    let key = DpopKey::new();
    let url = server.url("/oauth2/token");
    let p = pkce();
    let code = code_with(&b, &server, &w, &p, &[]).await;
    let r = redeem_with(
        &server,
        &w.client,
        &code,
        &p.verifier,
        &[&key.proof("POST", &url, None)],
    )
    .await;
    assert_eq!(r.body["token_type"], "DPoP", "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // RFC 9449 §5: its authentication binds the refresh token; the access token follows the
    // request's proof (or is a bearer token without one).
    let r = refresh_with(&server, &w.client, &rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
}

#[tokio::test]
async fn a_tenant_that_requires_nonces_gets_only_proofs_with_a_current_nonce_of_its_own() {
    let data = DataDir::new();
    let w = world(&data);
    let other = world(&data);
    for t in [&w.tenant, &other.tenant] {
        let v = data.cli(&["tenant", "set-policy", t, "--dpop-nonce", "required"]);
        assert_eq!(v["dpop_nonce"], "required", "{v}");
    }
    let c = machine(&data, &w.tenant, &[]);
    let theirs = machine(&data, &other.tenant, &[]);
    let server = Server::start(&data);
    let key = DpopKey::new();
    let url = server.url("/oauth2/token");
    let with_nonce = |n: &str| key.proof_with("POST", &url, None, json!({}), json!({"nonce": n}));

    // Without a nonce: use_dpop_nonce, and the nonce to use.
    let r = cc(&server, &c, &[&key.proof("POST", &url, None)]).await;
    r.assert_error(400, "use_dpop_nonce");
    let nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_string();
    // With it: a DPoP token; the nonce serves more than one proof.
    for _ in 0..2 {
        let r = cc(&server, &c, &[&with_nonce(&nonce)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["token_type"], "DPoP");
    }
    // Another tenant's nonce, or one we never made, is no good here.
    // (At a tenant's own issuer, the other tenant's clients use theirs.)
    let their_url = if server.is_tenant_issuer() {
        format!("{}/t/{}/oauth2/token", server.base, other.tenant)
    } else {
        url.clone()
    };
    let r = Resp::from(
        http()
            .post(&their_url)
            .basic_auth(&theirs.id, Some(&theirs.secret))
            .header("DPoP", key.proof("POST", &their_url, None))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "use_dpop_nonce");
    let their_nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_string();
    assert_ne!(their_nonce, nonce);
    for bad in [their_nonce.as_str(), "made-up", &format!("{nonce}x")] {
        let r = cc(&server, &c, &[&with_nonce(bad)]).await;
        r.assert_error(400, "use_dpop_nonce");
        assert!(r.header("dpop-nonce").is_some());
    }
    // Bearer requests are unaffected.
    assert_eq!(cc(&server, &c, &[]).await.status, 200);

    // Stateless: another server process (another Lambda instance) accepts this one's nonce.
    let second = Server::start(&data);
    let url2 = second.url("/oauth2/token");
    let proof = key.proof_with("POST", &url2, None, json!({}), json!({"nonce": nonce}));
    let r = cc(&second, &c, &[&proof]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Off again: no nonce needed.
    data.cli(&["tenant", "set-policy", &w.tenant, "--dpop-nonce", "off"]);
    after_tenant_change().await;
    let r = cc(&server, &c, &[&key.proof("POST", &url, None)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn admin_clients(server: &Server, auth: &str) -> Resp {
    Resp::from(
        http()
            .get(server.url("/admin/v1/clients"))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Attack: the operator's automation asks for its admin token with a DPoP proof, so that a copy
/// of the token (a log line, a crash dump) is worth nothing without the key. The admin API is a
/// resource of this server: it must refuse that token as a bearer token, as userinfo does (and
/// as the README tells every resource server to).
#[tokio::test]
async fn a_dpop_bound_admin_token_is_refused_as_a_bearer_token_at_the_admin_api() {
    let data = DataDir::new();
    let w = world(&data);
    let ops = TestClient::from_registration(&data.cli(&[
        "client",
        "create",
        "--tenant",
        &w.tenant,
        "--name",
        "Tenant Ops",
        "--scope",
        "bulwark:admin",
    ]));
    let server = Server::start(&data);
    let form = [("grant_type", "client_credentials"), ("scope", "bulwark:admin")];
    // A bearer admin token gets in (the route works).
    let r = token_with(&server, Some((&ops.id, &ops.secret)), &form, &[]).await;
    let bearer = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        admin_clients(&server, &format!("Bearer {bearer}")).await.status,
        200
    );
    // A DPoP-bound one, stolen without its key.
    let key = DpopKey::new();
    let proof = key.proof("POST", &server.url("/oauth2/token"), None);
    let r = token_with(&server, Some((&ops.id, &ops.secret)), &form, &[&proof]).await;
    assert_eq!(r.body["token_type"], "DPoP", "{}", r.body);
    let bound = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(jwt_part(&bound, 1)["cnf"]["jkt"], key.jkt().as_str());
    let stolen = admin_clients(&server, &format!("Bearer {bound}")).await;
    assert_eq!(
        stolen.status, 401,
        "a DPoP-bound admin token used as a bearer token: {}",
        stolen.body
    );
}

/// RFC 9449 §5: "When an authorization server supporting DPoP issues a refresh token to a public
/// client that presents a valid DPoP proof at the token endpoint, the refresh token MUST be bound
/// to the respective public key." A public client that starts sending proofs after its code was
/// redeemed without one (an upgraded CLI) gets a refresh token a thief can use without its key.
#[tokio::test]
async fn a_public_clients_refresh_token_issued_with_a_proof_is_bound_even_if_its_parent_was_not() {
    let data = DataDir::new();
    let mut w = world(&data);
    w.client = code_client(&data, &w.tenant, "Agent CLI", "none", &[]);
    let server = Server::start(&data);
    let b = Browser::new();
    let key = DpopKey::new();
    let url = server.url("/oauth2/token");
    let p = pkce();
    let code = code_with(&b, &server, &w, &p, &[]).await;
    let r = redeem_with(&server, &w.client, &code, &p.verifier, &[]).await;
    assert_eq!(r.body["token_type"], "Bearer", "{}", r.body);
    let rt = r.body["refresh_token"].as_str().unwrap().to_string();
    // Refreshed with a proof: the new refresh token is issued to a public client presenting a
    // valid proof.
    let r = refresh_with(&server, &w.client, &rt, &[&key.proof("POST", &url, None)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "DPoP");
    let rt2 = r.body["refresh_token"].as_str().unwrap().to_string();
    // A copy of it without the key gets nothing.
    let stolen = refresh_with(&server, &w.client, &rt2, &[]).await;
    assert_eq!(
        (stolen.status, stolen.body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a refresh token issued against a DPoP proof, used without the key: {}",
        stolen.body
    );
}
