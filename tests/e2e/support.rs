//! The harness: start `bulwark serve` as a real process on a free loopback port, run CLI
//! commands against the same data directory, and stop everything by PID.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `bulwark` binary under test: the one Cargo just built, or `BULWARK_E2E_BIN` (to run this
/// suite against another build, e.g. an earlier commit's, to see which tests it fails).
pub static BIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::var("BULWARK_E2E_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_bulwark").to_string())
});

/// Where a test's state lives: the embedded store (default) or, with
/// `BULWARK_E2E_BACKEND=dynamodb`, DynamoDB and KMS on moto (the test script runs the suite
/// both ways).
enum Backend {
    Embedded,
    Dynamo { prefix: String, signing: Signing },
}

/// How a DynamoDB-backed data dir signs: a stack's `SigningMode`.
enum Signing {
    /// `kms`: KMS `Sign` with the first key; all are published.
    Kms(std::sync::Mutex<Vec<String>>),
    /// `kms-wrapped` (the stack default): a key ring in the `keys` table, wrapped under this
    /// symmetric key; `previous_kms`: after a switch from kms, the former KMS keys, only
    /// published.
    Wrapped {
        wrapping_key_id: String,
        previous_kms: Vec<String>,
    },
}

/// A data directory (and, on the DynamoDB backend, tables and a KMS key of its own) shared by
/// a server and the CLI.
pub struct DataDir {
    dir: tempfile::TempDir,
    backend: Backend,
    /// Tenants created through [`DataDir::cli`] (for the tenant-issuer mode of [`Server`]).
    tenants: std::sync::Mutex<Vec<String>>,
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

pub fn moto_endpoint() -> String {
    std::env::var("BULWARK_TEST_AWS_ENDPOINT")
        .expect("BULWARK_TEST_AWS_ENDPOINT is not set: run `bash infra/test.sh`, which starts moto")
}

/// `python infra/local_aws.py ARGS...` in the project venv; its stdout.
fn local_aws(args: &[&str]) -> String {
    let out = Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("infra/local_aws.py"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run infra/local_aws.py (the venv comes from infra/venv.sh)");
    assert!(
        out.status.success(),
        "local_aws.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl DataDir {
    pub fn new() -> Self {
        match std::env::var("BULWARK_E2E_BACKEND").as_deref() {
            Ok("dynamodb") => Self::new_dynamodb(),
            Ok("embedded") | Err(_) => Self {
                dir: tempfile::tempdir().expect("temp dir"),
                backend: Backend::Embedded,
                tenants: Default::default(),
            },
            Ok(other) => panic!("BULWARK_E2E_BACKEND={other}: expected embedded or dynamodb"),
        }
    }

    /// A data dir on the DynamoDB backend (moto), whatever `BULWARK_E2E_BACKEND` says, signing
    /// as `BULWARK_E2E_SIGNING` says (`kms-wrapped` when unset, as a stack does by default).
    pub fn new_dynamodb() -> Self {
        match std::env::var("BULWARK_E2E_SIGNING").as_deref() {
            Ok("kms") => Self::new_dynamodb_with("kms"),
            Ok("kms-wrapped") | Err(_) => Self::new_dynamodb_with("kms-wrapped"),
            Ok(other) => panic!("BULWARK_E2E_SIGNING={other}: expected kms or kms-wrapped"),
        }
    }

    /// A data dir on the DynamoDB backend with this `SigningMode`. kms-wrapped: a first key is
    /// made with `bulwark keys rotate`, as an operator does after the first deploy.
    pub fn new_dynamodb_with(mode: &str) -> Self {
        let prefix = format!("e2e-{}-", unique());
        let key = local_aws(&["setup", &moto_endpoint(), &prefix, "template.yaml"]);
        let signing = match mode {
            "kms" => Signing::Kms(std::sync::Mutex::new(vec![key])),
            "kms-wrapped" => Signing::Wrapped {
                wrapping_key_id: local_aws(&["wrapping-key", &moto_endpoint(), "template.yaml"]),
                previous_kms: vec![],
            },
            other => panic!("SigningMode {other}"),
        };
        let data = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            backend: Backend::Dynamo { prefix, signing },
            tenants: Default::default(),
        };
        if mode == "kms-wrapped" {
            data.cli(&["keys", "rotate"]);
        }
        data
    }

    /// An embedded data dir holding a copy of `tests/fixtures/<name>` (a store and key that an
    /// earlier release wrote), whatever `BULWARK_E2E_BACKEND` says; `tenants` are the ones it holds.
    pub fn from_fixture(name: &str, tenants: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for entry in std::fs::read_dir(repo().join("tests/fixtures").join(name)).expect("fixture") {
            let from = entry.expect("fixture entry").path();
            let to = dir.path().join(from.file_name().expect("file name"));
            std::fs::copy(&from, &to).expect("copy the fixture");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join("keys.json");
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        Self {
            dir,
            backend: Backend::Embedded,
            tenants: std::sync::Mutex::new(tenants.iter().map(|t| t.to_string()).collect()),
        }
    }

    /// The stack name a DynamoDB data dir stands for (its table prefix without the dash).
    pub fn stack(&self) -> String {
        match &self.backend {
            Backend::Embedded => panic!("only the DynamoDB backend is a stack"),
            Backend::Dynamo { prefix, .. } => prefix.trim_end_matches('-').to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// DynamoDB backend: the environment a Lambda function needs to use this data dir's
    /// tables and keys, as `template.yaml` sets it for a function that does not sign
    /// (`BULWARK_TABLE_PREFIX`, `BULWARK_SIGNING_MODE`, `BULWARK_STACK` or `BULWARK_KMS_KEY_IDS`).
    pub fn lambda_env(&self) -> Vec<(&'static str, String)> {
        match &self.backend {
            Backend::Embedded => panic!("a Lambda function needs the DynamoDB backend"),
            Backend::Dynamo { prefix, signing } => {
                let mut env = vec![("BULWARK_TABLE_PREFIX", prefix.clone())];
                match signing {
                    Signing::Kms(ids) => {
                        env.push(("BULWARK_SIGNING_MODE", "kms".into()));
                        env.push(("BULWARK_KMS_KEY_IDS", ids.lock().unwrap().join(",")));
                    }
                    Signing::Wrapped { previous_kms, .. } => {
                        env.push(("BULWARK_SIGNING_MODE", "kms-wrapped".into()));
                        env.push(("BULWARK_STACK", self.stack()));
                        if !previous_kms.is_empty() {
                            env.push(("BULWARK_PREVIOUS_KMS_KEY_IDS", previous_kms.join(",")));
                        }
                    }
                }
                env
            }
        }
    }

    /// As [`DataDir::lambda_env`], for the function that signs (the token function): in
    /// kms-wrapped mode it alone is told the wrapping key.
    pub fn lambda_env_signing(&self) -> Vec<(&'static str, String)> {
        let mut env = self.lambda_env();
        if let Backend::Dynamo {
            signing: Signing::Wrapped { wrapping_key_id, .. },
            ..
        } = &self.backend
        {
            env.push(("BULWARK_WRAPPING_KEY_ID", wrapping_key_id.clone()));
        }
        env
    }
    pub fn is_dynamodb(&self) -> bool {
        matches!(self.backend, Backend::Dynamo { .. })
    }

    /// Backend flags and environment for `bulwark` processes over this data dir.
    fn backend_args(&self) -> (Vec<String>, Vec<(&'static str, String)>) {
        match &self.backend {
            Backend::Embedded => (vec![], vec![]),
            Backend::Dynamo { prefix, signing } => (
                [
                    vec![
                        "--backend".into(),
                        "dynamodb".into(),
                        "--table-prefix".into(),
                        prefix.clone(),
                    ],
                    match signing {
                        Signing::Kms(ids) => vec![
                            "--signing-mode".into(),
                            "kms".into(),
                            "--kms-key-ids".into(),
                            ids.lock().unwrap().join(","),
                        ],
                        Signing::Wrapped {
                            wrapping_key_id,
                            previous_kms,
                        } => [
                            vec![
                                "--signing-mode".into(),
                                "kms-wrapped".into(),
                                "--wrapping-key-id".into(),
                                wrapping_key_id.clone(),
                            ],
                            if previous_kms.is_empty() {
                                vec![]
                            } else {
                                vec!["--previous-kms-key-ids".into(), previous_kms.join(",")]
                            },
                        ]
                        .concat(),
                    },
                ]
                .concat(),
                vec![
                    ("AWS_ENDPOINT_URL", moto_endpoint()),
                    ("AWS_REGION", "us-east-1".into()),
                    ("AWS_ACCESS_KEY_ID", "testing".into()),
                    ("AWS_SECRET_ACCESS_KEY", "testing".into()),
                ],
            ),
        }
    }

    /// A kms data dir switched to kms-wrapped as README says: a wrapping key (the stack's
    /// `WrappingKey`, which exists in both modes), the first wrapped key made with `bulwark keys
    /// rotate`, and the former KMS signing key kept published (`PreviousSigningKeyArn`).
    /// Returns the former KMS key id and the new kid.
    pub fn switch_to_kms_wrapped(&mut self) -> (String, String) {
        let Backend::Dynamo { signing, .. } = &mut self.backend else {
            panic!("only a DynamoDB data dir has a SigningMode");
        };
        let Signing::Kms(ids) = signing else {
            panic!("already kms-wrapped");
        };
        let former = ids.get_mut().unwrap()[0].clone();
        *signing = Signing::Wrapped {
            wrapping_key_id: local_aws(&["wrapping-key", &moto_endpoint(), "template.yaml"]),
            previous_kms: vec![former.clone()],
        };
        let kid = self.cli(&["keys", "rotate"])["active_kid"]
            .as_str()
            .unwrap()
            .to_string();
        (former, kid)
    }

    /// Rotate the signing key. Embedded, and DynamoDB with kms-wrapped: `bulwark keys rotate`
    /// (a running server picks it up: at once from a key file, within a minute from the key
    /// ring); returns the new kid. DynamoDB with kms: a new KMS key first in the key list, used
    /// by servers started afterwards, as by a redeployed stack; returns None.
    pub fn rotate_keys(&self) -> Option<String> {
        match &self.backend {
            Backend::Embedded
            | Backend::Dynamo {
                signing: Signing::Wrapped { .. },
                ..
            } => Some(
                self.cli(&["keys", "rotate"])["active_kid"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            Backend::Dynamo {
                signing: Signing::Kms(ids),
                ..
            } => {
                let key = local_aws(&["key", &moto_endpoint(), "template.yaml"]);
                ids.lock().unwrap().insert(0, key);
                None
            }
        }
    }

    /// Run `bulwark --json --data-dir D ARGS...`; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> Value {
        let (ok, v, stderr) = self.cli_raw(args, &[]);
        assert!(ok, "bulwark {args:?} failed: {v} {stderr}");
        v
    }

    /// Run a CLI command; (success, stdout JSON, stderr).
    pub fn cli_raw(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, Value, String) {
        if let ["tenant", "create", name, ..] = args {
            self.tenants.lock().unwrap().push(name.to_string());
        }
        let (backend_args, backend_env) = self.backend_args();
        let out = Command::new(&*BIN)
            .arg("--json")
            .arg("--data-dir")
            .arg(self.path())
            .args(&backend_args)
            .args(args)
            .envs(backend_env.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().copied())
            .env_remove("BULWARK_ISSUER")
            .output()
            .expect("run bulwark");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (
            out.status.success(),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run a CLI command with `input` on its stdin; panics unless it succeeds.
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Value {
        use std::io::Write;
        let (backend_args, backend_env) = self.backend_args();
        let mut child = Command::new(&*BIN)
            .arg("--json")
            .arg("--data-dir")
            .arg(self.path())
            .args(&backend_args)
            .args(args)
            .envs(backend_env.iter().map(|(k, v)| (*k, v.as_str())))
            .env_remove("BULWARK_ISSUER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bulwark");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("bulwark output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "bulwark {args:?} failed: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null)
    }

    /// Create a tenant (with scopes `api:read api:write`) and a confidential client.
    pub fn tenant_with_client(&self, tenant: &str) -> TestClient {
        self.tenant_with_client_for(tenant, None)
    }

    /// [`Self::tenant_with_client`], with `audience` as the tenant's default audience.
    pub fn tenant_with_client_for(&self, tenant: &str, audience: Option<&str>) -> TestClient {
        let mut create = vec!["tenant", "create", tenant];
        if let Some(a) = audience {
            create.extend_from_slice(&["--audience", a]);
        }
        self.cli(&create);
        self.cli(&["scope", "add", "--tenant", tenant, "api:read", "Read the API"]);
        self.cli(&["scope", "add", "--tenant", tenant, "api:write", "Write the API"]);
        self.client(tenant, "api:read api:write", "client_secret_basic")
    }

    /// A confidential client that is the resource server for `resources` of `tenant` (none
    /// named: the tenant's default audience, `urn:bulwark:tenant:<tenant>`): it may introspect
    /// other clients' access tokens for them.
    pub fn resource_server(&self, tenant: &str, resources: &[&str]) -> TestClient {
        let default = format!("urn:bulwark:tenant:{tenant}");
        let resources: Vec<&str> = if resources.is_empty() {
            vec![default.as_str()]
        } else {
            resources.to_vec()
        };
        let mut args = vec![
            "client",
            "create",
            "--tenant",
            tenant,
            "--name",
            "resource server",
            "--grant-type",
            "client_credentials",
        ];
        for r in &resources {
            args.extend_from_slice(&["--resource-server-for", r]);
        }
        TestClient::from_registration(&self.cli(&args))
    }

    pub fn client(&self, tenant: &str, scope: &str, method: &str) -> TestClient {
        let v = self.cli(&[
            "client",
            "create",
            "--tenant",
            tenant,
            "--name",
            "test client",
            "--grant-type",
            "client_credentials",
            "--scope",
            scope,
            "--auth-method",
            method,
        ]);
        TestClient::from_registration(&v)
    }
}

/// A registered client's credentials.
#[derive(Clone, Debug, Default)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
    /// The RFC 7592 registration access token: DCR clients only.
    pub registration_token: Option<String>,
    /// The resources it is the resource server for (whose tokens it may introspect).
    pub serves: Vec<String>,
}

impl TestClient {
    pub fn from_registration(v: &Value) -> Self {
        Self {
            id: v["client_id"].as_str().expect("client_id").to_string(),
            secret: v["client_secret"].as_str().expect("client_secret").to_string(),
            registration_token: v["registration_access_token"].as_str().map(str::to_string),
            serves: v["resource_server_for"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
        }
    }
}

/// A running `bulwark serve`; killed (by PID) and reaped on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub issuer: String,
    /// `/t/{tenant}` in tenant-issuer mode (see [`Server::start_with`]), else empty.
    prefix: String,
    pub log: PathBuf,
    pub stdout_lines: Vec<String>,
}

impl Server {
    /// Start a server on a free port over `data`.
    pub fn start(data: &DataDir) -> Self {
        Self::start_with(data, &[], &[])
    }

    pub fn start_with(data: &DataDir, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = data
            .path()
            .join(format!("serve-{}.log", crate::support::unique()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let (backend_args, backend_env) = data.backend_args();
        let mut child = Command::new(&*BIN)
            .args(["--json", "--data-dir"])
            .arg(data.path())
            .args(&backend_args)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra_args)
            .envs(backend_env.iter().map(|(k, v)| (*k, v.as_str())))
            // A tenant's config changed by another process (the CLI) reaches the token path
            // within this bound; tests that change it under a running server wait it out
            // (`after_tenant_change`). Production's default is 60.
            .env("BULWARK_TENANT_CACHE_SECS", TENANT_CACHE_SECS)
            .envs(env.iter().copied())
            .env_remove("BULWARK_ISSUER")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn bulwark serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed its address");
        let v: Value = serde_json::from_str(&first).expect("first line is JSON");
        let base = v["listening"].as_str().expect("listening").to_string();
        let mut issuer = v["issuer"].as_str().expect("issuer").to_string();
        // Tenant-issuer mode (`BULWARK_E2E_ISSUER=tenant`): the suite talks to the first tenant
        // created so far through its own issuer, `{base}/t/{tenant}`, for every OAuth endpoint
        // and discovery document, and expects that `iss` everywhere.
        let prefix = match (
            std::env::var("BULWARK_E2E_ISSUER").as_deref(),
            data.tenants.lock().unwrap().first(),
        ) {
            (Ok("tenant"), Some(t)) => format!("/t/{t}"),
            (Ok("tenant") | Ok("shared") | Err(_), _) => String::new(),
            (Ok(other), _) => panic!("BULWARK_E2E_ISSUER={other}: expected shared or tenant"),
        };
        issuer.push_str(&prefix);
        let mut stdout_lines = vec![first];
        if extra_args.contains(&"--demo") {
            stdout_lines.push(rx.recv_timeout(Duration::from_secs(30)).expect("demo line"));
        }
        let server = Self {
            child,
            base,
            issuer,
            prefix,
            log,
            stdout_lines,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = self.base.trim_start_matches("http://").to_string();
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server at {} did not accept connections", self.base);
    }

    /// `path` on this server; in tenant-issuer mode the OAuth endpoints, discovery and the
    /// account page go to the tenant's issuer.
    /// A path that names a tenant's issuer itself (`/t/...`, or discovery by path insertion)
    /// is left as it is.
    pub fn url(&self, path: &str) -> String {
        let tenant_path = ["/oauth2/", "/.well-known/", "/account"]
            .iter()
            .any(|p| path.starts_with(p))
            && !path.contains("/t/");
        if tenant_path && !self.prefix.is_empty() {
            format!("{}{}{path}", self.base, self.prefix)
        } else {
            format!("{}{path}", self.base)
        }
    }
}

impl Server {
    /// `path` on the shared issuer, in either mode (the console and the admin API live there).
    pub fn shared_url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Whether the suite runs against a tenant's own issuer (`BULWARK_E2E_ISSUER=tenant`).
    pub fn is_tenant_issuer(&self) -> bool {
        !self.prefix.is_empty()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tenant-cache bound of every server and function the suite starts (seconds).
pub const TENANT_CACHE_SECS: &str = "1";

/// Wait until a tenant's config changed by another process (the CLI, the admin function) has
/// reached the token path of a running server: the cache bound, plus a second for the clock's
/// whole-second resolution.
pub async fn after_tenant_change() {
    let secs: u64 = TENANT_CACHE_SECS.parse().unwrap();
    tokio::time::sleep(Duration::from_secs(secs + 1)).await;
}

pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Make ring the process's rustls provider (reqwest is built without a provider of its own, as
/// the server's fetcher is), and `jsonwebtoken`'s too ([`jwt`]); every HTTP client a test
/// builds calls this first.
pub fn tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    jwt();
}

/// `jsonwebtoken` is built without a crypto backend of its own (the server's is ring, through
/// `shared::keys::jwt_crypto`): a test that signs or verifies with it directly calls this first.
pub fn jwt() {
    shared::keys::jwt_crypto::install();
}

pub fn http() -> reqwest::Client {
    tls();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A response: status, headers, JSON body (Null if not JSON).
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
        }
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Assert an OAuth error response.
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"], error, "body: {}", self.body);
        assert!(self.body["error_description"].is_string(), "body: {}", self.body);
    }
}

/// POST a form (pairs, url-encoded by reqwest) with optional Basic auth.
pub async fn post_form(url: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Resp {
    let mut req = http().post(url).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    Resp::from(req.send().await.expect("request")).await
}

/// Get a client-credentials token; panics unless 200.
pub async fn token(server: &Server, c: &TestClient, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    let r = post_form(&server.url("/oauth2/token"), Some((&c.id, &c.secret)), &form).await;
    assert_eq!(r.status, 200, "token: {}", r.body);
    r.body
}

/// Introspect `token` as `caller`, which must be entitled to hear about it (the client it was
/// issued to, or the resource server of its audience): to anyone else every token is
/// `{"active": false}`, so an answer from such a caller would prove nothing.
/// [`introspect_as_stranger`] is for the tests of that rule.
pub async fn introspect(server: &Server, caller: &TestClient, token: &str) -> Value {
    if let Some(c) = token.split('.').nth(1).and_then(|p| {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok()?;
        serde_json::from_slice::<Value>(&bytes).ok()
    }) {
        let aud = c["aud"].as_str().unwrap_or_default();
        assert!(
            c["client_id"] == caller.id.as_str() || caller.serves.iter().any(|r| r == aud),
            "test bug: {} may not introspect a token of {} for {aud} (it would be inactive whatever its state)",
            caller.id,
            c["client_id"]
        );
    }
    introspect_as_stranger(server, caller, token).await
}

/// Introspect without checking that the caller may be told anything (for the tests that it is
/// told nothing).
pub async fn introspect_as_stranger(server: &Server, caller: &TestClient, token: &str) -> Value {
    let r = post_form(
        &server.url("/oauth2/introspect"),
        Some((&caller.id, &caller.secret)),
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status, 200, "introspect: {}", r.body);
    r.body
}

/// Decode a JWT part without verifying (for assertions on headers and claims).
pub fn jwt_part(token: &str, i: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(i).expect("jwt part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}
