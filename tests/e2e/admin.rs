//! The tenant admin API (`/admin/v1`): who may call it, clients (secret shown once, rotation
//! with a grace period, disable and delete cascades), users, policy, scopes, the audit trail,
//! `If-Match`, RFC 9457 problems, and schemathesis checking every answer against the OpenAPI
//! document the server generates. Each test runs on both backends.

use serde_json::{Value, json};

use crate::flow::*;
use crate::support::*;

/// An operator-made admin client of `tenant` and a token of it.
pub(crate) async fn admin_token(data: &DataDir, server: &Server, tenant: &str) -> (TestClient, String) {
    let v = data.cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "Tenant Ops",
        "--scope",
        "bulwark:admin",
    ]);
    let c = TestClient::from_registration(&v);
    let t = token(server, &c, &[("scope", "bulwark:admin")]).await;
    (c, t["access_token"].as_str().unwrap().to_string())
}

pub(crate) struct Api<'a> {
    pub(crate) server: &'a Server,
    pub(crate) token: String,
}

impl Api<'_> {
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = http()
            .request(method, self.server.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = Resp::from(req.send().await.unwrap()).await;
        if r.status >= 400 {
            r.assert_problem(r.status);
        }
        r
    }
    pub(crate) async fn get(&self, path: &str) -> Resp {
        self.call(reqwest::Method::GET, path, None, &[]).await
    }
    pub(crate) async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(reqwest::Method::POST, path, Some(body), &[]).await
    }
    pub(crate) async fn patch(&self, path: &str, body: Value, if_match: Option<&str>) -> Resp {
        let h: Vec<(&str, &str)> = if_match.map(|m| vec![("if-match", m)]).unwrap_or_default();
        self.call(reqwest::Method::PATCH, path, Some(body), &h).await
    }
    pub(crate) async fn delete(&self, path: &str) -> Resp {
        self.call(reqwest::Method::DELETE, path, None, &[]).await
    }
}

trait Problem {
    fn assert_problem(&self, status: u16);
}

impl Problem for Resp {
    /// An RFC 9457 problem with this status.
    fn assert_problem(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status, "{}", self.body);
        for f in ["type", "title", "detail"] {
            assert!(self.body[f].is_string(), "{f} in {}", self.body);
        }
    }
}

fn tenant_name() -> String {
    format!("t{}", unique().replace('-', ""))
}

#[tokio::test]
async fn only_an_admin_token_of_the_tenant_gets_in() {
    let data = DataDir::new();
    let tenant = tenant_name();
    let other = tenant_name();
    let ordinary = data.tenant_with_client(&tenant);
    data.cli(&["tenant", "create", &other, "--dcr", "open"]);
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let (_, other_admin) = admin_token(&data, &server, &other).await;

    // No token: 401 with a Bearer challenge; a malformed or foreign token: 401 invalid_token.
    let r = Resp::from(http().get(server.url("/admin/v1/clients")).send().await.unwrap()).await;
    r.assert_problem(401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    for bad in ["not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let r = Api {
            server: &server,
            token: bad.into(),
        }
        .get("/admin/v1/clients")
        .await;
        r.assert_problem(401);
        assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
    }
    // A token of ours without the scope: 403 insufficient_scope.
    let plain = token(&server, &ordinary, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = Api {
        server: &server,
        token: plain,
    }
    .get("/admin/v1/clients")
    .await;
    r.assert_problem(403);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );

    // bulwark:admin is reserved: not through DCR, not as a catalog scope, not on a client
    // that acts for users, and an admin token cannot make another admin client.
    let dcr = http()
        .post(server.url("/oauth2/register"))
        .header("x-bulwark-tenant", &other)
        .json(&json!({"grant_types": ["client_credentials"], "scope": "bulwark:admin"}))
        .send()
        .await
        .unwrap();
    Resp::from(dcr).await.assert_error(400, "invalid_client_metadata");
    let (ok, _, err) = data.cli_raw(&["scope", "add", "--tenant", &tenant, "bulwark:x", "x"], &[]);
    assert!(!ok && err.contains("belong to Bulwark"), "{err}");
    let (ok, _, err) = data.cli_raw(
        &[
            "client",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "web",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            CALLBACK,
            "--scope",
            "openid bulwark:admin",
        ],
        &[],
    );
    assert!(!ok && err.contains("client_credentials clients only"), "{err}");
    let api = Api {
        server: &server,
        token: admin.clone(),
    };
    let r = api
        .post(
            "/admin/v1/clients",
            json!({"client_name": "sneaky", "grant_types": ["client_credentials"], "scope": "bulwark:admin"}),
        )
        .await;
    r.assert_problem(400);
    assert_eq!(r.body["field"], "scope");

    // An admin token is for the admin API only: its audience is {issuer}/admin/v1, and
    // bulwark:admin comes alone (never in a token a resource server receives).
    assert_eq!(jwt_part(&admin, 1)["aud"], server.url("/admin/v1"));
    let (ops, _) = admin_token(&data, &server, &tenant).await;
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&ops.id, &ops.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "bulwark:admin"),
            ("resource", "https://elsewhere.example"),
        ],
    )
    .await;
    r.assert_error(400, "invalid_scope");
    // The API cannot hang an agent on an administration client.
    let r = api
        .post(
            "/admin/v1/clients",
            json!({"grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"], "agent_of": ops.id}),
        )
        .await;
    r.assert_problem(400);
    assert_eq!(r.body["field"], "agent_of", "{}", r.body);

    // Another tenant's admin sees none of this tenant's objects: 404, never 403.
    let other_api = Api {
        server: &server,
        token: other_admin,
    };
    other_api
        .get(&format!("/admin/v1/clients/{}", ordinary.id))
        .await
        .assert_problem(404);
    other_api
        .delete(&format!("/admin/v1/clients/{}", ordinary.id))
        .await
        .assert_problem(404);
    let listed = other_api.get("/admin/v1/clients").await;
    assert!(!listed.body.to_string().contains(&ordinary.id), "{}", listed.body);
    assert_eq!(
        api.get(&format!("/admin/v1/clients/{}", ordinary.id))
            .await
            .status,
        200
    );

    // A path that does not decode is a problem too, not a plain-text answer.
    api.get("/admin/v1/clients/%FF").await.assert_problem(400);
    let r = api
        .call(reqwest::Method::PUT, "/admin/v1/clients", None, &[])
        .await;
    r.assert_problem(405);
    assert!(r.header("allow").is_some());
    let r = Resp::from(
        http()
            .post(server.url("/admin/v1/clients"))
            .bearer_auth(&api.token)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_problem(415);

    // The document is public and names the bearer scheme.
    let doc = Resp::from(
        http()
            .get(server.url("/admin/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn clients_secrets_rotate_with_grace_and_disable_and_delete_cascade() {
    let data = DataDir::new();
    let tenant = tenant_name();
    data.tenant_with_client(&tenant);
    let caller = data.resource_server(&tenant, &[]);
    let server = Server::start(&data);
    let (admin_client, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };

    // Create: the secret is in this answer only.
    let r = api
        .post(
            "/admin/v1/clients",
            json!({"client_name": "Nightly reports", "grant_types": ["client_credentials"], "scope": "api:read"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["client_id"].as_str().unwrap().to_string();
    let first = r.body["client_secret"].as_str().unwrap().to_string();
    assert_eq!(r.body["origin"], "api");
    let app = TestClient {
        id: id.clone(),
        secret: first.clone(),
        registration_token: None,
        serves: Vec::new(),
    };
    let got = api.get(&format!("/admin/v1/clients/{id}")).await;
    assert_eq!(got.status, 200);
    assert!(got.body.get("client_secret").is_none(), "{}", got.body);
    assert!(!got.body.to_string().contains(&first));
    let etag = got.header("etag").unwrap().to_string();
    let at = token(&server, &app, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(active(&server, &caller, &at).await);

    // Rotate with a grace period: old and new both work; then with none: only the newest.
    let r = api
        .post(
            &format!("/admin/v1/clients/{id}/secret"),
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.body["client_secret"].as_str().unwrap().to_string();
    assert!(r.body["previous_secret_expires_at"].as_i64().unwrap() > 0);
    for s in [&first, &second] {
        let c = TestClient {
            secret: s.clone(),
            ..app.clone()
        };
        token(&server, &c, &[]).await;
    }
    let r = api
        .post(
            &format!("/admin/v1/clients/{id}/secret"),
            json!({"grace_seconds": 0}),
        )
        .await;
    let third = r.body["client_secret"].as_str().unwrap().to_string();
    for (s, ok) in [(&first, false), (&second, false), (&third, true)] {
        let r = post_form(
            &server.url("/oauth2/token"),
            Some((&id, s)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(r.status == 200, ok, "{}", r.body);
    }
    api.post(
        &format!("/admin/v1/clients/{id}/secret"),
        json!({"grace_seconds": 8 * 86400}),
    )
    .await
    .assert_problem(400);
    let app = TestClient {
        secret: third.clone(),
        ..app
    };

    // If-Match: a stale ETag loses (412); the current one wins and moves the ETag on.
    api.patch(
        &format!("/admin/v1/clients/{id}"),
        json!({"client_name": "Stale"}),
        Some(&etag),
    )
    .await
    .assert_problem(412);
    let cur = api.get(&format!("/admin/v1/clients/{id}")).await;
    let etag = cur.header("etag").unwrap().to_string();
    let r = api
        .patch(
            &format!("/admin/v1/clients/{id}"),
            json!({"client_name": "Nightly reports v2"}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["client_name"], "Nightly reports v2");
    assert_ne!(r.header("etag").unwrap(), etag);
    // Validation errors name the field.
    let r = api
        .patch(
            &format!("/admin/v1/clients/{id}"),
            json!({"scope": "no-such-scope"}),
            None,
        )
        .await;
    r.assert_problem(400);
    assert_eq!(r.body["field"], "scope");

    // Disable: its token introspects inactive, it cannot authenticate; enabling it again does
    // not bring the old token back.
    let at = token(&server, &app, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(active(&server, &caller, &at).await);
    let r = api
        .patch(
            &format!("/admin/v1/clients/{id}"),
            json!({"disabled": true}),
            None,
        )
        .await;
    assert_eq!(r.body["disabled"], true, "{}", r.body);
    assert!(!active(&server, &caller, &at).await);
    post_form(
        &server.url("/oauth2/token"),
        Some((&id, &third)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .assert_error(401, "invalid_client");
    let listed = api.get("/admin/v1/clients?limit=200").await;
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == id.as_str() && c["disabled"] == true)
    );
    // Keep the second apart: tokens of the second the client was disabled in never come back.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    api.patch(
        &format!("/admin/v1/clients/{id}"),
        json!({"disabled": false}),
        None,
    )
    .await;
    assert!(!active(&server, &caller, &at).await);
    let fresh = token(&server, &app, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(active(&server, &caller, &fresh).await);

    // The operator's admin clients are not the API's to change.
    for r in [
        api.patch(
            &format!("/admin/v1/clients/{}", admin_client.id),
            json!({"client_name": "mine now"}),
            None,
        )
        .await,
        api.delete(&format!("/admin/v1/clients/{}", admin_client.id))
            .await,
        api.post(
            &format!("/admin/v1/clients/{}/secret", admin_client.id),
            json!({}),
        )
        .await,
    ] {
        r.assert_problem(409);
    }

    // Delete: gone (404), its token inactive, its secret refused.
    let r = api.delete(&format!("/admin/v1/clients/{id}")).await;
    assert_eq!(r.status, 204);
    api.get(&format!("/admin/v1/clients/{id}"))
        .await
        .assert_problem(404);
    assert!(!active(&server, &caller, &fresh).await);

    // The audit trail, newest first, by kind family and subject; never a secret.
    let r = api
        .get(&format!("/admin/v1/audit?kind=client&subject={id}&limit=200"))
        .await;
    let kinds: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "client.deleted",
            "client.enabled",
            "client.updated",
            "client.disabled",
            "client.updated",
            "client.updated",
            "client.secret_rotated",
            "client.secret_rotated",
            "client.created"
        ],
        "{}",
        r.body
    );
    let all = api.get("/admin/v1/audit?limit=200").await.body.to_string();
    for s in [&first, &second, &third] {
        assert!(!all.contains(s.as_str()));
    }
    // Paging: limit 2 pages through the same events.
    let mut cursor: Option<String> = None;
    let mut paged = Vec::new();
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/admin/v1/audit?kind=client&subject={id}&limit=2&cursor={c}"),
            None => format!("/admin/v1/audit?kind=client&subject={id}&limit=2"),
        };
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        paged.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["kind"].clone()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged.len(), kinds.len());
    api.get("/admin/v1/audit?cursor=AAAA").await.assert_problem(400);
    api.get("/admin/v1/audit?limit=0").await.assert_problem(400);
}

#[tokio::test]
async fn users_are_managed_and_their_cascades_really_end_tokens() {
    let data = DataDir::new();
    let tenant = tenant_name();
    data.tenant_with_client(&tenant);
    let caller = data.resource_server(&tenant, &[]);
    let client = code_client(&data, &tenant, "Acme Notes", "client_secret_basic", &[]);
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };

    // Create: never a password or hash in an answer; a taken username is 409; a weak password
    // names its field.
    let r = api
        .post(
            "/admin/v1/users",
            json!({"username": "alice", "password": PASSWORD, "name": "Alice", "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = r.body["user_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["admin"], false);
    api.post(
        "/admin/v1/users",
        json!({"username": "ALICE", "password": PASSWORD}),
    )
    .await
    .assert_problem(409);
    let r = api
        .post("/admin/v1/users", json!({"username": "bob", "password": "short"}))
        .await;
    r.assert_problem(400);
    assert_eq!(r.body["field"], "password");

    let w = World {
        tenant: tenant.clone(),
        client: client.clone(),
        sub: sub.clone(),
    };
    let sign_in = || async {
        let b = Browser::new();
        let p = pkce();
        let code = get_code(&b, &server, &w, "openid api:read offline_access", &p).await;
        let r = redeem(&server, &client, &code, &p.verifier).await;
        assert_eq!(r.status, 200, "{}", r.body);
        (
            r.body["access_token"].as_str().unwrap().to_string(),
            r.body["refresh_token"].as_str().unwrap().to_string(),
        )
    };

    // The user's apps, and taking one back for them.
    let (at, rt) = sign_in().await;
    let apps = api.get(&format!("/admin/v1/users/{sub}/apps")).await;
    assert_eq!(
        apps.body["items"][0]["client_id"],
        client.id.as_str(),
        "{}",
        apps.body
    );
    let r = api
        .delete(&format!("/admin/v1/users/{sub}/apps/{}", client.id))
        .await;
    assert_eq!(r.status, 204);
    assert!(!active(&server, &caller, &at).await);
    refresh(&server, &client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    api.delete(&format!("/admin/v1/users/{sub}/apps/{}", client.id))
        .await
        .assert_problem(404);

    // Deactivate: tokens end, no login; reactivate: login again, the old tokens stay dead.
    let (at, rt) = sign_in().await;
    let r = api
        .post(&format!("/admin/v1/users/{sub}/deactivate"), json!({}))
        .await;
    assert_eq!(r.body["active"], false, "{}", r.body);
    assert!(!active(&server, &caller, &at).await);
    assert_eq!(userinfo(&server, &at).await.status, 401);
    refresh(&server, &client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    let r = api
        .post(&format!("/admin/v1/users/{sub}/reactivate"), json!({}))
        .await;
    assert_eq!(r.body["active"], true, "{}", r.body);
    assert!(!active(&server, &caller, &at).await);
    let (at, _) = sign_in().await;
    assert!(active(&server, &caller, &at).await);

    // PATCH with If-Match; a stale tag is 412.
    let cur = api.get(&format!("/admin/v1/users/{sub}")).await;
    let etag = cur.header("etag").unwrap().to_string();
    let r = api
        .patch(
            &format!("/admin/v1/users/{sub}"),
            json!({"name": "Alice A.", "email": null, "admin": true}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["name"].as_str(), r.body["admin"].as_bool()),
        (Some("Alice A."), Some(true))
    );
    assert!(r.body.get("email").is_none(), "{}", r.body);
    api.patch(
        &format!("/admin/v1/users/{sub}"),
        json!({"name": "x"}),
        Some(&etag),
    )
    .await
    .assert_problem(412);
    let listed = api.get("/admin/v1/users").await;
    assert_eq!(
        listed.body["items"][0]["user_id"],
        sub.as_str(),
        "{}",
        listed.body
    );
    for body in [&cur.body, &r.body, &listed.body] {
        let s = body.to_string();
        assert!(!s.contains("argon2") && !s.contains("password"), "{s}");
    }

    // Delete: gone, their tokens end, and the username is free for someone new — and so is
    // their subject at an identity provider (it can be linked to the new user).
    let idp = crate::keyless::key("idp-1");
    let f = data.path().join(format!("idp-{}.json", unique()));
    std::fs::write(&f, json!({"keys": [idp.jwk]}).to_string()).unwrap();
    let idp_url = "https://idp.example";
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        idp_url,
        "--jwks-file",
        f.to_str().unwrap(),
    ]);
    let link = [
        "user",
        "link",
        "--tenant",
        tenant.as_str(),
        "--username",
        "alice",
        "--issuer",
        idp_url,
        "--subject",
        "ext-alice",
    ];
    data.cli(&link);
    let r = api.delete(&format!("/admin/v1/users/{sub}")).await;
    assert_eq!(r.status, 204);
    api.get(&format!("/admin/v1/users/{sub}"))
        .await
        .assert_problem(404);
    assert!(!active(&server, &caller, &at).await);
    let again = api
        .post(
            "/admin/v1/users",
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_ne!(again.body["user_id"], sub.as_str());
    data.cli(&link);
    let kinds = api.get(&format!("/admin/v1/audit?kind=user&subject={sub}")).await;
    let kinds: Vec<&str> = kinds.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"user.deleted"), "{kinds:?}");
    assert!(
        kinds.contains(&"user.admin_granted") && kinds.contains(&"user.reactivated"),
        "{kinds:?}"
    );
}

/// After a suspected compromise: `PATCH /admin/v1/users/{id}` with a new password ends the
/// user's sessions only; with `"sign_out_everywhere": true` it ends everything they hold —
/// refresh token, access token, an agent's delegated token — and they sign in with the new
/// password; `sign_out_everywhere` alone does the same without a new password.
#[tokio::test]
async fn an_admin_password_reset_signs_out_everywhere_when_asked() {
    use crate::sign_out::*;
    let data = DataDir::new();
    let f = fixture(&data);
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &f.w.tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let alice = format!("/admin/v1/users/{}", f.w.sub);
    let (second, third) = ("a second long password", "a third long password");

    let held = sign_in(&server, &f, PASSWORD).await;
    let r = api.patch(&alice, json!({"password": second}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let held = only_sessions_ended(&server, &f, held).await;

    let r = api
        .patch(
            &alice,
            json!({"password": third, "sign_out_everywhere": true}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], true, "{}", r.body);
    ended_everywhere(&server, &f, &held).await;

    let held = sign_in(&server, &f, third).await;
    let r = api
        .patch(&alice, json!({"sign_out_everywhere": true}), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    ended_everywhere(&server, &f, &held).await;
    sign_in(&server, &f, third).await;

    let r = api
        .patch(&alice, json!({"sign_out_everywhere": "yes"}), None)
        .await;
    r.assert_problem(400);
    assert_eq!(r.body["field"], "sign_out_everywhere", "{}", r.body);
    let kinds = api
        .get(&format!(
            "/admin/v1/audit?kind=user.signed_out_everywhere&subject={}",
            f.w.sub
        ))
        .await;
    assert_eq!(kinds.body["items"].as_array().unwrap().len(), 2, "{}", kinds.body);
}

#[tokio::test]
async fn policy_and_scopes_are_the_admins_to_set() {
    let data = DataDir::new();
    let tenant = tenant_name();
    data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let register = || async {
        Resp::from(
            http()
                .post(server.url("/oauth2/register"))
                .header("x-bulwark-tenant", &tenant)
                .json(&json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none", "scope": "openid"}))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    assert_eq!(register().await.status, 201);

    let p = api.get("/admin/v1/policy").await;
    assert_eq!(p.body["dcr"], "open");
    let etag = p.header("etag").unwrap().to_string();
    let r = api
        .patch(
            "/admin/v1/policy",
            json!({"dcr": "closed", "access_token_ttl": 600}),
            Some(&etag),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["dcr"].as_str(), r.body["access_token_ttl"].as_i64()),
        (Some("closed"), Some(600))
    );
    assert!(register().await.status >= 400);
    api.patch("/admin/v1/policy", json!({"dcr": "open"}), Some(&etag))
        .await
        .assert_problem(412);
    let r = api
        .patch("/admin/v1/policy", json!({"access_token_ttl": 5}), None)
        .await;
    r.assert_problem(400);
    assert_eq!(r.body["field"], "access_token_ttl");
    let r = api
        .patch("/admin/v1/policy", json!({"dcr": "sometimes"}), None)
        .await;
    assert_eq!(r.body["field"], "dcr");
    // A token now lives the tenant's 10 minutes.
    let c = data.client(&tenant, "openid", "client_secret_basic");
    let t = token(&server, &c, &[]).await;
    assert_eq!(t["expires_in"], 600, "{t}");

    // Scopes: add, describe, restrict, remove; standard and reserved names are refused.
    let r = api
        .call(
            reqwest::Method::PUT,
            "/admin/v1/scopes/files:read",
            Some(json!({"description": "Read your files", "restricted": true})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = api.get("/admin/v1/scopes").await;
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "files:read"
                && s["restricted"] == true
                && s["description"] == "Read your files"),
        "{}",
        list.body
    );
    for (name, status) in [("bulwark:root", 400), ("openid", 200)] {
        let r = api
            .call(
                reqwest::Method::PUT,
                &format!("/admin/v1/scopes/{name}"),
                Some(json!({"description": "Sign you in"})),
                &[],
            )
            .await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
    }
    api.delete("/admin/v1/scopes/openid").await.assert_problem(400);
    assert_eq!(api.delete("/admin/v1/scopes/files:read").await.status, 204);
    api.delete("/admin/v1/scopes/files:read")
        .await
        .assert_problem(404);
    let r = api.get("/admin/v1/audit?kind=policy").await;
    assert_eq!(r.body["items"][0]["detail"], "dcr,access_token_ttl", "{}", r.body);
}

/// schemathesis (pinned, PyPI) generates requests from the OpenAPI document the server serves
/// and checks every answer against it: no 5xx; every status code, content type, header and body
/// as documented.
#[tokio::test]
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs schemathesis in .venv-schemathesis: run `bash infra/test.sh` (it installs it and enables feature test-services)"
)]
async fn schemathesis_finds_every_answer_as_documented() {
    let data = DataDir::new();
    let tenant = tenant_name();
    data.tenant_with_client(&tenant);
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    std::fs::create_dir_all(repo().join("test-output")).unwrap();
    let report = repo().join(format!(
        "test-output/schemathesis-{}.xml",
        if data.is_dynamodb() {
            "dynamodb"
        } else {
            "embedded"
        }
    ));
    let out = std::process::Command::new(repo().join(".venv-schemathesis/bin/schemathesis"))
        .args(["--no-color", "run", &server.url("/admin/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        ])
        .args(["--max-examples", "25", "--seed", "20261123"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        // Its example database and caches go under test-output, not into the source tree.
        .current_dir(repo().join("test-output"))
        .output()
        .expect("run .venv-schemathesis/bin/schemathesis (bash infra/venv.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers that do not match the document:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran every operation (a run that tested nothing would also exit 0).
    assert!(stdout.contains("37 selected / 37 total"), "{stdout}");
    // "N generated, N passed": it generated cases, and every one passed.
    let counts: Vec<u64> = stdout
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no test-case count: {stdout}"))
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] >= 500 && counts[0] == counts[1],
        "{counts:?}: {stdout}"
    );
}

/// The operator's CLI rotates any client's secret (admin clients too, which the API may not),
/// through the same service function as the API.
#[tokio::test]
async fn the_operator_rotates_secrets_from_the_cli() {
    let data = DataDir::new();
    let tenant = tenant_name();
    data.cli(&["tenant", "create", &tenant]);
    let server = Server::start(&data);
    let (admin, _) = admin_token(&data, &server, &tenant).await;
    let out = data.cli(&[
        "client",
        "rotate-secret",
        "--tenant",
        &tenant,
        &admin.id,
        "--grace-seconds",
        "0",
    ]);
    let new = TestClient {
        secret: out["client_secret"].as_str().unwrap().to_string(),
        ..admin.clone()
    };
    assert!(
        out.get("previous_secret_expires_at").is_none_or(Value::is_null),
        "{out}"
    );
    token(&server, &new, &[]).await;
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&admin.id, &admin.secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    r.assert_error(401, "invalid_client");
    let out = data.cli(&["client", "rotate-secret", "--tenant", &tenant, &admin.id]);
    assert!(out["previous_secret_expires_at"].as_i64().unwrap() > 0, "{out}");
    token(&server, &new, &[]).await;
    let (ok, _, err) = data.cli_raw(
        &["client", "rotate-secret", "--tenant", "no-such-tenant", &admin.id],
        &[],
    );
    assert!(!ok && err.contains("not found"), "{err}");
    let u = data.cli_stdin(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--username",
            "root",
            "--password-stdin",
            "--admin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(u["admin"], true, "{u}");

    // Groups and a filtered audit listing, through the same service functions as the API.
    let g = data.cli(&["group", "create", "--tenant", &tenant, "Operators"]);
    let gid = g["group_id"].as_str().unwrap().to_string();
    data.cli(&["group", "add", "--tenant", &tenant, &gid, "--username", "ROOT"]);
    let listed = data.cli(&["group", "list", "--tenant", &tenant]);
    assert_eq!(listed["groups"][0]["name"], "Operators", "{listed}");
    let (ok, _, err) = data.cli_raw(
        &["group", "add", "--tenant", &tenant, &gid, "--username", "nobody"],
        &[],
    );
    assert!(!ok && err.contains("not found"), "{err}");
    data.cli(&["group", "remove", "--tenant", &tenant, &gid, "--username", "root"]);
    data.cli(&["group", "delete", "--tenant", &tenant, &gid]);
    let kinds = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["audit", "list", "--tenant", tenant.as_str()];
        args.extend_from_slice(extra);
        data.cli(&args)["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        kinds(&["--kind", "group", "--newest-first"]),
        [
            "group.deleted",
            "group.member_removed",
            "group.member_added",
            "group.created"
        ]
    );
    assert_eq!(
        kinds(&["--kind", "group"]),
        [
            "group.created",
            "group.member_added",
            "group.member_removed",
            "group.deleted"
        ]
    );
    assert_eq!(kinds(&["--kind", "client.secret_rotated"]).len(), 2);
    assert!(kinds(&["--since", "4102444800"]).is_empty(), "nothing after 2100");
    assert_eq!(kinds(&["--subject", &gid]).len(), 4);
}

#[tokio::test]
async fn initial_access_tokens_and_resources_are_the_admins_to_issue() {
    let data = DataDir::new();
    let tenant = tenant_name();
    let other = tenant_name();
    data.cli(&["tenant", "create", &tenant, "--dcr", "token"]);
    data.cli(&["tenant", "create", &other, "--dcr", "token"]);
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let (_, other_admin) = admin_token(&data, &server, &other).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let other_api = Api {
        server: &server,
        token: other_admin,
    };
    let register = |iat: String| {
        let server = &server;
        let tenant = tenant.clone();
        async move {
            Resp::from(
                http()
                    .post(server.url("/oauth2/register"))
                    .header("x-bulwark-tenant", &tenant)
                    .bearer_auth(iat)
                    .json(&json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "none", "scope": "openid"}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };

    // Issued once, listed without the token, used up after its uses, revocable.
    let r = api
        .post(
            "/admin/v1/initial-access-tokens",
            json!({"max_uses": 1, "expires_in": 3600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let iat = r.body["initial_access_token"].as_str().unwrap().to_string();
    let id = r.body["id"].as_str().unwrap().to_string();
    let listed = api.get("/admin/v1/initial-access-tokens").await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str(), "{}", listed.body);
    assert_eq!(listed.body["items"][0]["uses_left"], 1);
    assert!(!listed.body.to_string().contains(&iat));
    assert!(
        !other_api
            .get("/admin/v1/initial-access-tokens")
            .await
            .body
            .to_string()
            .contains(&id)
    );
    assert_eq!(register(iat.clone()).await.status, 201);
    assert_eq!(register(iat).await.status, 401);
    let r = api
        .post("/admin/v1/initial-access-tokens", json!({"max_uses": 0}))
        .await;
    let unlimited = r.body["initial_access_token"].as_str().unwrap().to_string();
    let unlimited_id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(register(unlimited.clone()).await.status, 201);
    other_api
        .delete(&format!("/admin/v1/initial-access-tokens/{unlimited_id}"))
        .await
        .assert_problem(404);
    assert_eq!(
        api.delete(&format!("/admin/v1/initial-access-tokens/{unlimited_id}"))
            .await
            .status,
        204
    );
    assert_eq!(register(unlimited).await.status, 401);
    let r = api
        .post("/admin/v1/initial-access-tokens", json!({"expires_in": 5}))
        .await;
    assert_eq!(r.body["field"], "expires_in", "{}", r.body);
    api.delete("/admin/v1/initial-access-tokens/nope")
        .await
        .assert_problem(404);

    // Resources: add, ask for one, remove; the default audience stays.
    let c = data.client(&tenant, "openid", "client_secret_basic");
    let r = api
        .post(
            "/admin/v1/resources",
            json!({"resource": "https://files.acme.example/mcp"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = token(&server, &c, &[("resource", "https://files.acme.example/mcp")]).await;
    assert_eq!(
        jwt_part(t["access_token"].as_str().unwrap(), 1)["aud"],
        "https://files.acme.example/mcp"
    );
    let list = api.get("/admin/v1/resources").await;
    let default = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["default"] == true)
        .unwrap()["resource"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .delete("/admin/v1/resources?resource=https%3A%2F%2Ffiles.acme.example%2Fmcp")
        .await;
    assert_eq!(r.status, 204);
    let r = post_form(
        &server.url("/oauth2/token"),
        Some((&c.id, &c.secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://files.acme.example/mcp"),
        ],
    )
    .await;
    r.assert_error(400, "invalid_target");
    let r = api
        .delete(&format!(
            "/admin/v1/resources?resource={}",
            url::form_urlencoded::byte_serialize(default.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(r.body["field"], "resource", "{}", r.body);
    api.post("/admin/v1/resources", json!({"resource": "not a uri"}))
        .await
        .assert_problem(400);

    // A name for the consent page: set with the resource, replaced by adding it again with
    // another, kept when added again without one; bounded and printable.
    let named = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "https://files.acme.example/mcp")
            .map(|r| r["name"].clone())
    };
    let r = api
        .post(
            "/admin/v1/resources",
            json!({"resource": "https://files.acme.example/mcp", "name": "Files"}),
        )
        .await;
    assert_eq!(named(&r.body), Some(json!("Files")), "{}", r.body);
    api.post(
        "/admin/v1/resources",
        json!({"resource": "https://files.acme.example/mcp", "name": " Acme Files "}),
    )
    .await;
    let r = api
        .post(
            "/admin/v1/resources",
            json!({"resource": "https://files.acme.example/mcp"}),
        )
        .await;
    assert_eq!(named(&r.body), Some(json!("Acme Files")), "{}", r.body);
    assert_eq!(
        named(&api.get("/admin/v1/resources").await.body),
        Some(json!("Acme Files"))
    );
    for bad in [json!("a".repeat(81)), json!("Acme\u{202e}"), json!(""), json!(7)] {
        let r = api
            .post(
                "/admin/v1/resources",
                json!({"resource": "https://other.acme.example/", "name": bad}),
            )
            .await;
        assert_eq!(r.body["field"], "name", "{bad}: {}", r.body);
    }
    assert_eq!(
        named(&api.get("/admin/v1/resources").await.body),
        Some(json!("Acme Files"))
    );
    // Removing a resource forgets its name.
    api.delete("/admin/v1/resources?resource=https%3A%2F%2Ffiles.acme.example%2Fmcp")
        .await;
    let r = api
        .post(
            "/admin/v1/resources",
            json!({"resource": "https://files.acme.example/mcp"}),
        )
        .await;
    assert_eq!(named(&r.body), Some(Value::Null), "{}", r.body);
}

/// The administrator's two controls over who uses which app: the tenant's app allowlist and an
/// app's user policy (users, groups). A refused user sees our page, never a redirect; a user's
/// existing tokens for the app stop working the moment the administrator says no (and work
/// again if the administrator takes it back).
#[tokio::test]
async fn the_app_allowlist_and_user_policies_decide_who_uses_an_app() {
    let data = DataDir::new();
    let w = world(&data);
    let caller = data.resource_server(&w.tenant, &[]);
    let other_app = code_client(&data, &w.tenant, "Other App", "client_secret_basic", &[]);
    let bob = user(&data, &w.tenant, "bob");
    let server = Server::start(&data);
    let (_, admin) = admin_token(&data, &server, &w.tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let sign_in = |who: &'static str| {
        let server = &server;
        let w = &w;
        async move {
            let b = Browser::new();
            let p = pkce();
            let page = b
                .get(&authorize_url(
                    server,
                    &w.client.id,
                    "openid api:read",
                    &p.challenge,
                    &[],
                ))
                .await;
            let page = b.login(server, &page, who, PASSWORD).await;
            let page = if page.has("name=\"decision\"") {
                b.consent(server, &page, "approve").await
            } else {
                page
            };
            if page.status != 303 {
                return Err(page);
            }
            let code = page.redirect_params()["code"].clone();
            let r = redeem(server, &w.client, &code, &p.verifier).await;
            assert_eq!(r.status, 200, "{}", r.body);
            Ok((
                r.body["access_token"].as_str().unwrap().to_string(),
                r.body["refresh_token"].as_str().unwrap_or_default().to_string(),
            ))
        }
    };
    let (at, _) = sign_in("alice").await.map_err(|p| p.html).unwrap();
    assert!(active(&server, &caller, &at).await);

    // The allowlist on, without the app: alice's token stops working, her sign-in is refused
    // on our page (no redirect), and a code issued before cannot be redeemed.
    let r = api
        .patch("/admin/v1/policy", json!({"app_allowlist": [other_app.id]}), None)
        .await;
    assert_eq!(r.body["app_allowlist"], json!([other_app.id]), "{}", r.body);
    assert!(!active(&server, &caller, &at).await);
    assert_eq!(userinfo(&server, &at).await.status, 401);
    let refused = sign_in("alice").await.unwrap_err();
    assert_eq!(refused.status, 403, "{}", refused.html);
    assert!(
        refused.has("not been approved by your administrator"),
        "{}",
        refused.html
    );
    assert!(refused.header("location").is_none());
    api.patch(
        "/admin/v1/policy",
        json!({"app_allowlist": ["no-such-app"]}),
        None,
    )
    .await
    .assert_problem(400);
    // Listed: back to normal.
    api.patch(
        "/admin/v1/policy",
        json!({"app_allowlist": [other_app.id, w.client.id]}),
        None,
    )
    .await;
    assert!(active(&server, &caller, &at).await);
    api.patch("/admin/v1/policy", json!({"app_allowlist": null}), None)
        .await;

    // A user policy by group: members of "eng" only.
    let g = api.post("/admin/v1/groups", json!({"name": "Engineering"})).await;
    assert_eq!(g.status, 201, "{}", g.body);
    let gid = g.body["group_id"].as_str().unwrap().to_string();
    let r = api
        .call(
            reqwest::Method::PUT,
            &format!("/admin/v1/groups/{gid}/members/{}", w.sub),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api
        .patch(
            &format!("/admin/v1/clients/{}", w.client.id),
            json!({"authorized_users": {"groups": [gid]}}),
            None,
        )
        .await;
    assert_eq!(r.body["authorized_users"]["groups"], json!([gid]), "{}", r.body);
    assert!(active(&server, &caller, &at).await, "alice is in the group");
    let refused = sign_in("bob").await.unwrap_err();
    assert_eq!(refused.status, 403);
    assert!(refused.has("not allowed you to use this app"), "{}", refused.html);
    let (bob_at, _) = {
        // bob is named: in.
        api.patch(
            &format!("/admin/v1/clients/{}", w.client.id),
            json!({"authorized_users": {"groups": [gid], "users": [bob]}}),
            None,
        )
        .await;
        sign_in("bob").await.map_err(|p| p.html).unwrap()
    };
    assert!(active(&server, &caller, &bob_at).await);
    // Out of the group: alice's token stops working; her refresh is refused.
    let (at, rt) = sign_in("alice").await.map_err(|p| p.html).unwrap();
    let r = api
        .delete(&format!("/admin/v1/groups/{gid}/members/{}", w.sub))
        .await;
    assert_eq!(r.status, 204);
    assert!(!active(&server, &caller, &at).await);
    refresh(&server, &w.client, &rt, &[])
        .await
        .assert_error(400, "invalid_grant");
    let members = api.get(&format!("/admin/v1/groups/{gid}/members")).await;
    assert_eq!(members.body["items"], json!([]), "{}", members.body);
    // Validation: only this tenant's users and groups.
    let r = api
        .patch(
            &format!("/admin/v1/clients/{}", w.client.id),
            json!({"authorized_users": {"users": ["nobody"]}}),
            None,
        )
        .await;
    assert_eq!(r.body["field"], "authorized_users", "{}", r.body);
    // Everyone again.
    api.patch(
        &format!("/admin/v1/clients/{}", w.client.id),
        json!({"authorized_users": null}),
        None,
    )
    .await;
    assert!(sign_in("alice").await.is_ok());
    // Deleting the group; another tenant sees none of it.
    let other = tenant_name();
    data.cli(&["tenant", "create", &other]);
    let (_, other_admin) = admin_token(&data, &server, &other).await;
    let other_api = Api {
        server: &server,
        token: other_admin,
    };
    other_api
        .get(&format!("/admin/v1/groups/{gid}"))
        .await
        .assert_problem(404);
    assert_eq!(api.delete(&format!("/admin/v1/groups/{gid}")).await.status, 204);
    api.get(&format!("/admin/v1/groups/{gid}"))
        .await
        .assert_problem(404);
    let kinds = api.get("/admin/v1/audit?kind=group").await;
    assert!(
        kinds.body.to_string().contains("group.member_removed"),
        "{}",
        kinds.body
    );
}

/// The token path reads a tenant's config from the server's cache (issue 12 §2): a change made
/// by another process (the CLI) waits for the bound (production's 60 s here), one made through
/// this server's own admin API applies at once.
#[tokio::test]
async fn a_policy_change_applies_at_once_through_the_admin_api_and_within_the_bound_from_elsewhere() {
    let data = DataDir::new();
    let tenant = format!("t{}", unique().replace('-', ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    let server = Server::start_with(&data, &["--tenant-cache-secs", "60"], &[]);
    let (_, admin) = admin_token(&data, &server, &tenant).await;
    let api = Api {
        server: &server,
        token: admin,
    };
    let bot = data.client(&tenant, "api:read", "client_secret_basic");
    assert_eq!(token(&server, &bot, &[]).await["expires_in"], 3600);
    // Another process changes the tenant: this server's token path still has the old config.
    data.cli(&["tenant", "set-lifetimes", &tenant, "--access-token-ttl", "600"]);
    assert_eq!(
        token(&server, &bot, &[]).await["expires_in"],
        3600,
        "within the bound, the cached policy"
    );
    // Through this server's admin API: at once.
    let r = api
        .patch("/admin/v1/policy", json!({"access_token_ttl": 900}), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(token(&server, &bot, &[]).await["expires_in"], 900);
}
