//! The one way this server fetches a URL that a stranger chose (a client's `jwks_uri`, later
//! metadata documents): the [`Fetcher`] port and its SSRF-guarded adapter. Besides it, two
//! clients for requests that are not a stranger's: [`HttpTokenEndpoint`] (the console, to our
//! own token endpoint) and [`OperatorClient`] (`bulwark token`, to the issuer the operator names).
//!
//! The guard: https only (plain http only to a loopback address, and only when the issuer
//! itself is loopback http, i.e. a developer's laptop or a test); every address the name
//! resolves to must be public — never loopback (unless as above), private (RFC 1918, ULA),
//! link-local (which holds the cloud metadata service at 169.254.169.254), CGNAT, multicast,
//! unspecified, documentation or otherwise reserved; the connection goes to an address that
//! passed the check (the resolver itself filters, so a name cannot re-resolve elsewhere
//! between check and connect); no redirects; 2 s for the whole request; at most 64 KiB read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::net::ip_allowed;
use url::Url;

/// Largest document read.
pub const MAX_BYTES: usize = 64 * 1024;
/// Time for the whole request (connect, TLS, headers, body).
pub const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    /// The URL or an address it resolves to is not one we fetch from.
    #[error("refused: {0}")]
    Refused(String),
    /// The fetch failed (network, status, size, time, not JSON).
    #[error("failed: {0}")]
    Failed(String),
}

/// Fetch a JSON document.
#[async_trait]
pub trait Fetcher: Send + Sync {
    async fn get_json(&self, url: &str) -> Result<serde_json::Value, FetchError>;

    /// Fetch a JSON document of at most `max_bytes` (≤ [`MAX_BYTES`]), with how long it may be
    /// cached (`Cache-Control: max-age`; `Some(0)` for `no-store`/`no-cache`; `None` if unsaid).
    async fn get_document(&self, url: &str, max_bytes: usize) -> Result<Document, FetchError> {
        let json = self.get_json(url).await?;
        if serde_json::to_vec(&json).map_or(true, |b| b.len() > max_bytes) {
            return Err(FetchError::Failed("too large".into()));
        }
        Ok(Document { json, max_age: None })
    }
}

/// A fetched JSON document and its cache lifetime.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub json: serde_json::Value,
    pub max_age: Option<i64>,
}

/// The cache lifetime a `Cache-Control` header value gives (seconds).
pub fn max_age(cache_control: &str) -> Option<i64> {
    let mut age = None;
    for d in cache_control.split(',') {
        let d = d.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return Some(0);
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            age = v.trim_matches('"').parse::<u32>().ok().map(i64::from);
        }
    }
    age
}

/// Check a URL before fetching it (scheme, host form, port); `Ok` with whether it may go over
/// plain http to loopback.
pub fn check_url(url: &str, allow_loopback_http: bool) -> Result<Url, FetchError> {
    let refused = |why: &str| FetchError::Refused(why.to_string());
    let u = Url::parse(url).map_err(|_| refused("not an absolute URL"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(refused("userinfo in the URL"));
    }
    let host = u.host().ok_or_else(|| refused("no host"))?;
    match u.scheme() {
        "https" => {}
        "http" if allow_loopback_http => {
            let loopback = match &host {
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
                url::Host::Domain(d) => *d == "localhost",
            };
            if !loopback {
                return Err(refused("http only to loopback"));
            }
        }
        _ => return Err(refused("https only")),
    }
    crate::domain::net::check_host(&u, allow_loopback_http).map_err(refused)?;
    Ok(u)
}

/// A resolver that answers only with addresses [`ip_allowed`] accepts.
struct GuardedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| ip_allowed(a.ip(), allow_loopback))
                .collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(std::io::Error::other("the name resolves to no public address"))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// TLS for outbound requests: rustls on ring (the process's one crypto stack, as the AWS SDK's
/// HTTPS client uses: `shared::aws`), the system's root certificates.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: https requests will fail");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A form POST to this server's own token endpoint (the console redeeming its authorization
/// code, as any client of ours does: only the token function signs). The URL is the configured
/// issuer's, never a stranger's, so the SSRF guard does not apply; still no redirects, 5 s for
/// the whole request and at most 64 KiB read.
#[async_trait]
pub trait OwnTokenEndpoint: Send + Sync {
    /// The status and JSON body of `POST url` with `form` as `application/x-www-form-urlencoded`.
    async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, serde_json::Value), FetchError>;
}

/// An HTTP client built on first use, not at cold start: loading the system's root certificates
/// and building a TLS config takes milliseconds that most functions' requests never need.
struct LazyClient {
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    build: fn() -> Result<reqwest::Client, String>,
}

impl LazyClient {
    fn new(build: fn() -> Result<reqwest::Client, String>) -> Self {
        Self {
            client: std::sync::OnceLock::new(),
            build,
        }
    }

    fn get(&self) -> Result<&reqwest::Client, FetchError> {
        self.client
            .get_or_init(|| {
                (self.build)()
                    .inspect_err(|e| tracing::error!(error = %e, "outbound HTTP client unavailable"))
            })
            .as_ref()
            .map_err(|_| FetchError::Failed("no HTTP client".into()))
    }
}

pub struct HttpTokenEndpoint {
    client: LazyClient,
}

impl HttpTokenEndpoint {
    /// The client is built on the first request.
    pub fn new() -> Self {
        Self {
            client: LazyClient::new(|| {
                reqwest::Client::builder()
                    .use_preconfigured_tls(tls_config()?)
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(OWN_TIMEOUT)
                    .connect_timeout(OWN_TIMEOUT)
                    .no_proxy()
                    .user_agent("bulwark-console")
                    .build()
                    .map_err(|e| format!("could not build the HTTP client: {e}"))
            }),
        }
    }
}

impl Default for HttpTokenEndpoint {
    fn default() -> Self {
        Self::new()
    }
}

const OWN_TIMEOUT: Duration = Duration::from_secs(5);

#[async_trait]
impl OwnTokenEndpoint for HttpTokenEndpoint {
    async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, serde_json::Value), FetchError> {
        let failed = |why: &str| FetchError::Failed(why.to_string());
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let client = self.client.get()?;
        let work = async {
            let mut resp = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|_| failed("could not connect"))?;
            let status = resp.status().as_u16();
            let mut bytes = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|_| failed("read failed"))? {
                if bytes.len() + chunk.len() > MAX_BYTES {
                    return Err(failed("too large"));
                }
                bytes.extend_from_slice(&chunk);
            }
            let json = serde_json::from_slice(&bytes).map_err(|_| failed("not JSON"))?;
            Ok((status, json))
        };
        tokio::time::timeout(OWN_TIMEOUT, work)
            .await
            .map_err(|_| failed("timed out"))?
    }
}

/// The operator's own requests (`bulwark token`): discovery and the token and device
/// authorization endpoints of an authorization server the operator named, on their own behalf,
/// not a stranger's — so any host (a private network's issuer too), but https only (plain http
/// only to loopback, [`check_operator_url`]), no redirects (a credential never follows one to
/// another host), 10 s for the whole request, at most [`MAX_BYTES`] read. Its errors never
/// repeat a request's body or headers (they carry the credentials).
pub struct OperatorClient {
    client: LazyClient,
}

/// Time for the whole of one request of [`OperatorClient`].
pub const OPERATOR_TIMEOUT: Duration = Duration::from_secs(10);

/// A response to the operator's request: its status and JSON body (`Null` for an error status
/// whose body is not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub json: serde_json::Value,
}

/// Check a URL the operator's client may reach: https to any host, or http to a loopback
/// address or `localhost`; no userinfo.
pub fn check_operator_url(url: &str) -> Result<Url, FetchError> {
    let refused = |why: &str| FetchError::Refused(why.to_string());
    let u = Url::parse(url).map_err(|_| refused("not an absolute URL"))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(refused("userinfo in the URL"));
    }
    let host = u.host().ok_or_else(|| refused("no host"))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" => {
            let loopback = match &host {
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
                url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
            };
            if loopback {
                Ok(u)
            } else {
                Err(refused("https only (plain http only to loopback)"))
            }
        }
        _ => Err(refused("https only (plain http only to loopback)")),
    }
}

impl OperatorClient {
    /// The client is built on the first request.
    pub fn new() -> Self {
        Self {
            client: LazyClient::new(|| {
                reqwest::Client::builder()
                    .use_preconfigured_tls(tls_config()?)
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(OPERATOR_TIMEOUT)
                    .connect_timeout(OPERATOR_TIMEOUT)
                    .no_proxy()
                    .user_agent(concat!("bulwark-token/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| format!("could not build the HTTP client: {e}"))
            }),
        }
    }

    /// `GET url` for a JSON document.
    pub async fn get_json(&self, url: &str) -> Result<Answer, FetchError> {
        let u = check_operator_url(url)?;
        let client = self.client.get()?;
        self.send(client.get(u).header("accept", "application/json"))
            .await
    }

    /// `POST url` with `form` as `application/x-www-form-urlencoded`, with an `Authorization`
    /// header when one is given.
    pub async fn post_form(
        &self,
        url: &str,
        authorization: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<Answer, FetchError> {
        let u = check_operator_url(url)?;
        let client = self.client.get()?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = client
            .post(u)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, FetchError> {
        let failed = |why: String| FetchError::Failed(why);
        let work = async {
            let mut resp = req.send().await.map_err(|e| {
                failed(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "could not connect".into()
                })
            })?;
            let status = resp.status().as_u16();
            if resp.status().is_redirection() {
                return Err(failed(format!("status {status}: a redirect, not followed")));
            }
            if resp.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
                return Err(failed("too large".into()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|_| failed("read failed".into()))? {
                if body.len() + chunk.len() > MAX_BYTES {
                    return Err(failed("too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            // A refusal's body may be a web server's HTML page: the status says enough (the
            // caller's next step, e.g. discovery's second location, depends on it).
            let json = match serde_json::from_slice(&body) {
                Ok(json) => json,
                Err(_) if (200..300).contains(&status) => {
                    return Err(failed(format!("status {status}, and the body is not JSON")));
                }
                Err(_) => serde_json::Value::Null,
            };
            Ok(Answer { status, json })
        };
        tokio::time::timeout(OPERATOR_TIMEOUT, work)
            .await
            .map_err(|_| failed("timed out".into()))?
    }
}

impl Default for OperatorClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The SSRF-guarded fetcher.
pub struct GuardedFetcher {
    client: LazyClient,
    allow_loopback_http: bool,
}

impl GuardedFetcher {
    /// `allow_loopback_http`: only when the issuer itself is `http://` on loopback. The client
    /// is built on the first fetch.
    pub fn new(allow_loopback_http: bool) -> Self {
        fn build(allow_loopback: bool) -> Result<reqwest::Client, String> {
            reqwest::Client::builder()
                .use_preconfigured_tls(tls_config()?)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .no_proxy()
                .user_agent("bulwark")
                .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
                .build()
                .map_err(|e| format!("could not build the HTTP client: {e}"))
        }
        Self {
            client: LazyClient::new(if allow_loopback_http {
                || build(true)
            } else {
                || build(false)
            }),
            allow_loopback_http,
        }
    }
}

#[async_trait]
impl Fetcher for GuardedFetcher {
    async fn get_json(&self, url: &str) -> Result<serde_json::Value, FetchError> {
        self.fetch(url, MAX_BYTES).await.map(|d| d.json)
    }

    async fn get_document(&self, url: &str, max_bytes: usize) -> Result<Document, FetchError> {
        self.fetch(url, max_bytes.min(MAX_BYTES)).await
    }
}

impl GuardedFetcher {
    async fn fetch(&self, url: &str, max_bytes: usize) -> Result<Document, FetchError> {
        let u = check_url(url, self.allow_loopback_http)?;
        let client = self.client.get()?;
        let failed = |why: String| FetchError::Failed(why);
        let work = async {
            let mut resp = client
                .get(u)
                .header("accept", "application/json, application/jwk-set+json")
                .send()
                .await
                .map_err(|e| {
                    failed(if e.is_timeout() {
                        "timed out".into()
                    } else {
                        "could not connect".into()
                    })
                })?;
            if !resp.status().is_success() {
                return Err(failed(format!("status {}", resp.status().as_u16())));
            }
            if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
                return Err(failed("too large".into()));
            }
            let max_age = resp
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .and_then(max_age);
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|_| failed("read failed".into()))? {
                if body.len() + chunk.len() > max_bytes {
                    return Err(failed("too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            let json = serde_json::from_slice(&body).map_err(|_| failed("not JSON".into()))?;
            Ok(Document { json, max_age })
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| failed("timed out".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let check = |ip: &str, loopback: bool, want: bool| {
            assert_eq!(
                ip_allowed(ip.parse().unwrap(), loopback),
                want,
                "{ip} loopback={loopback}"
            );
        };
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "1.1.1.1",
            "2001:4860:4860::8888",
            "2001:200::1",
        ] {
            check(public, false, true);
        }
        for private in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "192.0.2.1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::a9fe:a9fe",
            "2001:db8::1",
            "ff02::1",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:a00:1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "100::1",
            "2001:10::1",
        ] {
            check(private, true, false);
        }
        check("127.0.0.1", false, false);
        check("127.0.0.1", true, true);
        check("::1", false, false);
        check("::ffff:127.0.0.1", false, false);
    }

    #[test]
    fn cache_control() {
        assert_eq!(max_age("max-age=600"), Some(600));
        assert_eq!(max_age("public, max-age=3600"), Some(3600));
        assert_eq!(max_age("Max-Age=60, must-revalidate"), Some(60));
        assert_eq!(max_age("max-age=600, no-store"), Some(0));
        assert_eq!(max_age("no-cache"), Some(0));
        assert_eq!(max_age("max-age=-5"), None);
        assert_eq!(max_age("max-age=x"), None);
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn operator_urls() {
        let ok = |u: &str| assert!(check_operator_url(u).is_ok(), "{u}");
        let no = |u: &str| assert!(check_operator_url(u).is_err(), "{u}");
        ok("https://auth.example/t/acme");
        ok("https://10.1.2.3/oauth2/token");
        ok("http://127.0.0.1:8080/oauth2/token");
        ok("http://[::1]:8080/");
        ok("http://localhost:8080/");
        no("http://auth.example/");
        no("http://10.1.2.3/");
        no("https://user:pw@auth.example/");
        no("ftp://auth.example/");
        no("file:///etc/passwd");
        no("auth.example");
    }

    #[test]
    fn urls() {
        let ok = |u: &str, l: bool| assert!(check_url(u, l).is_ok(), "{u}");
        let no = |u: &str, l: bool| assert!(check_url(u, l).is_err(), "{u}");
        ok("https://keys.example/jwks.json", false);
        ok("http://127.0.0.1:8123/jwks", true);
        ok("http://localhost:8123/jwks", true);
        no("http://keys.example/jwks.json", false);
        no("http://keys.example/jwks.json", true);
        no("http://127.0.0.1/jwks", false);
        no("https://127.0.0.1/jwks", false);
        no("https://169.254.169.254/latest/meta-data/", false);
        no("https://[fd00:ec2::254]/", false);
        no("https://10.1.2.3/", false);
        no("https://user:pw@keys.example/", false);
        no("ftp://keys.example/", false);
        no("file:///etc/passwd", true);
        no("not a url", false);
    }
}
