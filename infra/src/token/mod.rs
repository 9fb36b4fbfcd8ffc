//! `bulwark token`: a client of any standard authorization server. Discovery (RFC 8414, then
//! OpenID Connect Discovery), the client's credential (a secret from the environment, a
//! private_key_jwt assertion signed here, or a federated workload token), then either a
//! client_credentials request or the device authorization grant (RFC 8628). Requests go through
//! `shared::fetch::OperatorClient` (https or loopback http, no redirects, 10 s, 64 KiB).
//!
//! Exit codes (README "`bulwark token`", `bulwark token --help`): 0 a token, 2 usage, 3
//! discovery or network, 4 the server refused, 1 anything else. No secret, key or assertion is
//! ever printed, in an answer or an error.

use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use shared::domain::secret::Secret;
use shared::fetch::{Answer, FetchError, OperatorClient, check_operator_url};
use shared::keys::client_key::ClientKey;

use crate::cli::TokenArgs;

pub mod device;

/// How `bulwark token` ended, when not with a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// 2: the command line or its local inputs (env vars, files).
    Usage(String),
    /// 3: discovery or the network.
    Network(String),
    /// 4: the authorization server said no (`error`, `error_description`).
    Refused {
        error: String,
        description: Option<String>,
    },
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Network(_) => 3,
            Failure::Refused { .. } => 4,
        }
    }
}

/// What the server's own words may contain before they reach a terminal: no control
/// characters, and never a credential this run sent.
fn clean(s: &str, secrets: &[&str]) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, "<redacted>");
    }
    out
}

/// The run: prints the token (or the response with `json`), or what went wrong; its exit code.
pub async fn run(args: &TokenArgs, issuer: Option<&str>, json: bool) -> ExitCode {
    let client = OperatorClient::new();
    let mut secrets: Vec<String> = Vec::new();
    let result = token(&client, args, issuer, &mut secrets).await;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    match result {
        Ok(response) => {
            if json {
                out(&response.to_string());
            } else {
                out(response["access_token"].as_str().unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            let (error, description) = match &f {
                Failure::Usage(m) => ("usage".to_string(), Some(m.clone())),
                Failure::Network(m) => ("discovery_or_network".to_string(), Some(m.clone())),
                Failure::Refused { error, description } => (
                    clean(error, &secrets),
                    description.as_deref().map(|d| clean(d, &secrets)),
                ),
            };
            match (&f, &description) {
                (Failure::Refused { .. }, Some(d)) => {
                    eprintln!("error: the authorization server refused: {error}: {d}")
                }
                (Failure::Refused { .. }, None) => {
                    eprintln!("error: the authorization server refused: {error}")
                }
                (Failure::Usage(_) | Failure::Network(_), d) => {
                    eprintln!("error: {}", d.as_deref().unwrap_or(""))
                }
            }
            if json {
                out(
                    &json!({"error": error, "error_description": description, "exit_code": f.code()})
                        .to_string(),
                );
            }
            ExitCode::from(f.code())
        }
    }
}

/// A line on standard output; a reader that went away is no reason to panic.
fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// How the client proves who it is, read before any request.
enum Credential {
    None,
    Secret {
        secret: Secret,
        post: Option<bool>,
    },
    Key {
        key: ClientKey,
        kid: Option<String>,
        to_issuer: bool,
    },
    Federated(Secret),
}

/// The environment variable `var`, which must be set and not empty.
fn env_var(var: &str, what: &str) -> Result<String, Failure> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(Failure::Usage(format!(
            "{what}: the environment variable {var} is empty"
        ))),
        Err(_) => Err(Failure::Usage(format!(
            "{what}: the environment variable {var} is not set (or not UTF-8)"
        ))),
    }
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("{what} {}: {}", path.display(), e.kind())))
}

fn credential(args: &TokenArgs, secrets: &mut Vec<String>) -> Result<Credential, Failure> {
    if let Some(var) = &args.client_secret_env {
        let secret = env_var(var, "--client-secret-env")?;
        secrets.push(secret.clone());
        let post = args.auth_method.as_deref().map(|m| m == "client_secret_post");
        return Ok(Credential::Secret {
            secret: Secret::new(secret),
            post,
        });
    }
    if let Some(path) = &args.private_key_file {
        let pem = read_file(path, "--private-key-file")?;
        let key = ClientKey::from_pem(&pem)
            .map_err(|e| Failure::Usage(format!("--private-key-file {}: {e}", path.display())))?;
        return Ok(Credential::Key {
            key,
            kid: args.kid.clone(),
            to_issuer: args.assertion_audience == "issuer",
        });
    }
    let federated = match (&args.federated_token_file, &args.federated_token_env) {
        (Some(path), _) => {
            let bytes = read_file(path, "--federated-token-file")?;
            Some(String::from_utf8(bytes).map_err(|_| {
                Failure::Usage(format!("--federated-token-file {}: not text", path.display()))
            })?)
        }
        (None, Some(var)) => Some(env_var(var, "--federated-token-env")?),
        (None, None) => None,
    };
    if let Some(token) = federated {
        let token = token.trim().to_string();
        if token.is_empty() || token.split('.').count() != 3 {
            return Err(Failure::Usage("the federated token is not a JWT".into()));
        }
        secrets.push(token.clone());
        return Ok(Credential::Federated(Secret::new(token)));
    }
    if args.device {
        return Ok(Credential::None);
    }
    Err(Failure::Usage(
        "give the client's credential: --client-secret-env, --private-key-file, --federated-token-file or --federated-token-env (or --device for a public client)".into(),
    ))
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A request's client authentication: an `Authorization` header and form fields. Each call
/// signs a fresh assertion (its `jti` is single-use).
struct Authenticated {
    header: Option<String>,
    form: Vec<(&'static str, String)>,
}

/// RFC 6749 §2.3.1: both parts form-urlencoded before Basic's base64.
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Credential {
    fn authenticate(
        &self,
        client_id: &str,
        meta: &Metadata,
        secrets: &mut Vec<String>,
    ) -> Result<Authenticated, Failure> {
        let id = ("client_id", client_id.to_string());
        Ok(match self {
            Credential::None => Authenticated {
                header: None,
                form: vec![id],
            },
            Credential::Secret { secret, post } => {
                let post = match post {
                    Some(p) => *p,
                    None => meta.prefers_post(),
                };
                if post {
                    Authenticated {
                        header: None,
                        form: vec![id, ("client_secret", secret.expose().to_string())],
                    }
                } else {
                    Authenticated {
                        header: Some(basic(client_id, secret.expose())),
                        form: vec![],
                    }
                }
            }
            Credential::Key { key, kid, to_issuer } => {
                let (typ, aud) = if *to_issuer {
                    (Some("client-authentication+jwt"), meta.issuer.as_str())
                } else {
                    (Some("JWT"), meta.token_endpoint.as_str())
                };
                let iat = now();
                let claims = json!({
                    "iss": client_id, "sub": client_id, "aud": aud,
                    "iat": iat, "exp": iat + 60, "jti": shared::secret::random_id(16),
                });
                let jws = key
                    .sign(typ, kid.as_deref(), &claims)
                    .map_err(|e| Failure::Usage(format!("--private-key-file: {e}")))?;
                secrets.push(jws.clone());
                Authenticated {
                    header: None,
                    form: vec![
                        id,
                        ("client_assertion_type", ASSERTION_TYPE.into()),
                        ("client_assertion", jws),
                    ],
                }
            }
            Credential::Federated(token) => Authenticated {
                header: None,
                form: vec![
                    id,
                    ("client_assertion_type", ASSERTION_TYPE.into()),
                    ("client_assertion", token.expose().to_string()),
                ],
            },
        })
    }
}

/// What discovery said.
#[derive(Debug)]
pub struct Metadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub device_authorization_endpoint: Option<String>,
    pub auth_methods: Option<Vec<String>>,
}

impl Metadata {
    /// client_secret_basic, unless the issuer lists methods and post without basic.
    fn prefers_post(&self) -> bool {
        self.auth_methods.as_ref().is_some_and(|m| {
            m.iter().any(|m| m == "client_secret_post") && !m.iter().any(|m| m == "client_secret_basic")
        })
    }
}

/// Where an issuer's metadata may be: RFC 8414 §3.1 (the well-known suffix inserted before the
/// issuer's path), then OpenID Connect Discovery 1.0 §4 (appended to it).
pub fn discovery_urls(issuer: &url::Url) -> [String; 2] {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ]
}

fn network(e: FetchError, what: &str) -> Failure {
    Failure::Network(format!("{what}: {e}"))
}

async fn discover(client: &OperatorClient, issuer: &str) -> Result<Metadata, Failure> {
    let u = check_operator_url(issuer).map_err(|e| Failure::Usage(format!("--issuer {issuer}: {e}")))?;
    if u.query().is_some() || u.fragment().is_some() {
        return Err(Failure::Usage(format!(
            "--issuer {issuer}: an issuer has no query or fragment (RFC 8414 §2)"
        )));
    }
    let mut tried = Vec::new();
    for url in discovery_urls(&u) {
        let Answer { status, json } = client
            .get_json(&url)
            .await
            .map_err(|e| network(e, &format!("discovery at {url}")))?;
        if status != 200 || !json.is_object() {
            tried.push(format!("{url}: status {status}"));
            continue;
        }
        let named = json["issuer"].as_str().unwrap_or("(none)");
        if named != issuer {
            return Err(Failure::Network(format!(
                "discovery at {url} names issuer {:?}, not {issuer:?}: refused (RFC 8414 §3.3)",
                clean(named, &[])
            )));
        }
        let token_endpoint = json["token_endpoint"]
            .as_str()
            .ok_or_else(|| Failure::Network(format!("discovery at {url} has no token_endpoint")))?
            .to_string();
        return Ok(Metadata {
            issuer: issuer.to_string(),
            token_endpoint,
            device_authorization_endpoint: json["device_authorization_endpoint"].as_str().map(str::to_string),
            auth_methods: json["token_endpoint_auth_methods_supported"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect()),
        });
    }
    Err(Failure::Network(format!(
        "no discovery document for {issuer} ({})",
        tried.join("; ")
    )))
}

/// An answer from the token (or device authorization) endpoint: what was asked for, or the
/// server's refusal.
fn answer(a: Answer, wanted: &str, at: &str) -> Result<Value, Failure> {
    if a.status == 200 && a.json[wanted].is_string() {
        return Ok(a.json);
    }
    match a.json["error"].as_str() {
        Some(error) => Err(Failure::Refused {
            error: error.to_string(),
            description: a.json["error_description"].as_str().map(str::to_string),
        }),
        None => Err(Failure::Network(format!(
            "{at} answered status {} without {wanted} or an error",
            a.status
        ))),
    }
}

async fn token(
    client: &OperatorClient,
    args: &TokenArgs,
    issuer: Option<&str>,
    secrets: &mut Vec<String>,
) -> Result<Value, Failure> {
    let issuer = issuer.ok_or_else(|| Failure::Usage("--issuer is required (or BULWARK_ISSUER)".into()))?;
    let cred = credential(args, secrets)?;
    let meta = discover(client, issuer).await?;
    let mut params: Vec<(&'static str, String)> = Vec::new();
    if let Some(s) = &args.scope {
        params.push(("scope", s.clone()));
    }
    for r in &args.resources {
        params.push(("resource", r.clone()));
    }
    let post = |url: String, auth: Authenticated, mut form: Vec<(&'static str, String)>| async move {
        form.extend(auth.form);
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        client
            .post_form(&url, auth.header.as_deref(), &pairs)
            .await
            .map_err(|e| network(e, &url))
    };
    if !args.device {
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        form.extend(params);
        let auth = cred.authenticate(&args.client_id, &meta, secrets)?;
        let a = post(meta.token_endpoint.clone(), auth, form).await?;
        return answer(a, "access_token", "the token endpoint");
    }
    let endpoint = meta.device_authorization_endpoint.clone().ok_or_else(|| {
        Failure::Network(format!(
            "{issuer} offers no device authorization (no device_authorization_endpoint in its discovery document)"
        ))
    })?;
    let auth = cred.authenticate(&args.client_id, &meta, secrets)?;
    let a = post(endpoint.clone(), auth, params).await?;
    let d = answer(a, "device_code", "the device authorization endpoint")?;
    let (Some(device_code), Some(user_code), Some(uri)) = (
        d["device_code"].as_str(),
        d["user_code"].as_str(),
        d["verification_uri"].as_str(),
    ) else {
        return Err(Failure::Network(
            "the device authorization answer lacks user_code or verification_uri".into(),
        ));
    };
    secrets.push(device_code.to_string());
    match d["verification_uri_complete"].as_str() {
        Some(complete) => eprintln!(
            "To sign in, open {} (the code {} is filled in), or open {} and enter {}.",
            clean(complete, &[]),
            clean(user_code, &[]),
            clean(uri, &[]),
            clean(user_code, &[])
        ),
        None => eprintln!(
            "To sign in, open {} and enter {}.",
            clean(uri, &[]),
            clean(user_code, &[])
        ),
    }
    let mut poll = device::Poll::new(d["interval"].as_u64(), d["expires_in"].as_u64());
    let mut wait = poll.first_wait();
    loop {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let form = vec![
            ("grant_type", device::GRANT_TYPE.to_string()),
            ("device_code", device_code.to_string()),
        ];
        let auth = cred.authenticate(&args.client_id, &meta, secrets)?;
        let a = post(meta.token_endpoint.clone(), auth, form).await?;
        match poll.next(a.status, &a.json, wait) {
            device::Next::Wait(secs) => wait = secs,
            device::Next::Done => return answer(a, "access_token", "the token endpoint"),
            device::Next::Refused => return answer(a, "access_token", "the token endpoint"),
            device::Next::Expired => {
                return Err(Failure::Refused {
                    error: "expired_token".into(),
                    description: Some("the device code expired before the user approved".into()),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_insert_for_rfc8414_and_append_for_openid() {
        let u = |s: &str| discovery_urls(&url::Url::parse(s).unwrap());
        assert_eq!(
            u("https://h.example"),
            [
                "https://h.example/.well-known/oauth-authorization-server",
                "https://h.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            u("https://h.example/t/acme"),
            [
                "https://h.example/.well-known/oauth-authorization-server/t/acme",
                "https://h.example/t/acme/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            u("http://127.0.0.1:8080/"),
            [
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server",
                "http://127.0.0.1:8080/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn basic_form_encodes_both_parts() {
        assert_eq!(
            basic("a:b", "s p+%"),
            format!("Basic {}", STANDARD.encode("a%3Ab:s+p%2B%25"))
        );
    }

    #[test]
    fn the_servers_words_lose_control_characters_and_our_secrets() {
        assert_eq!(
            clean("bad\x1b[31m secret s3cr3t", &["s3cr3t", ""]),
            "bad [31m secret <redacted>"
        );
    }

    #[test]
    fn a_secret_goes_by_basic_unless_only_post_is_listed() {
        let m = |methods: Option<&[&str]>| Metadata {
            issuer: "i".into(),
            token_endpoint: "t".into(),
            device_authorization_endpoint: None,
            auth_methods: methods.map(|m| m.iter().map(|s| s.to_string()).collect()),
        };
        assert!(!m(None).prefers_post());
        assert!(!m(Some(&["client_secret_basic", "client_secret_post"])).prefers_post());
        assert!(m(Some(&["client_secret_post", "private_key_jwt"])).prefers_post());
        assert!(!m(Some(&["private_key_jwt"])).prefers_post());
    }
}
