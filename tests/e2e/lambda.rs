//! Every function binary, proven as a Lambda function: each is started against a small Lambda
//! Runtime API emulator (`AWS_LAMBDA_RUNTIME_API`; `invocation/next`, `/response`, `/error`,
//! `init/error`) fed with API Gateway HTTP API payload-format-2.0 events, with moto (started by
//! the test script) as DynamoDB and KMS. Each binary's init time and stripped size are written
//! to `test-output/lambda-binaries.txt`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};

use crate::support::*;

#[derive(Default)]
struct Emulator {
    queue: Mutex<VecDeque<(String, Value)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    ready: Notify,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
}

async fn next(State(e): State<Arc<Emulator>>) -> Response {
    e.first_poll.lock().unwrap().get_or_insert_with(Instant::now);
    loop {
        let notified = e.ready.notified();
        if let Some((id, event)) = e.queue.lock().unwrap().pop_front() {
            let mut h = HeaderMap::new();
            h.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).unwrap(),
            );
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            h.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_str(&deadline.to_string()).unwrap(),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:test"),
            );
            h.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            return (StatusCode::OK, h, axum::Json(event)).into_response();
        }
        notified.await;
    }
}

async fn respond(
    State(e): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(tx) = e.waiting.lock().unwrap().remove(&id) {
        let _ = tx.send(v);
    }
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(e): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(tx) = e.waiting.lock().unwrap().remove(&id) {
        let _ = tx.send(json!({"invocation_error": v}));
    }
    StatusCode::ACCEPTED
}

async fn init_error(State(e): State<Arc<Emulator>>, body: axum::body::Bytes) -> StatusCode {
    *e.init_error.lock().unwrap() = Some(serde_json::from_slice(&body).unwrap_or(Value::Null));
    StatusCode::ACCEPTED
}

/// One function binary running against its own runtime API.
struct Function {
    name: &'static str,
    emulator: Arc<Emulator>,
    child: Child,
    /// What the function wrote to stdout (its logs and EMF lines), line by line.
    stdout: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

fn binary(name: &str) -> PathBuf {
    // target/debug/deps/e2e-* -> target/debug/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (infra/test.sh does)",
        path.display()
    );
    path
}

fn moto() -> String {
    std::env::var("BULWARK_TEST_AWS_ENDPOINT")
        .expect("BULWARK_TEST_AWS_ENDPOINT is not set: run `bash infra/test.sh`, which starts moto")
}

impl Function {
    async fn start(name: &'static str, env: &[(&str, String)]) -> Self {
        let emulator = Arc::new(Emulator::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emulator.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let started = Instant::now();
        let mut child = Command::new(binary(name))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", moto())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (out, lines) = (child.stdout.take().unwrap(), stdout.clone());
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        Self {
            name,
            emulator,
            child,
            stdout,
            server,
            started,
        }
    }

    /// The EMF documents the function wrote so far (stdout lines with an `_aws` member).
    fn emf(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("_aws").is_some())
            .collect()
    }

    /// The sum of `metric` over the EMF documents whose fields match `dims`, once the function
    /// has written at least `at_least` of it (stdout is read by a thread: a line written before
    /// the response may arrive just after it); what it has after 10 s otherwise.
    async fn emf_sum(&self, metric: &str, dims: &[(&str, &str)], at_least: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sum = emf_sum(&self.emf(), metric, dims);
            if sum >= at_least || Instant::now() > deadline {
                return sum;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Time from process start to its first `invocation/next` (its cold start).
    async fn init_time(&self) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(t) = *self.emulator.first_poll.lock().unwrap() {
                return t - self.started;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{} never polled for an invocation", self.name);
    }

    /// Invoke with an API Gateway HTTP API (payload 2.0) request; the proxy response. `path` is
    /// what the browser sent; the event carries it as API Gateway's HTTP API does: `rawPath`
    /// percent-decoded (the API matches its routes on the decoded path too), `rawQueryString`
    /// as sent. (Captured from live HTTP APIs: a request for `/a%2Fb` arrives with
    /// `"rawPath": "/a/b"`; REST APIs, function URLs and ALBs keep the encoding.)
    async fn invoke(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
        let id = unique();
        let (sent_path, query) = path.split_once('?').unwrap_or((path, ""));
        let raw_path = percent_decoded(sent_path);
        let raw_path = raw_path.as_str();
        // API Gateway 2.0 moves the Cookie header into a `cookies` array.
        let cookies: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split("; "))
            .collect();
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("cookie")).map(|(k, v)| (k.to_lowercase(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": "api.example.test", "domainPrefix": "api",
                "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "e2e"},
                "requestId": id, "routeKey": "$default", "stage": "$default",
                "time": "22/Nov/2026:12:00:00 +0000", "timeEpoch": 1795348800000u64
            },
            "body": body,
            "isBase64Encoded": false
        });
        if !cookies.is_empty() {
            event["cookies"] = json!(cookies);
        }
        let (tx, rx) = oneshot::channel();
        self.emulator.waiting.lock().unwrap().insert(id.clone(), tx);
        self.emulator.queue.lock().unwrap().push_back((id, event));
        self.emulator.ready.notify_waiters();
        self.emulator.ready.notify_one();
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{} did not answer", self.name))
            .unwrap()
    }
}

impl Function {
    /// Invoke with any event (an EventBridge scheduled event); the function's answer.
    async fn invoke_event(&self, event: Value) -> Value {
        let id = unique();
        let (tx, rx) = oneshot::channel();
        self.emulator.waiting.lock().unwrap().insert(id.clone(), tx);
        self.emulator.queue.lock().unwrap().push_back((id, event));
        self.emulator.ready.notify_waiters();
        self.emulator.ready.notify_one();
        tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{} did not answer", self.name))
            .unwrap()
    }
}

/// The sum of `metric` in `docs` whose fields match `dims` (a value array counts its values'
/// sum), checking each document against the EMF specification as it goes: every metric it
/// declares has a value, every dimension it names is a string field, a namespace and a
/// millisecond timestamp are set, and the invocation's request id is there.
fn emf_sum(docs: &[Value], metric: &str, dims: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for d in docs {
        let meta = &d["_aws"];
        assert!(meta["Timestamp"].as_i64().unwrap() > 1_600_000_000_000, "{d}");
        let directives = meta["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "{d}");
        let directive = &directives[0];
        assert!(
            directive["Namespace"].as_str().is_some_and(|n| !n.is_empty()),
            "{d}"
        );
        for set in directive["Dimensions"].as_array().unwrap() {
            for key in set.as_array().unwrap() {
                assert!(
                    d[key.as_str().unwrap()].is_string(),
                    "dimension {key} has no value: {d}"
                );
            }
        }
        let mut declared = false;
        for m in directive["Metrics"].as_array().unwrap() {
            let name = m["Name"].as_str().unwrap();
            assert!(
                d[name].is_number() || d[name].is_array(),
                "{name} has no value: {d}"
            );
            assert!(
                matches!(m["Unit"].as_str(), Some("Count" | "Milliseconds")),
                "{d}"
            );
            declared |= name == metric;
        }
        assert!(d["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{d}");
        if !declared || !dims.iter().all(|(k, v)| d[*k] == *v) {
            continue;
        }
        sum += match &d[metric] {
            Value::Array(values) => values.iter().map(|v| v.as_f64().unwrap()).sum(),
            v => v.as_f64().unwrap(),
        };
    }
    sum
}

/// How many samples of `metric` (values of a latency array) `docs` hold.
fn emf_samples(docs: &[Value], metric: &str) -> usize {
    docs.iter()
        .map(|d| match &d[metric] {
            Value::Array(values) => values.len(),
            Value::Number(_) => 1,
            _ => 0,
        })
        .sum()
}

/// `path` with every `%XX` decoded, as API Gateway's HTTP API hands it to a function.
fn percent_decoded(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON body of a proxy response.
/// An `Authorization: Basic` header value for a client id and secret.
fn basic_auth(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn body(resp: &Value) -> Value {
    serde_json::from_str(&html(resp)).unwrap_or(Value::Null)
}

/// A KMS key made by `infra/local_aws.py CMD` (`key`, `wrapping-key`) like the template's.
fn local_aws_key(cmd: &str) -> String {
    let out = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("infra/local_aws.py"))
        .args([cmd, &moto(), "template.yaml"])
        .current_dir(repo())
        .output()
        .expect("run infra/local_aws.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A proxy in front of moto's KMS that counts the calls passing through it by operation
/// (`X-Amz-Target: TrentService.Decrypt` → `Decrypt`): what a function process really sends to
/// KMS. While `deny` is set it answers every call with `AccessDeniedException` instead.
#[derive(Default)]
struct KmsProxy {
    calls: Mutex<HashMap<String, u64>>,
    deny: std::sync::atomic::AtomicBool,
}

impl KmsProxy {
    fn count(&self, op: &str) -> u64 {
        self.calls.lock().unwrap().get(op).copied().unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.calls.lock().unwrap().values().sum()
    }
}

async fn kms_proxy() -> (String, Arc<KmsProxy>, tokio::task::JoinHandle<()>) {
    async fn forward(
        State(p): State<Arc<KmsProxy>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> Response {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let op = target.rsplit('.').next().unwrap_or("").to_string();
        *p.calls.lock().unwrap().entry(op).or_default() += 1;
        if p.deny.load(std::sync::atomic::Ordering::SeqCst) {
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.1")],
                r#"{"__type":"AccessDeniedException","message":"denied by the test"}"#,
            )
                .into_response();
        }
        let mut req = http().post(moto()).body(body.to_vec());
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                req = req.header(k, v);
            }
        }
        let r = req.send().await.expect("moto answers");
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/x-amz-json-1.1")
            .to_string();
        let bytes = r.bytes().await.unwrap();
        (status, [("content-type", ct)], bytes).into_response()
    }
    let proxy = Arc::new(KmsProxy::default());
    let app = Router::new().route("/", post(forward)).with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, proxy, task)
}

/// The token function in each `SigningMode`, its KMS traffic counted on the wire: with `kms`
/// every token is one `Sign`; with `kms-wrapped` (the default) N tokens make no `Sign` and one
/// `Decrypt` in the process's life, and the functions that verify make no KMS call at all. In
/// both, every token verifies against the JWKS function's output and introspects as active.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_function_signs_in_each_mode_and_kms_wrapped_makes_no_kms_call_per_token() {
    const N: u64 = 12;
    for mode in ["kms", "kms-wrapped"] {
        let data = DataDir::new_dynamodb_with(mode);
        let tenant = format!("m{}", unique().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
        let c = data.tenant_with_client(&tenant);
        let (proxy_url, kms, _proxy) = kms_proxy().await;
        let common = [
            ("BULWARK_ISSUER", "https://auth.example.test".to_string()),
            ("AWS_ENDPOINT_URL_KMS", proxy_url),
        ];
        let mut env = data.lambda_env();
        env.extend(common.iter().cloned());
        let mut signing_env = data.lambda_env_signing();
        signing_env.extend(common.iter().cloned());
        let token = Function::start("token", &signing_env).await;
        token.init_time().await;
        let jwks_fn = Function::start("jwks", &env).await;
        let introspect = Function::start("introspect", &env).await;
        let basic = basic_auth(&c.id, &c.secret);
        let form = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", basic.as_str()),
        ];
        let mut tokens = Vec::new();
        for _ in 0..N {
            let t = token
                .invoke(
                    "POST",
                    "/oauth2/token",
                    &form,
                    Some("grant_type=client_credentials"),
                )
                .await;
            assert_eq!(t["statusCode"], 200, "{mode}: {t}");
            tokens.push(body(&t)["access_token"].as_str().unwrap().to_string());
        }
        let j = jwks_fn.invoke("GET", "/.well-known/jwks.json", &[], None).await;
        assert_eq!(j["statusCode"], 200, "{mode}: {j}");
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(body(&j)).unwrap();
        for at in &tokens {
            use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
            crate::support::jwt();
            let kid = jwt_part(at, 0)["kid"].as_str().unwrap().to_string();
            let key = DecodingKey::from_jwk(set.find(&kid).expect("the kid is published")).unwrap();
            let mut v = Validation::new(Algorithm::ES256);
            v.set_audience(&[format!("urn:bulwark:tenant:{tenant}")]);
            v.set_issuer(&["https://auth.example.test"]);
            decode::<Value>(at, &key, &v).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        let i = introspect
            .invoke(
                "POST",
                "/oauth2/introspect",
                &form,
                Some(&format!("token={}", tokens[0])),
            )
            .await;
        assert_eq!(body(&i)["active"], true, "{mode}: {i}");
        match mode {
            "kms" => assert_eq!(kms.count("Sign"), N, "one KMS Sign per token"),
            _ => {
                assert_eq!(kms.count("Sign"), 0, "no KMS Sign in kms-wrapped mode");
                assert_eq!(
                    kms.count("Decrypt"),
                    1,
                    "one Decrypt per process, at its cold start"
                );
                assert_eq!(
                    kms.total(),
                    1,
                    "nothing else reaches KMS: {:?}",
                    kms.calls.lock().unwrap()
                );
            }
        }
    }
}

/// The metrics a flow writes through the token and introspection functions, read back from
/// their stdout as CloudWatch would: N tokens issued is N `TokensIssued` for the grant, a wrong
/// secret is one `ClientAuthFailures`, an unknown grant type one `TokensRefused` under
/// `unsupported`, one cold start per function, the cold start's one Decrypt timed (and no other
/// KMS call), every store call timed; in the stack's namespace, stack-wide (no tenant unless
/// turned on), and never a client id or a secret.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_functions_write_emf_metrics_that_count_the_flow() {
    const N: usize = 4;
    let data = DataDir::new_dynamodb_with("kms-wrapped");
    let tenant = format!("e{}", unique().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    let c = data.tenant_with_client(&tenant);
    let metrics_env = [
        ("BULWARK_ISSUER", "https://auth.example.test".to_string()),
        ("BULWARK_METRICS_NAMESPACE", "Bulwark/e2e".to_string()),
    ];
    let mut signing_env = data.lambda_env_signing();
    signing_env.extend(metrics_env.iter().cloned());
    let mut env = data.lambda_env();
    env.extend(metrics_env.iter().cloned());
    let token = Function::start("token", &signing_env).await;
    let introspect = Function::start("introspect", &env).await;
    let basic = basic_auth(&c.id, &c.secret);
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", basic.as_str()),
    ];
    let mut last = String::new();
    for _ in 0..N {
        let t = token
            .invoke(
                "POST",
                "/oauth2/token",
                &form,
                Some("grant_type=client_credentials"),
            )
            .await;
        assert_eq!(t["statusCode"], 200, "{t}");
        last = body(&t)["access_token"].as_str().unwrap().to_string();
    }
    let wrong = basic_auth(&c.id, "not-the-secret");
    let t = token
        .invoke(
            "POST",
            "/oauth2/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", wrong.as_str()),
            ],
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(t["statusCode"], 401, "{t}");
    let t = token
        .invoke(
            "POST",
            "/oauth2/token",
            &form,
            Some("grant_type=urn:example:nonsense"),
        )
        .await;
    assert_eq!(t["statusCode"], 400, "{t}");
    let i = introspect
        .invoke(
            "POST",
            "/oauth2/introspect",
            &form,
            Some(&format!("token={last}")),
        )
        .await;
    assert_eq!(body(&i)["active"], true, "{i}");

    let cc = [("Grant", "client_credentials")];
    assert_eq!(token.emf_sum("TokensIssued", &cc, N as f64).await, N as f64);
    assert_eq!(token.emf_sum("ClientAuthFailures", &[], 1.0).await, 1.0);
    assert_eq!(
        token
            .emf_sum("TokensRefused", &[("Grant", "unsupported")], 1.0)
            .await,
        1.0
    );
    assert_eq!(
        token.emf_sum("ColdStarts", &[("Function", "token")], 1.0).await,
        1.0
    );
    assert_eq!(
        introspect
            .emf_sum("ColdStarts", &[("Function", "introspect")], 1.0)
            .await,
        1.0
    );
    // Let the last lines arrive, then count everything once more: nothing beyond the flow.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let docs = token.emf();
    assert_eq!(emf_sum(&docs, "TokensIssued", &[]), N as f64, "{docs:?}");
    assert_eq!(emf_sum(&docs, "TokensRefused", &[]), 1.0, "{docs:?}");
    assert_eq!(emf_sum(&docs, "ColdStarts", &[]), 1.0, "{docs:?}");
    assert_eq!(
        emf_samples(&docs, "KmsLatency"),
        1,
        "the cold start's Decrypt: {docs:?}"
    );
    assert_eq!(emf_sum(&docs, "KmsErrors", &[]), 0.0, "{docs:?}");
    assert_eq!(emf_sum(&docs, "ServerErrors", &[]), 0.0, "{docs:?}");
    assert!(
        emf_samples(&docs, "StoreLatency") >= N,
        "every store call timed: {docs:?}"
    );
    assert_eq!(emf_sum(&docs, "StoreErrors", &[]), 0.0, "{docs:?}");
    for d in docs.iter().chain(introspect.emf().iter()) {
        assert_eq!(
            d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Bulwark/e2e",
            "{d}"
        );
        assert!(
            d.get("Tenant").is_none(),
            "no tenant dimension unless turned on: {d}"
        );
        let line = d.to_string();
        for secret in [c.id.as_str(), c.secret.as_str(), last.as_str(), tenant.as_str()] {
            assert!(!line.contains(secret), "{secret} in a metric line: {line}");
        }
    }
}

/// A kms stack switched to kms-wrapped as README says: the first wrapped key is made while KMS
/// still signs, and the kms-mode functions publish it at once; after the switch, with the former
/// key in `PreviousSigningKeyArn`, new tokens are signed in process (no `Sign`), both keys are
/// in the JWKS, and a token KMS signed before the switch still verifies and introspects as
/// active — in the new functions and in those still running the kms configuration, in either
/// order of update. A function not told the former key (a switch without the bridge) finds that
/// token inactive: the bridge is what keeps it.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switching_from_kms_to_kms_wrapped_keeps_the_former_keys_tokens_verifying() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let mut data = DataDir::new_dynamodb_with("kms");
    let tenant = format!("s{}", unique().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    let c = data.tenant_with_client(&tenant);
    let issuer = ("BULWARK_ISSUER", "https://auth.example.test".to_string());
    let basic = basic_auth(&c.id, &c.secret);
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", basic.as_str()),
    ];
    let token_of = |r: Value| {
        assert_eq!(r["statusCode"], 200, "{r}");
        body(&r)["access_token"].as_str().unwrap().to_string()
    };
    let mut env = data.lambda_env_signing();
    env.push(issuer.clone());
    let kms_token_fn = Function::start("token", &env).await;
    let cc = Some("grant_type=client_credentials");
    let before = token_of(kms_token_fn.invoke("POST", "/oauth2/token", &form, cc).await);
    let former_kid = jwt_part(&before, 0)["kid"].as_str().unwrap().to_string();

    let kms_env = {
        let mut env = data.lambda_env();
        env.push(issuer.clone());
        env
    };
    let (_former_key, new_kid) = data.switch_to_kms_wrapped();
    assert_ne!(new_kid, former_kid);
    // Until the redeploy, KMS still signs: making the wrapped key changed nothing yet.
    let still = token_of(kms_token_fn.invoke("POST", "/oauth2/token", &form, cc).await);
    assert_eq!(jwt_part(&still, 0)["kid"], former_kid.as_str());
    drop(kms_token_fn);

    let (proxy_url, kms, _proxy) = kms_proxy().await;
    let with = |mut env: Vec<(&'static str, String)>| {
        env.push(issuer.clone());
        env.push(("AWS_ENDPOINT_URL_KMS", proxy_url.clone()));
        env
    };
    let token_fn = Function::start("token", &with(data.lambda_env_signing())).await;
    let jwks_fn = Function::start("jwks", &with(data.lambda_env())).await;
    let introspect = Function::start("introspect", &with(data.lambda_env())).await;
    let after = token_of(token_fn.invoke("POST", "/oauth2/token", &form, cc).await);
    assert_eq!(jwt_part(&after, 0)["kid"], new_kid.as_str());

    // Functions still on the kms configuration already publish the wrapped key (read from the
    // ring), so a token the switched token function signs verifies there too.
    let kms_jwks = Function::start("jwks", &kms_env).await;
    let j = kms_jwks.invoke("GET", "/.well-known/jwks.json", &[], None).await;
    let kids: Vec<&str> = body(&j)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| match k["kid"].as_str().unwrap() {
            kid if kid == former_kid => "former",
            kid if kid == new_kid => "new",
            _ => "another",
        })
        .collect();
    assert_eq!(kids, ["former", "new"], "{j}");
    let kms_introspect = Function::start("introspect", &kms_env).await;
    for at in [&before, &after] {
        let i = kms_introspect
            .invoke("POST", "/oauth2/introspect", &form, Some(&format!("token={at}")))
            .await;
        assert_eq!(body(&i)["active"], true, "{i}");
    }

    let j = jwks_fn.invoke("GET", "/.well-known/jwks.json", &[], None).await;
    assert_eq!(j["statusCode"], 200, "{j}");
    let kids: Vec<String> = body(&j)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kids,
        [new_kid.clone(), former_kid.clone()],
        "the ring's key first"
    );
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(body(&j)).unwrap();
    crate::support::jwt();
    for at in [&before, &still, &after] {
        let kid = jwt_part(at, 0)["kid"].as_str().unwrap().to_string();
        let key = DecodingKey::from_jwk(set.find(&kid).expect("published")).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[format!("urn:bulwark:tenant:{tenant}")]);
        v.set_issuer(&["https://auth.example.test"]);
        decode::<Value>(at, &key, &v).unwrap();
        let i = introspect
            .invoke("POST", "/oauth2/introspect", &form, Some(&format!("token={at}")))
            .await;
        assert_eq!(body(&i)["active"], true, "{i}");
    }
    assert_eq!(kms.count("Sign"), 0, "nothing is signed by KMS after the switch");
    assert_eq!(kms.count("Decrypt"), 1, "the token function's one Decrypt");

    // Without the bridge the former key's tokens no longer verify.
    let mut bare = data.lambda_env();
    bare.retain(|(k, _)| *k != "BULWARK_PREVIOUS_KMS_KEY_IDS");
    assert_eq!(
        bare.len() + 1,
        data.lambda_env().len(),
        "the bridge was configured"
    );
    let unbridged = Function::start("introspect", &with(bare)).await;
    for (at, active) in [(&before, false), (&after, true)] {
        let i = unbridged
            .invoke("POST", "/oauth2/introspect", &form, Some(&format!("token={at}")))
            .await;
        assert_eq!(body(&i)["active"], active, "{i}");
    }
}

/// kms-wrapped: when `Decrypt` fails at cold start the function still starts; a token request
/// gets 503 `temporarily_unavailable` saying nothing about KMS, and the next request tries again.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_decrypt_at_cold_start_is_a_503_and_the_next_request_tries_again() {
    let data = DataDir::new_dynamodb_with("kms-wrapped");
    let tenant = format!("d{}", unique().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    let c = data.tenant_with_client(&tenant);
    let (proxy_url, kms, _proxy) = kms_proxy().await;
    kms.deny.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut env = data.lambda_env_signing();
    env.push(("BULWARK_ISSUER", "https://auth.example.test".to_string()));
    env.push(("AWS_ENDPOINT_URL_KMS", proxy_url));
    let token = Function::start("token", &env).await;
    token.init_time().await;
    assert_eq!(kms.count("Decrypt"), 1, "tried at cold start");
    let basic = basic_auth(&c.id, &c.secret);
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", basic.as_str()),
    ];
    let t = token
        .invoke(
            "POST",
            "/oauth2/token",
            &form,
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(t["statusCode"], 503, "{t}");
    assert_eq!(body(&t)["error"], "temporarily_unavailable", "{t}");
    let text = html(&t).to_lowercase();
    for internal in ["kms", "decrypt", "denied", "key ring", "ciphertext"] {
        assert!(!text.contains(internal), "the body leaks internals: {text}");
    }
    assert_eq!(kms.count("Decrypt"), 2, "tried again");
    // Both failed Decrypts are KMS errors in the metrics (the alarm's), the 503 a 5xx answer.
    assert_eq!(token.emf_sum("KmsErrors", &[], 2.0).await, 2.0);
    assert_eq!(
        token.emf_sum("ServerErrors", &[("Function", "token")], 1.0).await,
        1.0
    );
    kms.deny.store(false, std::sync::atomic::Ordering::SeqCst);
    let t = token
        .invoke(
            "POST",
            "/oauth2/token",
            &form,
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(t["statusCode"], 200, "{t}");
    let t = token
        .invoke(
            "POST",
            "/oauth2/token",
            &form,
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(t["statusCode"], 200, "{t}");
    assert_eq!(kms.count("Decrypt"), 3, "decrypted once, then kept");
    assert_eq!(kms.count("Sign"), 0);
}

fn aws_cli(args: &[&str]) -> Value {
    aws_cli_stdin(args, "")
}

fn aws_cli_stdin(args: &[&str], input: &str) -> Value {
    use std::io::Write;
    let prefix = std::env::var("BULWARK_TEST_TABLE_PREFIX").unwrap_or_else(|_| "bulwark-test-".into());
    let mut out = Command::new(&*BIN)
        .args([
            "--json",
            "--backend",
            "dynamodb",
            "--table-prefix",
            &prefix,
            "--issuer",
            "https://auth.example.test",
        ])
        .args(args)
        .env("AWS_ENDPOINT_URL", moto())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = out.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = out.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "bulwark {args:?}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stripped_size(path: &std::path::Path) -> Option<u64> {
    let tmp = tempfile::NamedTempFile::new().ok()?;
    std::fs::copy(path, tmp.path()).ok()?;
    let ok = Command::new("strip").arg(tmp.path()).status().ok()?.success();
    if !ok {
        return None;
    }
    std::fs::metadata(tmp.path()).ok().map(|m| m.len())
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_function_binary_serves_its_endpoint_on_the_lambda_runtime_api() {
    // As a stack deploys by default (SigningMode=kms-wrapped): a key ring in `<prefix>keys`,
    // wrapped under a symmetric key only the token function is told of.
    let wrapping_key = local_aws_key("wrapping-key");
    aws_cli(&["--wrapping-key-id", &wrapping_key, "keys", "rotate"]);
    let tenant = format!(
        "lambda-{}",
        unique().replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    aws_cli(&["tenant", "create", &tenant]);
    aws_cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    let iat = aws_cli(&["iat", "create", "--tenant", &tenant])["initial_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix = std::env::var("BULWARK_TEST_TABLE_PREFIX").unwrap_or_else(|_| "bulwark-test-".into());
    let stack = prefix.trim_end_matches('-').to_string();
    let env = [
        ("BULWARK_ISSUER", "https://auth.example.test".to_string()),
        ("BULWARK_TABLE_PREFIX", prefix),
        ("BULWARK_SIGNING_MODE", "kms-wrapped".to_string()),
        ("BULWARK_STACK", stack),
        ("BULWARK_ACCESS_TOKEN_TTL", "600".to_string()),
        (
            "BULWARK_TENANT_CACHE_SECS",
            crate::support::TENANT_CACHE_SECS.to_string(),
        ),
    ];
    let mut signing_env = env.to_vec();
    signing_env.push(("BULWARK_WRAPPING_KEY_ID", wrapping_key));
    let mut report = String::from("function      init_ms  debug_stripped_bytes\n");
    let mut fns = HashMap::new();
    for name in [
        "discovery",
        "jwks",
        "register",
        "token",
        "par",
        "device",
        "introspect",
        "revoke",
        "authorize",
        "userinfo",
        "account",
        "admin",
        "console",
    ] {
        let f = Function::start(name, if name == "token" { &signing_env } else { &env }).await;
        let init = f.init_time().await;
        let size = stripped_size(&binary(name)).map_or("n/a".into(), |s| s.to_string());
        report.push_str(&format!(
            "{name:<12} {:>8.1}  {size}\n",
            init.as_secs_f64() * 1000.0
        ));
        fns.insert(name, f);
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-output");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("lambda-binaries.txt"), &report).unwrap();
    eprintln!("{report}");

    // Discovery and JWKS.
    let d = fns["discovery"]
        .invoke("GET", "/.well-known/openid-configuration", &[], None)
        .await;
    assert_eq!(d["statusCode"], 200, "{d}");
    assert_eq!(
        body(&d)["token_endpoint"],
        "https://auth.example.test/oauth2/token"
    );
    let j = fns["jwks"]
        .invoke("GET", "/.well-known/jwks.json", &[], None)
        .await;
    assert_eq!(j["statusCode"], 200, "{j}");
    let jwks = body(&j);
    assert_eq!(jwks["keys"][0]["crv"], "P-256");

    // Register a client through the register function.
    let md = json!({"client_name": "lambda", "grant_types": ["client_credentials"], "scope": "api:read"})
        .to_string();
    let auth = format!("Bearer {iat}");
    let r = fns["register"]
        .invoke(
            "POST",
            "/oauth2/register",
            &[
                ("content-type", "application/json"),
                ("x-bulwark-tenant", &tenant),
                ("authorization", &auth),
            ],
            Some(&md),
        )
        .await;
    assert_eq!(r["statusCode"], 201, "{r}");
    let c = TestClient::from_registration(&body(&r));

    // A token from the token function, signed in process with the unwrapped key.
    let basic = basic_auth(&c.id, &c.secret);
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", basic.as_str()),
    ];
    let t = fns["token"]
        .invoke(
            "POST",
            "/oauth2/token",
            &form,
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(t["statusCode"], 200, "{t}");
    assert_eq!(t["headers"]["cache-control"], "no-store");
    assert_eq!(
        body(&t)["expires_in"],
        600,
        "the deployment's BULWARK_ACCESS_TOKEN_TTL applies"
    );
    let at = body(&t)["access_token"].as_str().unwrap().to_string();

    // The tenant's own issuer, through the same functions (API Gateway routes /t/{tenant}/...
    // to them): the token carries it as `iss`; discovery finds it by path insertion.
    let scoped = fns["token"]
        .invoke(
            "POST",
            &format!("/t/{tenant}/oauth2/token"),
            &form,
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(scoped["statusCode"], 200, "{scoped}");
    assert_eq!(
        jwt_part(body(&scoped)["access_token"].as_str().unwrap(), 1)["iss"],
        format!("https://auth.example.test/t/{tenant}")
    );
    let meta = fns["discovery"]
        .invoke(
            "GET",
            &format!("/.well-known/oauth-authorization-server/t/{tenant}"),
            &[],
            None,
        )
        .await;
    assert_eq!(
        body(&meta)["issuer"],
        format!("https://auth.example.test/t/{tenant}"),
        "{meta}"
    );

    // A keyless client (private_key_jwt) gets a token from the token function too; a replay
    // of its assertion does not.
    let k = crate::keyless::key("lambda-1");
    let jwks_file = std::env::temp_dir().join(format!("lambda-jwks-{}.json", unique()));
    std::fs::write(&jwks_file, serde_json::json!({"keys": [k.jwk]}).to_string()).unwrap();
    let keyless = aws_cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Keyless",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        jwks_file.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&jwks_file);
    let a = crate::keyless::assertion(
        &k,
        keyless["client_id"].as_str().unwrap(),
        "https://auth.example.test",
        Some("client-authentication+jwt"),
        serde_json::json!({}),
    );
    let body_pk = format!(
        "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={a}"
    );
    let ct_only = [("content-type", "application/x-www-form-urlencoded")];
    let pk = fns["token"]
        .invoke("POST", "/oauth2/token", &ct_only, Some(&body_pk))
        .await;
    assert_eq!(pk["statusCode"], 200, "{pk}");
    let replay = fns["token"]
        .invoke("POST", "/oauth2/token", &ct_only, Some(&body_pk))
        .await;
    assert_eq!(replay["statusCode"], 401, "{replay}");

    // Federation through the token function: an identity provider's assertion for a linked user.
    let idp = crate::keyless::key("lambda-idp");
    let idp_file = std::env::temp_dir().join(format!("lambda-idp-{}.json", unique()));
    std::fs::write(&idp_file, serde_json::json!({"keys": [idp.jwk]}).to_string()).unwrap();
    aws_cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        "https://idp.example",
        "--jwks-file",
        idp_file.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&idp_file);
    // The token function may hold the tenant's config from before the issuer was added.
    crate::support::after_tenant_change().await;
    let fed_user = aws_cli_stdin(
        &[
            "user",
            "create",
            "--tenant",
            &tenant,
            "--username",
            "fed",
            "--password-stdin",
        ],
        "correct horse battery staple\n",
    );
    aws_cli(&[
        "user",
        "link",
        "--tenant",
        &tenant,
        "--username",
        "fed",
        "--issuer",
        "https://idp.example",
        "--subject",
        "ext-fed",
    ]);
    let fed_client = aws_cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "Federated",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "--scope",
        "api:read",
    ]);
    let assertion = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some("lambda-idp".into());
        let now = crate::keyless::now();
        crate::support::jwt();
        jsonwebtoken::encode(
            &h,
            &serde_json::json!({"iss": "https://idp.example", "sub": "ext-fed", "aud": "https://auth.example.test",
                                "exp": now + 300, "iat": now, "jti": unique()}),
            &idp.enc,
        )
        .unwrap()
    };
    let fed_basic = basic_auth(
        fed_client["client_id"].as_str().unwrap(),
        fed_client["client_secret"].as_str().unwrap(),
    );
    let fed = fns["token"]
        .invoke(
            "POST",
            "/oauth2/token",
            &[ct_only[0], ("authorization", fed_basic.as_str())],
            Some(&format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            )),
        )
        .await;
    assert_eq!(fed["statusCode"], 200, "{fed}");
    assert_eq!(
        jwt_part(body(&fed)["access_token"].as_str().unwrap(), 1)["sub"],
        fed_user["sub"]
    );

    let header = jwt_part(&at, 0);
    assert_eq!(
        header["kid"], jwks["keys"][0]["kid"],
        "signed by the published key"
    );
    {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, jwk::JwkSet};
        crate::support::jwt();
        let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
        let key = DecodingKey::from_jwk(set.find(header["kid"].as_str().unwrap()).unwrap()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[format!("urn:bulwark:tenant:{tenant}")]);
        v.set_issuer(&["https://auth.example.test"]);
        decode::<Value>(&at, &key, &v).expect("the token verifies against the JWKS");
    }
    // Wrong secret: 401 from the function, not a failed invocation.
    let bad = basic_auth(&c.id, "nope");
    let w = fns["token"]
        .invoke(
            "POST",
            "/oauth2/token",
            &[form[0], ("authorization", bad.as_str())],
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(w["statusCode"], 401, "{w}");

    // Introspect, revoke, introspect.
    let tok = format!("token={at}");
    let i = fns["introspect"]
        .invoke("POST", "/oauth2/introspect", &form, Some(&tok))
        .await;
    assert_eq!(body(&i)["active"], true, "{i}");
    let v = fns["revoke"]
        .invoke("POST", "/oauth2/revoke", &form, Some(&tok))
        .await;
    assert_eq!(v["statusCode"], 200, "{v}");
    let i = fns["introspect"]
        .invoke("POST", "/oauth2/introspect", &form, Some(&tok))
        .await;
    assert_eq!(body(&i), json!({"active": false}), "{i}");

    user_flow_through_the_functions(&fns, &tenant).await;
    admin_api_through_the_function(&fns, &tenant, &c).await;
    console_through_the_function(&fns, &tenant).await;

    // A CORS preflight reaches the function (template.yaml routes OPTIONS to it).
    let pre = fns["token"]
        .invoke(
            "OPTIONS",
            "/oauth2/token",
            &[
                ("origin", "https://spa.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await;
    assert_eq!(pre["statusCode"], 200, "{pre}");
    assert_eq!(pre["headers"]["access-control-allow-origin"], "*", "{pre}");

    // A route the function does not serve.
    let nf = fns["token"]
        .invoke("GET", "/.well-known/jwks.json", &[], None)
        .await;
    assert_eq!(nf["statusCode"], 404, "{nf}");
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test]
async fn a_missing_variable_fails_the_cold_start_with_a_clear_message() {
    let f = Function::start(
        "token",
        &[
            ("BULWARK_TABLE_PREFIX", "x-".into()),
            ("BULWARK_KMS_KEY_IDS", "k".into()),
        ],
    )
    .await;
    let mut child = f;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the function kept running without BULWARK_ISSUER"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success());
    // stdout is read by the function's reader thread: give it until it has seen the end.
    let read_until = Instant::now() + Duration::from_secs(5);
    while !child.stdout.lock().unwrap().join("\n").contains("BULWARK_ISSUER") && Instant::now() < read_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = child.stdout.lock().unwrap().join("\n");
    use std::io::Read;
    child
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains("BULWARK_ISSUER"),
        "the message names the variable: {out}"
    );
}

/// The cookies a proxy response sets, as `name=value` pairs.
fn set_cookies(resp: &Value) -> Vec<String> {
    resp["cookies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str())
                .map(|c| c.split(';').next().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The text body of a proxy response.
fn html(resp: &Value) -> String {
    let raw = resp["body"].as_str().unwrap_or("");
    if resp["isBase64Encoded"] == true {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(raw).unwrap()).unwrap()
    } else {
        raw.to_string()
    }
}

/// The form of the button labelled `label` on `html`: where it posts, and its hidden fields as
/// the form body a browser sends.
fn form_of(html: &str, label: &str) -> (String, String) {
    let page = crate::flow::Page {
        status: 200,
        headers: Default::default(),
        html: html.to_string(),
    };
    let (action, fields) = page.form(label);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    (action, body)
}

fn hidden(html: &str, name: &str) -> String {
    crate::flow::hidden_input(html, name).unwrap_or_else(|| panic!("{name} in {html}"))
}

/// Login, consent, code, token, userinfo and the account page's revoke, each served by its own
/// function binary, with cookies carried the API Gateway 2.0 way.
async fn user_flow_through_the_functions(fns: &HashMap<&str, Function>, tenant: &str) {
    use crate::flow::{CALLBACK, PASSWORD, pkce};
    aws_cli_stdin(
        &[
            "user",
            "create",
            "--tenant",
            tenant,
            "--username",
            "alice",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    let reg = aws_cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "Lambda App",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid profile agent:act",
        "--redirect-uri",
        CALLBACK,
    ]);
    let (cid, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    // An agent of the app (RFC 8693), made by the operator.
    let agent = aws_cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "Lambda Agent",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "--agent-of",
        cid,
        "--scope",
        "openid profile",
    ]);
    assert_eq!(agent["agent_of"], cid, "{agent}");
    let p = pkce();
    let q = format!(
        "/oauth2/authorize?response_type=code&client_id={cid}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&scope=openid%20profile%20agent%3Aact&state=s&code_challenge={}&code_challenge_method=S256",
        p.challenge
    );
    let login = fns["authorize"].invoke("GET", &q, &[], None).await;
    assert_eq!(login["statusCode"], 200, "{login}");
    assert!(
        login["headers"]["content-security-policy"]
            .as_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let mut jar = set_cookies(&login);
    assert!(
        jar.iter().any(|c| c.starts_with("__Host-bulwark_bid=")),
        "https issuer: __Host- cookies: {jar:?}"
    );
    let page = html(&login);
    let form = format!(
        "action=login&interaction={}&csrf={}&username=alice&password={}",
        hidden(&page, "interaction"),
        hidden(&page, "csrf"),
        PASSWORD.replace(' ', "+")
    );
    let cookie = jar.join("; ");
    let ct = ("content-type", "application/x-www-form-urlencoded");
    let consent = fns["authorize"]
        .invoke(
            "POST",
            "/oauth2/authorize",
            &[ct, ("cookie", &cookie)],
            Some(&form),
        )
        .await;
    assert_eq!(consent["statusCode"], 200, "{consent}");
    jar.extend(set_cookies(&consent));
    assert!(
        jar.iter()
            .any(|c| c.starts_with(&format!("__Host-bulwark_session_{tenant}="))),
        "{jar:?}"
    );
    let page = html(&consent);
    assert!(
        page.contains("Lambda Agent"),
        "the consent page names the app's agents: {page}"
    );
    let form = format!(
        "action=consent&interaction={}&csrf={}&decision=approve",
        hidden(&page, "interaction"),
        hidden(&page, "csrf")
    );
    let cookie = jar.join("; ");
    let done = fns["authorize"]
        .invoke(
            "POST",
            "/oauth2/authorize",
            &[ct, ("cookie", &cookie)],
            Some(&form),
        )
        .await;
    assert_eq!(done["statusCode"], 303, "{done}");
    let loc = url::Url::parse(done["headers"]["location"].as_str().unwrap()).unwrap();
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert!(
        loc.query_pairs()
            .any(|(k, v)| k == "iss" && v == "https://auth.example.test")
    );

    let basic = basic_auth(cid, secret);
    let t = fns["token"]
        .invoke(
            "POST",
            "/oauth2/token",
            &[ct, ("authorization", &basic)],
            Some(&format!(
                "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&code_verifier={}",
                p.verifier
            )),
        )
        .await;
    assert_eq!(t["statusCode"], 200, "{t}");
    let tb = body(&t);
    assert!(
        tb["id_token"].is_string() && tb["refresh_token"].is_string(),
        "{tb}"
    );
    let at = tb["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {at}");
    let u = fns["userinfo"]
        .invoke("GET", "/oauth2/userinfo", &[("authorization", &bearer)], None)
        .await;
    assert_eq!(u["statusCode"], 200, "{u}");
    assert_eq!(body(&u)["preferred_username"], "alice");

    // A pushed authorization request (RFC 9126) through the par function; the authorize
    // function takes it once (the user is signed in and has consented: straight to the code).
    let pushed = fns["par"]
        .invoke(
            "POST",
            "/oauth2/par",
            &[ct, ("authorization", &basic)],
            Some(&format!(
                "response_type=code&client_id={cid}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&scope=openid%20profile&state=sp&code_challenge={}&code_challenge_method=S256",
                p.challenge
            )),
        )
        .await;
    assert_eq!(pushed["statusCode"], 201, "{pushed}");
    let request_uri = body(&pushed)["request_uri"].as_str().unwrap().to_string();
    let by_reference = format!(
        "/oauth2/authorize?client_id={cid}&request_uri={}",
        url::form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    );
    let done = fns["authorize"]
        .invoke("GET", &by_reference, &[("cookie", &cookie)], None)
        .await;
    assert_eq!(done["statusCode"], 303, "{done}");
    let loc = done["headers"]["location"].as_str().unwrap();
    assert!(
        loc.starts_with(CALLBACK) && loc.contains("code=") && loc.contains("state=sp"),
        "{loc}"
    );
    let again = fns["authorize"]
        .invoke("GET", &by_reference, &[("cookie", &cookie)], None)
        .await;
    assert_eq!(again["statusCode"], 400, "used once: {again}");
    assert!(again["headers"].get("location").is_none(), "{again}");

    // The agent exchanges the user's token through the token function: a token about alice
    // that says the agent acts.
    let agent_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            agent["client_id"].as_str().unwrap(),
            agent["client_secret"].as_str().unwrap()
        ))
    );
    let x = fns["token"]
        .invoke(
            "POST",
            "/oauth2/token",
            &[ct, ("authorization", &agent_basic)],
            Some(&format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token={at}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
            )),
        )
        .await;
    assert_eq!(x["statusCode"], 200, "{x}");
    let xb = body(&x);
    assert_eq!(
        xb["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let delegated = xb["access_token"].as_str().unwrap().to_string();
    let claims = crate::support::jwt_part(&delegated, 1);
    assert_eq!(claims["act"]["sub"], agent["client_id"], "{claims}");
    assert_eq!(claims["sub"], crate::support::jwt_part(&at, 1)["sub"]);
    let delegated_bearer = format!("Bearer {delegated}");
    let u = fns["userinfo"]
        .invoke(
            "GET",
            "/oauth2/userinfo",
            &[("authorization", &delegated_bearer)],
            None,
        )
        .await;
    assert_eq!(u["statusCode"], 200, "{u}");

    // The account page lists the agent; Stop ends its token at once.
    let acct = fns["account"]
        .invoke(
            "GET",
            &format!("/account?tenant={tenant}"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
    let page = html(&acct);
    assert!(
        page.contains("Lambda Agent") && page.contains("last acted"),
        "{page}"
    );
    let (stop, fields) = form_of(&page, "Stop");
    assert_eq!(
        stop,
        format!(
            "https://auth.example.test/account/agents/stop?client_id={cid}&agent_id={}",
            agent["client_id"].as_str().unwrap()
        )
    );
    let r = fns["account"]
        .invoke(
            "POST",
            stop.trim_start_matches("https://auth.example.test"),
            &[ct, ("cookie", &cookie)],
            Some(&fields),
        )
        .await;
    assert_eq!(r["statusCode"], 303, "{r}");
    let u = fns["userinfo"]
        .invoke(
            "GET",
            "/oauth2/userinfo",
            &[("authorization", &delegated_bearer)],
            None,
        )
        .await;
    assert_eq!(u["statusCode"], 401, "stopped: {u}");

    // The account page with the session cookie: revoke the app.
    let acct = fns["account"]
        .invoke(
            "GET",
            &format!("/account?tenant={tenant}"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(acct["statusCode"], 200, "{acct}");
    let page = html(&acct);
    assert!(page.contains("Lambda App"), "{page}");
    let (revoke, fields) = form_of(&page, "Revoke");

    // An app whose id is a URL (a metadata-document client's) is named in the query string,
    // which API Gateway hands over as sent: the form reaches the function's handler (303; no
    // such app of alice's, so nothing changes). In the path, where the routes kept for old
    // links take it, API Gateway would have decoded it into more segments: no route.
    let url_id = "https://app.example.com/client.json";
    let encoded: String = url::form_urlencoded::byte_serialize(url_id.as_bytes()).collect();
    let r = fns["account"]
        .invoke(
            "POST",
            &format!("/account/apps/revoke?client_id={encoded}"),
            &[ct, ("cookie", &cookie)],
            Some(&fields),
        )
        .await;
    assert_eq!(r["statusCode"], 303, "{r}");
    let r = fns["account"]
        .invoke(
            "POST",
            &format!("/account/apps/{encoded}/revoke"),
            &[ct, ("cookie", &cookie)],
            Some(&fields),
        )
        .await;
    assert_eq!(r["statusCode"], 404, "{r}");

    // The page's own Revoke form.
    assert_eq!(
        revoke,
        format!("https://auth.example.test/account/apps/revoke?client_id={cid}")
    );
    let r = fns["account"]
        .invoke(
            "POST",
            revoke.trim_start_matches("https://auth.example.test"),
            &[ct, ("cookie", &cookie)],
            Some(&fields),
        )
        .await;
    assert_eq!(r["statusCode"], 303, "{r}");
    let u = fns["userinfo"]
        .invoke("GET", "/oauth2/userinfo", &[("authorization", &bearer)], None)
        .await;
    assert_eq!(u["statusCode"], 401, "revoked: {u}");

    // The device authorization grant (RFC 8628): the code and the verification page through the
    // device function (alice is signed in: the code goes straight to the confirmation), the
    // polls and the redemption through the token function.
    let device_grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";
    let cli = aws_cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "Lambda CLI",
        "--grant-type",
        "urn:ietf:params:oauth:grant-type:device_code",
        "--auth-method",
        "none",
        "--scope",
        "openid profile",
    ]);
    let cli_id = cli["client_id"].as_str().unwrap();
    let started = fns["device"]
        .invoke(
            "POST",
            "/oauth2/device_authorization",
            &[ct],
            Some(&format!("client_id={cli_id}&scope=openid%20profile")),
        )
        .await;
    assert_eq!(started["statusCode"], 200, "{started}");
    let d = body(&started);
    let (device_code, user_code) = (
        d["device_code"].as_str().unwrap(),
        d["user_code"].as_str().unwrap(),
    );
    assert_eq!(
        d["verification_uri"],
        format!("https://auth.example.test/device?tenant={tenant}")
    );
    let poll_form = format!("grant_type={device_grant}&device_code={device_code}&client_id={cli_id}");
    let pending = fns["token"]
        .invoke("POST", "/oauth2/token", &[ct], Some(&poll_form))
        .await;
    assert_eq!(pending["statusCode"], 400, "{pending}");
    assert_eq!(body(&pending)["error"], "authorization_pending");
    let page = fns["device"]
        .invoke(
            "GET",
            &format!("/device?tenant={tenant}&user_code={user_code}"),
            &[("cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(page["statusCode"], 200, "{page}");
    let csrf = hidden(&html(&page), "csrf");
    let confirm = fns["device"]
        .invoke(
            "POST",
            "/device",
            &[ct, ("cookie", &cookie)],
            Some(&format!(
                "action=code&tenant={tenant}&csrf={csrf}&user_code={user_code}"
            )),
        )
        .await;
    assert_eq!(confirm["statusCode"], 200, "{confirm}");
    assert!(html(&confirm).contains("Lambda CLI"), "{confirm}");
    let epoch = hidden(&html(&confirm), "epoch");
    let done = fns["device"]
        .invoke(
            "POST",
            "/device",
            &[ct, ("cookie", &cookie)],
            Some(&format!(
                "action=decide&tenant={tenant}&csrf={csrf}&user_code={user_code}&epoch={epoch}&decision=approve"
            )),
        )
        .await;
    assert_eq!(done["statusCode"], 200, "{done}");
    assert!(html(&done).contains("Device connected"), "{done}");
    let tokens = fns["token"]
        .invoke("POST", "/oauth2/token", &[ct], Some(&poll_form))
        .await;
    assert_eq!(tokens["statusCode"], 200, "{tokens}");
    assert!(body(&tokens)["access_token"].is_string(), "{tokens}");
    let once = fns["token"]
        .invoke("POST", "/oauth2/token", &[ct], Some(&poll_form))
        .await;
    assert_eq!(body(&once)["error"], "invalid_grant", "{once}");
}

/// The admin function: an operator-made admin client's token (from the token function) lists
/// the tenant's clients, rotates a secret and disables a client, whose token the introspect
/// function then calls inactive.
async fn admin_api_through_the_function(fns: &HashMap<&str, Function>, tenant: &str, c: &TestClient) {
    let admin = TestClient::from_registration(&aws_cli(&[
        "client",
        "create",
        "--tenant",
        tenant,
        "--name",
        "ops",
        "--scope",
        "bulwark:admin",
    ]));
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let form = "application/x-www-form-urlencoded";
    let admin_auth = basic(&admin.id, &admin.secret);
    let t = fns["token"]
        .invoke(
            "POST",
            "/oauth2/token",
            &[("content-type", form), ("authorization", &admin_auth)],
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(t["statusCode"], 200, "{t}");
    let bearer = format!("Bearer {}", body(&t)["access_token"].as_str().unwrap());
    let doc = fns["admin"]
        .invoke("GET", "/admin/v1/openapi.json", &[], None)
        .await;
    assert_eq!(body(&doc)["openapi"], "3.1.0", "{doc}");
    let list = fns["admin"]
        .invoke(
            "GET",
            "/admin/v1/clients?limit=200",
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(list["statusCode"], 200, "{list}");
    assert!(body(&list)["items"].to_string().contains(&c.id), "{list}");

    // Rotate the client's secret with a grace period: both secrets work at the token function.
    let r = fns["admin"]
        .invoke(
            "POST",
            &format!("/admin/v1/clients/{}/secret", c.id),
            &[("authorization", &bearer), ("content-type", "application/json")],
            Some(r#"{"grace_seconds": 600}"#),
        )
        .await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let new_secret = body(&r)["client_secret"].as_str().unwrap().to_string();
    let mut at = String::new();
    for s in [&c.secret, &new_secret] {
        let auth = basic(&c.id, s);
        let t = fns["token"]
            .invoke(
                "POST",
                "/oauth2/token",
                &[("content-type", form), ("authorization", &auth)],
                Some("grant_type=client_credentials"),
            )
            .await;
        assert_eq!(t["statusCode"], 200, "{t}");
        at = body(&t)["access_token"].as_str().unwrap().to_string();
    }

    // Disable it: its token introspects inactive (asked by the admin client, which still exists).
    let r = fns["admin"]
        .invoke(
            "PATCH",
            &format!("/admin/v1/clients/{}", c.id),
            &[("authorization", &bearer), ("content-type", "application/json")],
            Some(r#"{"disabled": true}"#),
        )
        .await;
    assert_eq!(r["statusCode"], 200, "{r}");
    assert_eq!(body(&r)["disabled"], true);
    let admin_form = [("content-type", form), ("authorization", admin_auth.as_str())];
    let i = fns["introspect"]
        .invoke(
            "POST",
            "/oauth2/introspect",
            &admin_form,
            Some(&format!("token={at}")),
        )
        .await;
    assert_eq!(body(&i), json!({"active": false}), "{i}");
    let audit = fns["admin"]
        .invoke(
            "GET",
            &format!("/admin/v1/audit?subject={}&limit=5", c.id),
            &[("authorization", &bearer)],
            None,
        )
        .await;
    assert_eq!(body(&audit)["items"][0]["kind"], "client.disabled", "{audit}");
}

/// The console function: it makes the tenant's console client in DynamoDB and sends the browser
/// to the authorization function, which then knows that client; a page without a session goes
/// to sign-in, and a callback that this browser did not start is refused.
async fn console_through_the_function(fns: &HashMap<&str, Function>, tenant: &str) {
    let start = fns["console"]
        .invoke("GET", &format!("/console?tenant={tenant}"), &[], None)
        .await;
    assert_eq!(start["statusCode"], 303, "{start}");
    let to = start["headers"]["location"].as_str().unwrap().to_string();
    assert!(
        to.starts_with("https://auth.example.test/oauth2/authorize?"),
        "{to}"
    );
    assert!(
        to.contains(&format!("client_id=bulwark-console.{tenant}")),
        "{to}"
    );
    let flow = set_cookies(&start);
    assert!(
        flow.iter().any(|c| c.starts_with("__Host-bulwark_console_flow=")),
        "{flow:?}"
    );
    let path = to.trim_start_matches("https://auth.example.test");
    let login = fns["authorize"].invoke("GET", path, &[], None).await;
    assert_eq!(login["statusCode"], 200, "{login}");
    assert!(
        html(&login).contains("Bulwark console"),
        "the login page names the console"
    );
    let page = fns["console"]
        .invoke("GET", &format!("/console/apps?tenant={tenant}"), &[], None)
        .await;
    assert_eq!(page["statusCode"], 303, "{page}");
    let cookie = flow.join("; ");
    let forged = fns["console"]
        .invoke(
            "GET",
            "/console/callback?code=x&state=forged",
            &[("cookie", cookie.as_str())],
            None,
        )
        .await;
    assert_eq!(forged["statusCode"], 400, "{forged}");
}

/// The sweeper function (no HTTP route: EventBridge invokes it daily with a scheduled event)
/// deletes the open registrations unused for 30 days, and only those, on its own tables.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sweeper_function_expires_unused_open_registrations_on_its_schedule() {
    const DAY: i64 = 86_400;
    let data = DataDir::new_dynamodb();
    let tenant = format!("s{}", unique().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    data.cli(&["tenant", "create", &tenant, "--dcr", "open"]);
    // Registered openly 31 and 29 days ago (servers whose clocks are that far behind).
    let mut ids = Vec::new();
    for days in [31, 29] {
        let server = Server::start_with(
            &data,
            &[],
            &[("BULWARK_CLOCK_OFFSET_SECS", &(-days * DAY).to_string())],
        );
        let r = Resp::from(
            http()
                .post(server.url("/oauth2/register"))
                .header("x-bulwark-tenant", &tenant)
                .json(
                    &json!({"client_name": "agent", "redirect_uris": ["http://127.0.0.1/cb"],
                    "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["client_id"].as_str().unwrap().to_string());
    }
    let mut env = data.lambda_env();
    env.push(("BULWARK_ISSUER", "https://auth.example.test".to_string()));
    let f = Function::start("sweeper", &env).await;
    let init = f.init_time().await;
    eprintln!("sweeper init {:.1} ms", init.as_secs_f64() * 1000.0);
    let event = json!({
        "version": "0", "id": unique(), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-22T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/bulwark-sweeper-daily"], "detail": {}
    });
    let r = f.invoke_event(event.clone()).await;
    assert_eq!(
        r,
        json!({"examined": 1, "expired": 1, "postponed": 0, "dropped": 0, "skipped": 0, "more": false})
    );
    let listed = data.cli(&["client", "list", "--tenant", &tenant]);
    let left: Vec<&str> = listed["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec![ids[1].as_str()], "the 29-day-old one stays");
    let audit = data.cli(&["audit", "list", "--tenant", &tenant, "--kind", "client.expired"]);
    assert_eq!(audit["events"][0]["subject"], ids[0].as_str(), "{audit}");
    assert_eq!(audit["events"][0]["actor"], "sweeper", "{audit}");
    // Warm: the next day's run finds nothing due.
    let r = f.invoke_event(event).await;
    assert_eq!(r["examined"], 0, "{r}");
}

/// What a later release's `bulwark migrate` leaves in a stack's tables: the version item at a
/// version this code does not know.
fn stamp_schema(data: &DataDir, version: u32) {
    let script = "import boto3,sys; boto3.client('dynamodb', endpoint_url=sys.argv[1], region_name='us-east-1', \
        aws_access_key_id='testing', aws_secret_access_key='testing').put_item(TableName=sys.argv[2], \
        Item={'pk': {'S': 'schema'}, 'sk': {'S': 'version'}, 'data': {'S': '{\"version\":' + sys.argv[3] + '}'}, 'version': {'N': '9'}})";
    let out = Command::new(repo().join(".venv/bin/python"))
        .args([
            "-c",
            script,
            &moto_endpoint(),
            &format!("{}-tenants", data.stack()),
            &version.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A function whose stack's store is newer than it understands answers 503 to every request,
/// with one log line at cold start, and does not panic.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_function_refuses_a_store_newer_than_it_understands() {
    let data = DataDir::new_dynamodb_with("kms-wrapped");
    let tenant = format!("s{}", unique().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    let c = data.tenant_with_client(&tenant);
    stamp_schema(&data, 999);
    let mut env = data.lambda_env_signing();
    env.push(("BULWARK_ISSUER", "https://auth.example.test".to_string()));
    let token = Function::start("token", &env).await;
    token.init_time().await;
    let basic = basic_auth(&c.id, &c.secret);
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", basic.as_str()),
    ];
    for _ in 0..2 {
        let t = token
            .invoke(
                "POST",
                "/oauth2/token",
                &form,
                Some("grant_type=client_credentials"),
            )
            .await;
        assert_eq!(t["statusCode"], 503, "{t}");
        assert_eq!(body(&t)["error"], "temporarily_unavailable", "{t}");
    }
    let logs = token.stdout.lock().unwrap().clone();
    let refusals = logs
        .iter()
        .filter(|l| l.contains("newer than this code understands"))
        .count();
    assert_eq!(refusals, 1, "one clear line: {logs:?}");
    assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:?}");
    drop(token);
    // Once the store is at a version this code knows, a new instance serves.
    stamp_schema(&data, 1);
    let token = Function::start("token", &env).await;
    let t = token
        .invoke(
            "POST",
            "/oauth2/token",
            &form,
            Some("grant_type=client_credentials"),
        )
        .await;
    assert_eq!(t["statusCode"], 200, "{t}");
}

/// A `federated` client (issue 23) through the token function on DynamoDB: a GitHub Actions
/// token from the tenant's single-use workload issuer authenticates it once, with no secret;
/// the same token again, or one for another branch, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_federated_client_authenticates_with_its_workload_token_through_the_token_function() {
    use crate::workload::{GITHUB, cc_form, github_claims, platform, sign};
    let data = DataDir::new_dynamodb();
    let tenant = format!("w{}", unique().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    data.cli(&["tenant", "create", &tenant]);
    data.cli(&["scope", "add", "--tenant", &tenant, "api:read", "Read"]);
    let gh = platform("gh-lambda");
    let jwks = data.path().join("gh-jwks.json");
    std::fs::write(&jwks, json!({"keys": [gh.jwk]}).to_string()).unwrap();
    data.cli(&[
        "issuer",
        "add",
        "--tenant",
        &tenant,
        "--issuer",
        GITHUB,
        "--jwks-file",
        jwks.to_str().unwrap(),
        "--workload",
        "--single-use",
    ]);
    let created = data.cli(&[
        "client",
        "create",
        "--tenant",
        &tenant,
        "--name",
        "deploy",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--auth-method",
        "federated",
        "--federated-issuer",
        GITHUB,
        "--federated-subject",
        "repo:octo-org/octo-repo:ref:refs/heads/main",
    ]);
    assert!(created.get("client_secret").is_none(), "{created}");
    let id = created["client_id"].as_str().unwrap().to_string();
    let issuer = "https://auth.example.test";
    let mut env = data.lambda_env_signing();
    env.push(("BULWARK_ISSUER", issuer.to_string()));
    env.push((
        "BULWARK_TENANT_CACHE_SECS",
        crate::support::TENANT_CACHE_SECS.to_string(),
    ));
    let token = Function::start("token", &env).await;
    let aud = format!("{issuer}/t/{tenant}");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let main = sign(
        &gh,
        &github_claims("octo-org/octo-repo", "refs/heads/main", &aud, json!({})),
    );
    // At the shared issuer and at the tenant's own.
    for path in ["/oauth2/token".to_string(), format!("/t/{tenant}/oauth2/token")] {
        let fresh = sign(
            &gh,
            &github_claims("octo-org/octo-repo", "refs/heads/main", &aud, json!({})),
        );
        let t = token
            .invoke("POST", &path, &form, Some(&cc_form(&id, &fresh)))
            .await;
        assert_eq!(t["statusCode"], 200, "{path}: {t}");
        let at = jwt_part(body(&t)["access_token"].as_str().unwrap(), 1);
        assert_eq!(at["client_id"], id.as_str());
    }
    let t = token
        .invoke("POST", "/oauth2/token", &form, Some(&cc_form(&id, &main)))
        .await;
    assert_eq!(t["statusCode"], 200, "{t}");
    for (why, jwt) in [
        ("a replay at a single-use issuer", main.clone()),
        (
            "another branch",
            sign(
                &gh,
                &github_claims("octo-org/octo-repo", "refs/heads/dev", &aud, json!({})),
            ),
        ),
    ] {
        let t = token
            .invoke("POST", "/oauth2/token", &form, Some(&cc_form(&id, &jwt)))
            .await;
        assert_eq!(t["statusCode"], 401, "{why}: {t}");
        assert_eq!(body(&t)["error"], "invalid_client", "{why}");
    }
}

/// A stand-in for the HTTP API in front of the functions: each request becomes a payload-2.0
/// event for the function its route names (discovery, token), and the proxy response goes back
/// as HTTP. Its address is the functions' issuer.
async fn gateway(
    listener: tokio::net::TcpListener,
    fns: Arc<HashMap<&'static str, Function>>,
) -> tokio::task::JoinHandle<()> {
    async fn route(
        State(fns): State<Arc<HashMap<&'static str, Function>>>,
        method: axum::http::Method,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        let path = uri.path();
        let name = if path.starts_with("/.well-known/") {
            "discovery"
        } else if path.ends_with("/oauth2/token") {
            "token"
        } else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let hs: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let hs: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let target = uri.path_and_query().map_or(path, |p| p.as_str());
        let body = (!body.is_empty()).then_some(body);
        let r = fns[name]
            .invoke(method.as_str(), target, &hs, body.as_deref())
            .await;
        let mut resp = html(&r).into_response();
        *resp.status_mut() = StatusCode::from_u16(r["statusCode"].as_u64().unwrap_or(500) as u16).unwrap();
        for (k, v) in r["headers"].as_object().into_iter().flatten() {
            if let (Ok(k), Some(Ok(v))) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
    let app = Router::new().fallback(route).with_state(fns);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs moto (DynamoDB, KMS): run `bash infra/test.sh` (it provides them and enables feature test-services)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulwark_token_gets_tokens_from_the_functions() {
    let data = DataDir::new_dynamodb_with("kms-wrapped");
    let tenant = format!(
        "tok{}",
        unique().replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    let c = data.tenant_with_client(&tenant);
    let ec = crate::token_cli::ec_key("ec-1");
    let keyed = crate::token_cli::keyed_client(&data, &tenant, &[&ec.key.jwk]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let with = |mut env: Vec<(&'static str, String)>| {
        env.push(("BULWARK_ISSUER", issuer.clone()));
        env.push(("BULWARK_TENANT_CACHE_SECS", TENANT_CACHE_SECS.to_string()));
        env
    };
    let mut fns = HashMap::new();
    fns.insert(
        "discovery",
        Function::start("discovery", &with(data.lambda_env())).await,
    );
    fns.insert(
        "token",
        Function::start("token", &with(data.lambda_env_signing())).await,
    );
    let _gateway = gateway(listener, Arc::new(fns)).await;

    // At the shared issuer and at the tenant's own (discovery by RFC 8414 path insertion).
    for iss in [issuer.clone(), format!("{issuer}/t/{tenant}")] {
        let i = iss.clone();
        let (id, secret) = (c.id.clone(), c.secret.clone());
        let out = tokio::task::spawn_blocking(move || {
            crate::token_cli::bulwark_token(
                &i,
                &[
                    "--client-id",
                    &id,
                    "--client-secret-env",
                    "S",
                    "--scope",
                    "api:read",
                ],
                &[("S", &secret)],
            )
        })
        .await
        .unwrap();
        assert_eq!(out.0, 0, "{iss}: {} {}", out.1, out.2);
        let claims = crate::token_cli::claims_of(&out.1);
        assert_eq!(claims["iss"], iss.as_str());
        assert_eq!(claims["client_id"], c.id.as_str());
        assert_eq!(claims["scope"], "api:read");

        let (i, k, pem) = (
            iss.clone(),
            keyed.clone(),
            data.path().join(format!("{}.pem", unique())),
        );
        std::fs::write(&pem, &ec.pkcs8_pem).unwrap();
        let out = tokio::task::spawn_blocking(move || {
            crate::token_cli::bulwark_token(
                &i,
                &[
                    "--client-id",
                    &k,
                    "--private-key-file",
                    pem.to_str().unwrap(),
                    "--kid",
                    "ec-1",
                    "--json",
                ],
                &[],
            )
        })
        .await
        .unwrap();
        assert_eq!(out.0, 0, "{iss}: {} {}", out.1, out.2);
        let r: Value = serde_json::from_str(out.1.trim()).unwrap();
        assert_eq!(
            crate::token_cli::claims_of(r["access_token"].as_str().unwrap())["client_id"],
            keyed.as_str()
        );
    }
    // The token function's refusal, through the CLI: 4.
    let (i, id) = (issuer.clone(), c.id.clone());
    let out = tokio::task::spawn_blocking(move || {
        crate::token_cli::bulwark_token(
            &i,
            &["--client-id", &id, "--client-secret-env", "S"],
            &[("S", "nope-nope")],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.0, 4, "{} {}", out.1, out.2);
    assert!(
        out.2.contains("invalid_client") && !out.2.contains("nope-nope"),
        "{}",
        out.2
    );
}
