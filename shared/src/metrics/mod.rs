//! The metrics port: what happened, as the services, the store and the signer see it, counted
//! by whatever sink the composition root plugs in. The Lambda functions write CloudWatch
//! Embedded Metric Format lines ([`emf`]), `bulwark serve` keeps Prometheus counters
//! ([`prometheus`]), everything else counts nothing ([`Noop`]). Callers never know which.
//!
//! **No secret, token, client id, username or user in a metric or a dimension**: an [`Event`]
//! cannot carry one. Its only dimensions are the grant (one of a fixed set of names) and, where
//! the operator turns it on, the tenant — taken from a stored record (the authenticated
//! client's, the tenant loaded for a registration), never from what a stranger sent, since
//! every dimension value is a billed custom metric (docs/decisions/metrics.md).

pub mod emf;
pub mod prometheus;

use std::sync::Arc;
use std::time::Duration;

/// Something worth counting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event<'a> {
    /// The token endpoint issued tokens for `grant` (a grant type's wire name).
    TokenIssued { grant: &'static str, tenant: &'a str },
    /// The token endpoint refused a request for `grant` once the client was authenticated
    /// (an OAuth error, not a 5xx); [`UNSUPPORTED_GRANT`] for a grant type it does not know.
    TokenRefused { grant: &'static str, tenant: &'a str },
    /// A client failed to authenticate (token, introspection, revocation). `tenant`: the
    /// client's, when the client exists.
    ClientAuthFailed { tenant: Option<&'a str> },
    /// A wrong username or password (or an inactive user) at a login form.
    LoginFailed { tenant: &'a str },
    /// A username was locked out for the rest of its throttle window (once per window).
    LoginLockedOut { tenant: &'a str },
    /// A refresh token was used again after its rotation: its family was revoked.
    RefreshReuse { tenant: &'a str },
    /// A client was registered through dynamic registration (RFC 7591).
    Registered { tenant: &'a str },
    /// A request was refused with 429 (the open-registration rate limit).
    RateLimited { tenant: &'a str },
    /// This process started (a Lambda cold start; `bulwark serve` starting).
    ColdStart,
    /// The function answered with a 5xx status (the Lambda adapter counts these: a 500 or 503
    /// is a normal answer to Lambda, not an invocation error).
    ServerError,
    /// One call to the store's backend; `ok` is false when it was unavailable (throttled, 5xx,
    /// unreachable), not when a condition failed.
    StoreCall { ok: bool, latency: Duration },
    /// One call to KMS (Sign, GetPublicKey, Encrypt, Decrypt).
    KmsCall { ok: bool, latency: Duration },
}

/// The grant dimension of a token request whose grant type this server does not know (a
/// stranger's string is never a dimension value).
pub const UNSUPPORTED_GRANT: &str = "unsupported";

/// The metrics port.
pub trait Metrics: Send + Sync {
    fn record(&self, event: Event<'_>);
}

/// Counts nothing (tests, the operator CLI).
#[derive(Clone, Copy, Debug, Default)]
pub struct Noop;

impl Metrics for Noop {
    fn record(&self, _: Event<'_>) {}
}

pub fn noop() -> Arc<dyn Metrics> {
    Arc::new(Noop)
}

/// Every metric, as both sinks name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    TokensIssued,
    TokensRefused,
    ClientAuthFailures,
    LoginFailures,
    LoginLockouts,
    RefreshReuse,
    Registrations,
    RateLimited,
    ColdStarts,
    ServerErrors,
    StoreErrors,
    StoreLatency,
    KmsErrors,
    KmsLatency,
}

/// A metric's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    /// A latency, in milliseconds (EMF) or seconds (Prometheus).
    Latency,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::TokensIssued,
        Metric::TokensRefused,
        Metric::ClientAuthFailures,
        Metric::LoginFailures,
        Metric::LoginLockouts,
        Metric::RefreshReuse,
        Metric::Registrations,
        Metric::RateLimited,
        Metric::ColdStarts,
        Metric::ServerErrors,
        Metric::StoreErrors,
        Metric::StoreLatency,
        Metric::KmsErrors,
        Metric::KmsLatency,
    ];

    /// The CloudWatch metric name (`template.yaml`'s alarms and dashboard use these).
    pub fn name(self) -> &'static str {
        match self {
            Metric::TokensIssued => "TokensIssued",
            Metric::TokensRefused => "TokensRefused",
            Metric::ClientAuthFailures => "ClientAuthFailures",
            Metric::LoginFailures => "LoginFailures",
            Metric::LoginLockouts => "LoginLockouts",
            Metric::RefreshReuse => "RefreshReuse",
            Metric::Registrations => "Registrations",
            Metric::RateLimited => "RateLimited",
            Metric::ColdStarts => "ColdStarts",
            Metric::ServerErrors => "ServerErrors",
            Metric::StoreErrors => "StoreErrors",
            Metric::StoreLatency => "StoreLatency",
            Metric::KmsErrors => "KmsErrors",
            Metric::KmsLatency => "KmsLatency",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::StoreLatency | Metric::KmsLatency => Unit::Latency,
            Metric::TokensIssued
            | Metric::TokensRefused
            | Metric::ClientAuthFailures
            | Metric::LoginFailures
            | Metric::LoginLockouts
            | Metric::RefreshReuse
            | Metric::Registrations
            | Metric::RateLimited
            | Metric::ColdStarts
            | Metric::ServerErrors
            | Metric::StoreErrors
            | Metric::KmsErrors => Unit::Count,
        }
    }

    /// What it counts (Prometheus `# HELP`; README says the same).
    pub fn help(self) -> &'static str {
        match self {
            Metric::TokensIssued => "Token responses issued by the token endpoint, by grant.",
            Metric::TokensRefused => "Token requests refused after client authentication, by grant.",
            Metric::ClientAuthFailures => "Failed client authentications (token, introspection, revocation).",
            Metric::LoginFailures => "Failed logins (unknown user, wrong password, inactive user).",
            Metric::LoginLockouts => "Usernames locked out after too many failed logins (once per window).",
            Metric::RefreshReuse => "Refresh tokens used again after rotation: a token family revoked.",
            Metric::Registrations => "Clients registered through dynamic client registration.",
            Metric::RateLimited => "Requests refused with 429 Too Many Requests.",
            Metric::ColdStarts => "Process starts (Lambda cold starts).",
            Metric::ServerErrors => "Answers with a 5xx status, per function.",
            Metric::StoreErrors => "Store (DynamoDB) calls that failed: throttled, 5xx, unreachable.",
            Metric::StoreLatency => "Latency of store (DynamoDB) calls.",
            Metric::KmsErrors => "KMS calls that failed.",
            Metric::KmsLatency => "Latency of KMS calls.",
        }
    }

    /// Whether it is per function (cold starts, 5xx answers), rather than one for the whole
    /// stack.
    pub fn by_function(self) -> bool {
        matches!(self, Metric::ColdStarts | Metric::ServerErrors)
    }
}

/// A sample's dimensions beyond the metric's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dims {
    pub grant: Option<&'static str>,
    /// Only when the sink was told to keep a per-tenant dimension.
    pub tenant: Option<String>,
    /// The sink's function name is a dimension ([`Metric::by_function`]).
    pub function: bool,
}

impl Event<'_> {
    /// The samples this event is: `(metric, dims, value)`; latencies in milliseconds.
    pub fn samples(&self, per_tenant: bool) -> Vec<(Metric, Dims, f64)> {
        let tenant = |t: Option<&str>| Dims {
            tenant: t.filter(|_| per_tenant).map(str::to_string),
            ..Dims::default()
        };
        let count = |m: Metric, d: Dims| vec![(m, d, 1.0)];
        let per_function = Dims {
            function: true,
            ..Dims::default()
        };
        let call = |errors: Metric, latency_metric: Metric, ok: bool, latency: &Duration| {
            let ms = latency.as_secs_f64() * 1000.0;
            let mut v = vec![(latency_metric, Dims::default(), ms)];
            if !ok {
                v.push((errors, Dims::default(), 1.0));
            }
            v
        };
        match self {
            Event::TokenIssued { grant, tenant: t } => count(
                Metric::TokensIssued,
                Dims {
                    grant: Some(grant),
                    ..tenant(Some(t))
                },
            ),
            Event::TokenRefused { grant, tenant: t } => count(
                Metric::TokensRefused,
                Dims {
                    grant: Some(grant),
                    ..tenant(Some(t))
                },
            ),
            Event::ClientAuthFailed { tenant: t } => count(Metric::ClientAuthFailures, tenant(*t)),
            Event::LoginFailed { tenant: t } => count(Metric::LoginFailures, tenant(Some(t))),
            Event::LoginLockedOut { tenant: t } => count(Metric::LoginLockouts, tenant(Some(t))),
            Event::RefreshReuse { tenant: t } => count(Metric::RefreshReuse, tenant(Some(t))),
            Event::Registered { tenant: t } => count(Metric::Registrations, tenant(Some(t))),
            Event::RateLimited { tenant: t } => count(Metric::RateLimited, tenant(Some(t))),
            Event::ColdStart => count(Metric::ColdStarts, per_function),
            Event::ServerError => count(Metric::ServerErrors, per_function),
            Event::StoreCall { ok, latency } => call(Metric::StoreErrors, Metric::StoreLatency, *ok, latency),
            Event::KmsCall { ok, latency } => call(Metric::KmsErrors, Metric::KmsLatency, *ok, latency),
        }
    }
}

/// Times `call` and records it as `event(ok, latency)`; what `ok` means is the caller's.
pub async fn timed<T, F>(
    metrics: &dyn Metrics,
    call: F,
    ok: impl FnOnce(&T) -> bool,
    event: fn(bool, Duration) -> Event<'static>,
) -> T
where
    F: std::future::Future<Output = T>,
{
    let started = std::time::Instant::now();
    let out = call.await;
    metrics.record(event(ok(&out), started.elapsed()));
    out
}

/// A sink that keeps every event, for tests.
#[derive(Default)]
pub struct Recording(pub std::sync::Mutex<Vec<(Metric, Dims, f64)>>);

impl Recording {
    /// The sum of `metric`'s samples whose dimensions `filter` accepts.
    pub fn sum(&self, metric: Metric, filter: impl Fn(&Dims) -> bool) -> f64 {
        self.0
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(m, d, _)| *m == metric && filter(d))
                    .map(|(_, _, x)| x)
                    .sum()
            })
            .unwrap_or(0.0)
    }
}

impl Metrics for Recording {
    fn record(&self, event: Event<'_>) {
        if let Ok(mut v) = self.0.lock() {
            v.extend(event.samples(true));
        }
    }
}
