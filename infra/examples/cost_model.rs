//! The cost model: each operation driven through the real router (`shared::http::app`) over the
//! real DynamoDB and KMS adapters against moto, every AWS call they make counted by SDK
//! interceptors, capacity units computed from the items read and written by DynamoDB's rules,
//! and all of it multiplied by the dated price table `infra/prices.json`. Run by
//! `infra/cost-model.sh` (which starts moto and creates the tables and keys); prints one line
//! per operation, the default stack's client_credentials line first.
//!
//! Capacity units, as DynamoDB bills on-demand tables: every read here is strongly consistent
//! (1 read unit per started 4 KB of the items returned, at least 1); a put, update or delete
//! 1 write unit per started KB of the item written (a delete: of the item deleted, returned
//! with `ALL_OLD`); a transaction 2 write units per started KB of each item it puts, and 2 per
//! delete or condition check (whose items are not in the request: all of ours are under 1 KB).
//! Items are sized as DynamoDB sizes them: attribute names plus values.
//!
//!   cargo run -p bulwark --example cost_model -- ENDPOINT TABLE_PREFIX SIGNING_KEY_ID WRAPPING_KEY_ID

// A measuring tool, not a request path: it stops at the first surprise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use shared::clock::{Clock, SystemClock};
use shared::config::Config;
use shared::keys::kms::KmsSigner;
use shared::secret::Secret;
use shared::service::{App, clients, tenants, users};
use shared::store::dynamodb::{DynamoStore, TableNames};

mod common;
use common::{hidden, pkce, query_param};

/// What one operation cost in AWS calls and units.
#[derive(Default, Debug, Clone)]
struct Meter {
    calls: BTreeMap<String, u64>,
    read_units: f64,
    write_units: f64,
}

#[derive(Default, Debug, Clone)]
struct Shared(Arc<Mutex<Meter>>);

impl Shared {
    fn take(&self) -> Meter {
        trace("---- (the operation ends)");
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn call(&self, name: &str) {
        *self.0.lock().unwrap().calls.entry(name.to_string()).or_default() += 1;
    }
    fn read(&self, units: f64) {
        self.0.lock().unwrap().read_units += units;
    }
    fn write(&self, units: f64) {
        self.0.lock().unwrap().write_units += units;
    }
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value_size(v)).sum::<usize>(),
        AttributeValue::L(l) => 3 + l.iter().map(value_size).sum::<usize>(),
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        _ => 0,
    }
}

fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// `COST_MODEL_TRACE=1`: every DynamoDB call on stderr, with its key's kind and the bytes of
/// the item written or returned (where the units go).
fn trace(what: &str) {
    if std::env::var_os("COST_MODEL_TRACE").is_some() {
        eprintln!("  {what}");
    }
}

/// A key's kind for the trace: its partition key up to the first `#` (`rt#`, `grants#`, ...).
fn key_of(key: Option<&std::collections::HashMap<String, AttributeValue>>) -> String {
    let pk = key
        .and_then(|m| m.get("pk"))
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str);
    format!("{}#", pk.split('#').next().unwrap_or(""))
}

fn units(bytes: usize, per: usize) -> f64 {
    bytes.div_ceil(per).max(1) as f64
}

#[derive(Debug)]
struct DynamoMeter(Shared);

impl Intercept for DynamoMeter {
    fn name(&self) -> &'static str {
        "cost-model-dynamodb"
    }

    fn read_before_serialization(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::*;
        let input = ctx.input();
        if let Some(g) = input.downcast_ref::<get_item::GetItemInput>() {
            self.0.call("dynamodb:GetItem");
            trace(&format!("GetItem {}", key_of(g.key())));
        } else if let Some(p) = input.downcast_ref::<put_item::PutItemInput>() {
            self.0.call("dynamodb:PutItem");
            self.0.write(units(p.item().map_or(0, item_size), 1024));
            trace(&format!(
                "PutItem {} {} bytes",
                key_of(p.item()),
                p.item().map_or(0, item_size)
            ));
        } else if let Some(d) = input.downcast_ref::<delete_item::DeleteItemInput>() {
            self.0.call("dynamodb:DeleteItem");
            trace(&format!("DeleteItem {}", key_of(d.key())));
        } else if input.downcast_ref::<query::QueryInput>().is_some() {
            self.0.call("dynamodb:Query");
        } else if let Some(t) = input.downcast_ref::<transact_write_items::TransactWriteItemsInput>() {
            self.0.call("dynamodb:TransactWriteItems");
            trace(&format!("TransactWriteItems({})", t.transact_items().len()));
            for w in t.transact_items() {
                let u = match w.put() {
                    Some(p) => {
                        trace(&format!(
                            "  put {} {} bytes",
                            key_of(Some(p.item())),
                            item_size(p.item())
                        ));
                        2.0 * units(item_size(p.item()), 1024)
                    }
                    None => {
                        trace("  delete/check");
                        2.0
                    }
                };
                self.0.write(u);
            }
        } else if input.downcast_ref::<update_item::UpdateItemInput>().is_some() {
            self.0.call("dynamodb:UpdateItem");
            self.0.write(1.0);
        } else {
            self.0.call("dynamodb:other");
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::*;
        let Ok(out) = ctx.output_or_error() else {
            return Ok(());
        };
        if let Some(g) = out.downcast_ref::<get_item::GetItemOutput>() {
            self.0.read(units(g.item().map_or(0, item_size), 4096));
            trace(&format!("    -> {} bytes", g.item().map_or(0, item_size)));
        } else if let Some(q) = out.downcast_ref::<query::QueryOutput>() {
            self.0.read(units(q.items().iter().map(item_size).sum(), 4096));
        } else if let Some(d) = out.downcast_ref::<delete_item::DeleteItemOutput>() {
            self.0.write(units(d.attributes().map_or(0, item_size), 1024));
            trace(&format!(
                "    -> deleted {} bytes",
                d.attributes().map_or(0, item_size)
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct KmsMeter(Shared);

impl Intercept for KmsMeter {
    fn name(&self) -> &'static str {
        "cost-model-kms"
    }

    fn read_before_serialization(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_kms::operation::*;
        let input = ctx.input();
        let name = if input.downcast_ref::<sign::SignInput>().is_some() {
            "kms:Sign"
        } else if input.downcast_ref::<decrypt::DecryptInput>().is_some() {
            "kms:Decrypt"
        } else if input
            .downcast_ref::<get_public_key::GetPublicKeyInput>()
            .is_some()
        {
            "kms:GetPublicKey"
        } else {
            "kms:other"
        };
        self.0.call(name);
        Ok(())
    }
}

/// The price table: `infra/prices.json`.
struct Prices {
    as_of: String,
    api_gateway_per_million: f64,
    lambda_requests_per_million: f64,
    lambda_gb_second: f64,
    lambda_billed_ms: f64,
    dynamodb_read_unit_per_million: f64,
    dynamodb_write_unit_per_million: f64,
    kms_symmetric_per_10k: f64,
    kms_asymmetric_per_10k: f64,
}

impl Prices {
    fn load(path: &str) -> Self {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("prices.json"))
            .expect("prices.json is JSON");
        let f = |k: &str| {
            v[k]["usd"]
                .as_f64()
                .unwrap_or_else(|| panic!("prices.json: {k}.usd"))
        };
        Self {
            as_of: v["as_of"].as_str().expect("as_of").to_string(),
            api_gateway_per_million: f("api_gateway_http_per_million_requests"),
            lambda_requests_per_million: f("lambda_per_million_requests"),
            lambda_gb_second: f("lambda_arm64_per_gb_second"),
            lambda_billed_ms: v["lambda_billed_ms_per_request"]["ms"]
                .as_f64()
                .expect("prices.json: lambda_billed_ms_per_request.ms"),
            dynamodb_read_unit_per_million: f("dynamodb_on_demand_per_million_read_units"),
            dynamodb_write_unit_per_million: f("dynamodb_on_demand_per_million_write_units"),
            kms_symmetric_per_10k: f("kms_symmetric_per_10k_requests"),
            kms_asymmetric_per_10k: f("kms_asymmetric_ecc_per_10k_requests"),
        }
    }
}

/// One operation's cost: per million operations, in USD.
struct Line {
    name: String,
    mode: String,
    requests: f64,
    meter: Meter,
    n: f64,
}

impl Line {
    fn per_million(&self, p: &Prices, memory_mb: f64) -> (f64, Vec<(String, f64)>) {
        let per_op = |x: f64| x / self.n;
        let calls = |k: &str| per_op(*self.meter.calls.get(k).unwrap_or(&0) as f64);
        let gb_s = memory_mb / 1024.0 * p.lambda_billed_ms / 1000.0;
        let parts = vec![
            (
                "api_gateway".to_string(),
                self.requests * p.api_gateway_per_million,
            ),
            (
                "lambda".to_string(),
                self.requests * (p.lambda_requests_per_million + gb_s * p.lambda_gb_second * 1e6),
            ),
            (
                "dynamodb".to_string(),
                per_op(self.meter.read_units) * p.dynamodb_read_unit_per_million
                    + per_op(self.meter.write_units) * p.dynamodb_write_unit_per_million,
            ),
            (
                "kms".to_string(),
                calls("kms:Sign") * p.kms_asymmetric_per_10k * 100.0
                    + calls("kms:GetPublicKey") * p.kms_asymmetric_per_10k * 100.0
                    + calls("kms:Decrypt") * p.kms_symmetric_per_10k * 100.0,
            ),
        ];
        (parts.iter().map(|(_, v)| v).sum(), parts)
    }
}

/// An in-process HTTP client of the router, with a cookie jar.
struct Http {
    router: axum::Router,
    cookies: BTreeMap<String, String>,
    /// A `DPoP` header for the next request only.
    dpop: Option<String>,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Http {
    async fn send(
        &mut self,
        method: &str,
        uri: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some((id, secret)) = basic {
            use base64::Engine;
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let raw = format!("{}:{}", enc(id), enc(secret));
            b = b.header(
                "authorization",
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)),
            );
        }
        if !self.cookies.is_empty() {
            let c: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            b = b.header("cookie", c.join("; "));
        }
        if let Some(proof) = self.dpop.take() {
            b = b.header("dpop", proof);
        }
        let body = if method == "POST" {
            b = b.header("content-type", "application/x-www-form-urlencoded");
            Body::from(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
        } else {
            Body::empty()
        };
        let resp = self.router.clone().oneshot(b.body(body).unwrap()).await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            if let Some((kv, _)) = c.to_str().unwrap_or("").split_once(';')
                && let Some((k, v)) = kv.split_once('=')
            {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        Answer {
            status,
            location,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn json(&mut self, uri: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Value {
        let a = self.send("POST", uri, basic, form).await;
        assert!(a.status.is_success(), "{uri}: {} {}", a.status, a.body);
        serde_json::from_str(&a.body).expect("JSON")
    }
}

const CALLBACK: &str = "https://app.example/callback";
/// The stack name in the wrapped key's encryption context.
const STACK: &str = "cost-model";
const PASSWORD: &str = "correct horse battery staple";

/// The authorization request's parameters.
fn request<'a>(client_id: &'a str, scope: &'a str, challenge: &'a str) -> [(&'a str, &'a str); 7] {
    [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("scope", scope),
        ("state", "s"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// Authorize, sign in and (the first time) consent; the code.
async fn code(http: &mut Http, client_id: &str, scope: &str, challenge: &str) -> (String, u32) {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(request(client_id, scope, challenge))
        .finish();
    sign_in(http, &q).await
}

/// The authorization endpoint with query `q`, then sign in and (the first time) consent; the
/// code and the number of requests.
async fn sign_in(http: &mut Http, q: &str) -> (String, u32) {
    let login = http
        .send("GET", &format!("/oauth2/authorize?{q}"), None, &[])
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let mut requests = 1;
    let mut page = http
        .send(
            "POST",
            "/oauth2/authorize",
            None,
            &[
                ("action", "login"),
                ("interaction", &hidden(&login.body, "interaction")),
                ("csrf", &hidden(&login.body, "csrf")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    requests += 1;
    if page.location.is_none() {
        page = http
            .send(
                "POST",
                "/oauth2/authorize",
                None,
                &[
                    ("action", "consent"),
                    ("interaction", &hidden(&page.body, "interaction")),
                    ("csrf", &hidden(&page.body, "csrf")),
                    ("decision", "approve"),
                ],
            )
            .await;
        requests += 1;
    }
    let to = page
        .location
        .unwrap_or_else(|| panic!("no redirect: {}", page.body));
    (query_param(&to, "code"), requests)
}

/// Every operation against `app` (signing as `mode`), `n` times each, in a tenant of its own.
async fn measure(app: Arc<App>, meter: &Shared, mode: &str, tenant: &str, n: u32) -> Vec<Line> {
    // The tenant, its clients and a user (not counted).
    let t = tenant;
    let tenant_id = tenants::create(&app, t, shared::domain::tenant::DcrPolicy::Open, None)
        .await
        .expect("tenant")
        .id;
    tenants::add_scope(&app, &tenant_id, "api:read", "Read", None)
        .await
        .expect("scope");
    // A machine client that is also the resource server of the tenant's default audience (it
    // introspects the user's tokens below).
    let m2m = clients::create_by_admin(
        &app,
        &tenant_id,
        &json!({"client_name": "m2m", "grant_types": ["client_credentials"], "scope": "api:read"}),
        clients::AdminFields {
            resource_server_for: vec![format!("urn:bulwark:tenant:{t}")],
            ..Default::default()
        },
    )
    .await
    .expect("client");
    let web = clients::create_by_admin(
        &app,
        &tenant_id,
        &json!({"client_name": "web", "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [CALLBACK], "scope": "openid api:read offline_access agent:act"}),
        Default::default(),
    )
    .await
    .expect("client");
    let device = clients::create_by_admin(
        &app,
        &tenant_id,
        &json!({"client_name": "cli", "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
                "token_endpoint_auth_method": "none", "scope": "openid api:read"}),
        Default::default(),
    )
    .await
    .expect("device client");
    let device_id = device.client.client_id.clone();
    let agent = clients::create_by_admin(
        &app,
        &tenant_id,
        &json!({"client_name": "agent", "grant_types": ["urn:ietf:params:oauth:grant-type:token-exchange"],
                "scope": "api:read"}),
        clients::AdminFields {
            agent_of: Some(&web.client.client_id),
            ..Default::default()
        },
    )
    .await
    .expect("agent");
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
    let secret = |r: &clients::Registered| r.secret.as_ref().unwrap().expose().to_string();
    let (m2m_id, m2m_secret) = (m2m.client.client_id.clone(), secret(&m2m));
    let (web_id, web_secret) = (web.client.client_id.clone(), secret(&web));
    let (agent_id, agent_secret) = (agent.client.client_id.clone(), secret(&agent));
    let mut http = Http {
        router: shared::http::app(app.clone()),
        cookies: BTreeMap::new(),
        dpop: None,
    };
    // Warm each path once (caches of keys and the like, as a warm Lambda instance has them).
    let cc = [("grant_type", "client_credentials")];
    http.json("/oauth2/token", Some((&m2m_id, &m2m_secret)), &cc)
        .await;
    let (verifier, challenge) = pkce();
    let (first_code, _) = code(
        &mut http,
        &web_id,
        "openid api:read offline_access agent:act",
        &challenge,
    )
    .await;
    let first = http
        .json(
            "/oauth2/token",
            Some((&web_id, &web_secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &first_code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    let mut refresh = first["refresh_token"].as_str().unwrap().to_string();
    let user_at = first["access_token"].as_str().unwrap().to_string();
    meter.take();

    let mut lines: Vec<Line> = Vec::new();
    let mode = mode.to_string();
    // client_credentials
    for _ in 0..n {
        http.json("/oauth2/token", Some((&m2m_id, &m2m_secret)), &cc)
            .await;
    }
    lines.push(Line {
        name: "client_credentials".into(),
        mode: mode.clone(),
        requests: 1.0,
        meter: meter.take(),
        n: n.into(),
    });
    // client_credentials with a DPoP proof (a token bound to the client's key): the proof's jti
    // is one conditional put more.
    let key = common::DpopKey::new();
    let token_url = app.config.endpoint("/oauth2/token");
    for _ in 0..n {
        http.dpop = Some(key.proof(&token_url));
        let r = http
            .json("/oauth2/token", Some((&m2m_id, &m2m_secret)), &cc)
            .await;
        assert_eq!(r["token_type"], "DPoP", "{r}");
    }
    lines.push(Line {
        name: "client_credentials, DPoP-bound".into(),
        mode: mode.clone(),
        requests: 1.0,
        meter: meter.take(),
        n: n.into(),
    });
    // The code flow of a returning user (signed in again, consent remembered) and the redemption.
    let mut requests = 0;
    for _ in 0..n {
        http.cookies.clear();
        let (verifier, challenge) = pkce();
        let (c, r) = code(
            &mut http,
            &web_id,
            "openid api:read offline_access agent:act",
            &challenge,
        )
        .await;
        http.json(
            "/oauth2/token",
            Some((&web_id, &web_secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &c),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        requests += r + 1;
    }
    lines.push(Line {
        name: "authorization_code (sign-in, code, redemption)".into(),
        mode: mode.clone(),
        requests: f64::from(requests) / f64::from(n),
        meter: meter.take(),
        n: n.into(),
    });
    // The same flow with a pushed authorization request (RFC 9126): the push, the sign-in by
    // request_uri, the redemption.
    let mut requests = 0;
    for _ in 0..n {
        http.cookies.clear();
        let (verifier, challenge) = pkce();
        let scope = "openid api:read offline_access agent:act";
        let pushed = http
            .json(
                "/oauth2/par",
                Some((&web_id, &web_secret)),
                &request(&web_id, scope, &challenge),
            )
            .await;
        let request_uri = pushed["request_uri"].as_str().expect("request_uri");
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("client_id", web_id.as_str()), ("request_uri", request_uri)])
            .finish();
        let (c, r) = sign_in(&mut http, &q).await;
        http.json(
            "/oauth2/token",
            Some((&web_id, &web_secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &c),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        requests += 1 + r + 1;
    }
    lines.push(Line {
        name: "PAR + code flow (push, sign-in, redemption)".into(),
        mode: mode.clone(),
        requests: f64::from(requests) / f64::from(n),
        meter: meter.take(),
        n: n.into(),
    });
    // The device authorization grant (RFC 8628): the device's request, the verification page
    // (the page, the sign-in, the code, the approval), one poll before the approval and the
    // redemption.
    let mut requests = 0;
    for _ in 0..n {
        http.cookies.clear();
        let d = http
            .json(
                "/oauth2/device_authorization",
                None,
                &[("client_id", &device_id), ("scope", "openid api:read")],
            )
            .await;
        let (device_code, user_code) = (
            d["device_code"].as_str().expect("device_code").to_string(),
            d["user_code"].as_str().expect("user_code").to_string(),
        );
        let page = http.send("GET", &format!("/device?tenant={t}"), None, &[]).await;
        let csrf = hidden(&page.body, "csrf");
        let poll = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code.as_str()),
            ("client_id", device_id.as_str()),
        ];
        let pending = http.send("POST", "/oauth2/token", None, &poll).await;
        assert_eq!(pending.status, StatusCode::BAD_REQUEST, "{}", pending.body);
        let form = |action: &'static str| {
            [
                ("action", action),
                ("tenant", t),
                ("csrf", csrf.as_str()),
                ("user_code", user_code.as_str()),
            ]
        };
        // Signed out, the page is the sign-in form: sign in first, then the code.
        let mut fields = form("login").to_vec();
        fields.extend([("username", "alice"), ("password", PASSWORD)]);
        let code = http.send("POST", "/device", None, &fields).await;
        assert_eq!(code.status, StatusCode::OK, "{}", code.body);
        let confirm = http.send("POST", "/device", None, &form("code")).await;
        assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
        let epoch = hidden(&confirm.body, "epoch");
        let mut fields = form("decide").to_vec();
        fields.extend([("epoch", epoch.as_str()), ("decision", "approve")]);
        let done = http.send("POST", "/device", None, &fields).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        http.json("/oauth2/token", None, &poll).await;
        requests += 7;
    }
    lines.push(Line {
        name: "device flow (authorize, approve, poll, redemption)".into(),
        mode: mode.clone(),
        requests: f64::from(requests) / f64::from(n),
        meter: meter.take(),
        n: n.into(),
    });
    // refresh_token rotation
    for _ in 0..n {
        let r = http
            .json(
                "/oauth2/token",
                Some((&web_id, &web_secret)),
                &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            )
            .await;
        refresh = r["refresh_token"].as_str().unwrap().to_string();
    }
    lines.push(Line {
        name: "refresh_token".into(),
        mode: mode.clone(),
        requests: 1.0,
        meter: meter.take(),
        n: n.into(),
    });
    // introspection of a user's access token by a confidential client
    for _ in 0..n {
        let r = http
            .json(
                "/oauth2/introspect",
                Some((&m2m_id, &m2m_secret)),
                &[("token", &user_at)],
            )
            .await;
        assert_eq!(r["active"], true, "{r}");
    }
    lines.push(Line {
        name: "introspection".into(),
        mode: mode.clone(),
        requests: 1.0,
        meter: meter.take(),
        n: n.into(),
    });
    // token exchange: the app's agent acting for alice
    for _ in 0..n {
        http.json(
            "/oauth2/token",
            Some((&agent_id, &agent_secret)),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("subject_token", &user_at),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ],
        )
        .await;
    }
    lines.push(Line {
        name: "token_exchange".into(),
        mode: mode.clone(),
        requests: 1.0,
        meter: meter.take(),
        n: n.into(),
    });
    // DCR, open (a public client): the first of the minute's 30 allowed
    for i in 0..n.min(20) {
        let body = json!({"client_name": format!("mcp {i}"), "redirect_uris": [CALLBACK],
                          "token_endpoint_auth_method": "none"});
        let req = Request::builder()
            .method("POST")
            .uri("/oauth2/register")
            .header("content-type", "application/json")
            .header("x-bulwark-tenant", t)
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = http.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    lines.push(Line {
        name: "dcr (open, public client)".into(),
        mode: mode.clone(),
        requests: 1.0,
        meter: meter.take(),
        n: n.min(20).into(),
    });

    lines
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, prefix, sign_key, wrapping_key] = &args[..] else {
        panic!("usage: cost_model ENDPOINT TABLE_PREFIX SIGNING_KEY_ID WRAPPING_KEY_ID");
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let prices = Prices::load(root.join("infra/prices.json").to_str().unwrap());
    let template = std::fs::read_to_string(root.join("template.yaml")).expect("template.yaml");
    let memory_mb: f64 = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("MemorySize:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("MemorySize in template.yaml Globals");

    let meter = Shared::default();
    let sdk = shared::aws::sdk_config(Some(endpoint), Some("us-east-1")).await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(DynamoMeter(meter.clone()))
            .build(),
    );
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&sdk)
            .interceptor(KmsMeter(meter.clone()))
            .build(),
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store: Arc<dyn shared::store::Kv> = Arc::new(DynamoStore::new(
        ddb,
        TableNames::with_prefix(prefix),
        clock.clone(),
    ));
    let config = || Config::new("https://auth.example.com").unwrap();
    let retention = config().max_access_token_ttl;
    // The default stack: a key generated by `keys rotate`, wrapped under KMS, decrypted once.
    let wrapper = Arc::new(shared::keys::kms::KmsKeyWrapper::new(
        kms.clone(),
        wrapping_key.clone(),
    ));
    let repo = shared::store::repo::Repo::new(store.clone(), clock.clone());
    shared::keys::wrapped::rotate(&repo, wrapper.as_ref(), STACK, retention, repo.now())
        .await
        .expect("keys rotate");
    let wrapped = App::new(
        config(),
        store.clone(),
        Arc::new(shared::keys::wrapped::WrappedSigner::new(
            Arc::new(repo),
            STACK,
            Some(wrapper as Arc<dyn shared::keys::wrapped::KeyWrapper>),
            clock.clone(),
            retention,
        )),
        clock.clone(),
    );
    // `SigningMode=kms`: every JWT signed by KMS.
    let signer = KmsSigner::new(kms, vec![sign_key.clone()]).expect("signer");
    let kms_app = App::new(config(), store, Arc::new(signer), clock);
    let n: u32 = std::env::var("COST_MODEL_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let w = measure(wrapped, &meter, "kms-wrapped", "wrapped", n).await;
    let k = measure(kms_app, &meter, "kms", "kms", n).await;
    // The default stack's client_credentials line first, then kms mode's; then the rest.
    let mut lines = vec![&w[0], &k[0]];
    lines.extend(w[1..].iter());
    lines.extend(k[1..].iter());

    println!(
        "cost per million operations, USD (prices as of {}; Lambda {} MB arm64, {} ms billed per request)",
        prices.as_of, memory_mb, prices.lambda_billed_ms
    );
    for l in lines {
        let (total, parts) = l.per_million(&prices, memory_mb);
        let calls: Vec<String> = l
            .meter
            .calls
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / l.n))
            .collect();
        println!(
            "{:<48} {:<12} ${total:.2} per million   [{}; RRU {:.2} WRU {:.2}; {}]",
            l.name,
            l.mode,
            parts
                .iter()
                .map(|(k, v)| format!("{k} ${v:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            l.meter.read_units / l.n,
            l.meter.write_units / l.n,
            calls.join(", ")
        );
    }
}
