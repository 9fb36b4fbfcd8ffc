//! Configuration, read and validated in one place.

use url::Url;

/// Deployment-wide settings. Tenant-level settings (DCR policy, lifetimes, scopes) live in the
/// tenant record instead.
#[derive(Clone, Debug)]
pub struct Config {
    /// The issuer this request is served as, without a trailing slash (`iss` of every token it
    /// issues, base of every endpoint it names): the deployment's shared issuer, or a tenant's
    /// own, `{base}/t/{tenant}`, for a request under that path (see [`Config::scoped`]).
    pub issuer: String,
    /// The deployment's shared issuer (`BULWARK_ISSUER`).
    pub base: String,
    /// The tenant whose issuer this is, for a request under `/t/{tenant}/`: only that tenant's
    /// clients, tokens and users are served there.
    pub tenant_scope: Option<String>,
    /// Default access-token lifetime, seconds (a tenant may override it).
    pub access_token_ttl: i64,
    /// The longest access-token lifetime any tenant may configure; a retired signing key stays in
    /// the JWKS at least this long.
    pub max_access_token_ttl: i64,
    /// Lifetimes of the user-facing artefacts (DESIGN.md "Credentials and tokens").
    pub lifetimes: Lifetimes,
    /// How long the token path may serve a tenant's config from a process's cache, seconds
    /// (`BULWARK_TENANT_CACHE_SECS`, `bulwark serve --tenant-cache-secs`; 0..=60, default 60):
    /// a change to a tenant's policy reaches the token path of every instance within this.
    pub tenant_cache_secs: i64,
}

/// Lifetimes, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    pub code: i64,
    pub refresh_idle: i64,
    pub refresh_absolute: i64,
    pub id_token: i64,
    /// A browser session after login.
    pub session: i64,
    /// A pending authorization request (login and consent pages).
    pub interaction: i64,
    /// How long a redeemed code is remembered, so that a replay can revoke what it issued.
    pub used_code: i64,
    /// A pushed authorization request's `request_uri` (RFC 9126 §2.2 `expires_in`).
    pub pushed_request: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code: 60,
            refresh_idle: 30 * 86_400,
            refresh_absolute: 90 * 86_400,
            id_token: 3600,
            session: 12 * 3600,
            interaction: 600,
            used_code: 86_400,
            pushed_request: 60,
        }
    }
}

/// The AWS resources of a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsResources {
    /// Table names are `<prefix>tenants`, `<prefix>clients`, ... (`<stack>-` in `template.yaml`).
    pub table_prefix: String,
    pub signing: Signing,
}

/// How access tokens are signed (`SigningMode` in `template.yaml`, `BULWARK_SIGNING_MODE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signing {
    /// `kms`: every JWT is signed by KMS `Sign`; the key never leaves KMS. The signing key
    /// first, then previous keys that stay published (`BULWARK_KMS_KEY_IDS`).
    Kms { key_ids: Vec<String> },
    /// `kms-wrapped`: a key kept in the `keys` table as KMS ciphertext bound to
    /// `{stack, kid}`, decrypted once per process (`keys::wrapped`). `BULWARK_STACK` names the
    /// stack; `BULWARK_WRAPPING_KEY_ID` (the symmetric key) is given only to the function that
    /// signs: without it a process only publishes keys. `previous_kms_key_ids`
    /// (`BULWARK_PREVIOUS_KMS_KEY_IDS`, after a switch from `kms`): KMS keys that no longer sign
    /// but stay published until the tokens they signed have expired.
    Wrapped {
        stack: String,
        wrapping_key_id: Option<String>,
        previous_kms_key_ids: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is not set")]
    Missing { name: &'static str },
    #[error("{name} is malformed: {why}")]
    Malformed { name: &'static str, why: String },
}

pub const DEFAULT_ACCESS_TOKEN_TTL: i64 = 3600;
pub const MAX_ACCESS_TOKEN_TTL: i64 = 24 * 3600;
/// The longest a tenant's config may be served from a process's cache, seconds
/// (`BULWARK_TENANT_CACHE_SECS` is at most this; `service::tenant_cache`).
pub const MAX_TENANT_CACHE_SECS: i64 = 60;

impl Config {
    /// A config for `issuer` with the default lifetimes.
    pub fn new(issuer: &str) -> Result<Self, ConfigError> {
        let issuer = validate_issuer(issuer)?;
        Ok(Self {
            base: issuer.clone(),
            issuer,
            tenant_scope: None,
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            max_access_token_ttl: MAX_ACCESS_TOKEN_TTL,
            lifetimes: Lifetimes::default(),
            tenant_cache_secs: MAX_TENANT_CACHE_SECS,
        })
    }

    /// This config with the tenant-cache bound `v` (seconds, `0..=60`; 0: no cache).
    pub fn with_tenant_cache_secs(mut self, v: &str) -> Result<Self, ConfigError> {
        let max = MAX_TENANT_CACHE_SECS;
        self.tenant_cache_secs = match v.trim().parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) => n,
            _ => {
                return Err(ConfigError::Malformed {
                    name: "BULWARK_TENANT_CACHE_SECS",
                    why: format!("expected seconds in 0..={max}"),
                });
            }
        };
        Ok(self)
    }

    /// Read the config from the environment (`BULWARK_ISSUER`, optional
    /// `BULWARK_ACCESS_TOKEN_TTL` and `BULWARK_TENANT_CACHE_SECS`). Used by the Lambda functions at cold start: a missing or
    /// malformed variable fails the start, not the first request.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Config::from_env`], from any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let issuer = get("BULWARK_ISSUER").ok_or(ConfigError::Missing {
            name: "BULWARK_ISSUER",
        })?;
        let mut config = Self::new(&issuer)?;
        if let Some(ttl) = get("BULWARK_ACCESS_TOKEN_TTL") {
            config.access_token_ttl = parse_ttl("BULWARK_ACCESS_TOKEN_TTL", &ttl)?;
        }
        if let Some(secs) = get("BULWARK_TENANT_CACHE_SECS") {
            config = config.with_tenant_cache_secs(&secs)?;
        }
        Ok(config)
    }

    /// Where the AWS adapters find their resources (Lambda: from the environment).
    pub fn aws_from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<AwsResources, ConfigError> {
        let prefix = get("BULWARK_TABLE_PREFIX").ok_or(ConfigError::Missing {
            name: "BULWARK_TABLE_PREFIX",
        })?;
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ConfigError::Malformed {
                name: "BULWARK_TABLE_PREFIX",
                why: "DynamoDB table names are [A-Za-z0-9_.-]".into(),
            });
        }
        let signing = match get("BULWARK_SIGNING_MODE").as_deref().map(str::trim) {
            None | Some("kms") => {
                if get("BULWARK_PREVIOUS_KMS_KEY_IDS").is_some_and(|v| !v.trim().is_empty()) {
                    return Err(ConfigError::Malformed {
                        name: "BULWARK_PREVIOUS_KMS_KEY_IDS",
                        why: "only with kms-wrapped (in kms mode, previous keys follow the signing key in BULWARK_KMS_KEY_IDS)".into(),
                    });
                }
                let ids = get("BULWARK_KMS_KEY_IDS").ok_or(ConfigError::Missing {
                    name: "BULWARK_KMS_KEY_IDS",
                })?;
                let key_ids = kms_key_ids(&ids);
                if key_ids.is_empty() {
                    return Err(ConfigError::Malformed {
                        name: "BULWARK_KMS_KEY_IDS",
                        why: "a comma-separated list of KMS key ids or ARNs, the signing key first".into(),
                    });
                }
                Signing::Kms { key_ids }
            }
            Some("kms-wrapped") => {
                let stack = get("BULWARK_STACK").ok_or(ConfigError::Missing {
                    name: "BULWARK_STACK",
                })?;
                if stack.is_empty()
                    || stack.len() > 128
                    || !stack.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                {
                    return Err(ConfigError::Malformed {
                        name: "BULWARK_STACK",
                        why: "a CloudFormation stack name ([A-Za-z0-9-]{1,128})".into(),
                    });
                }
                let wrapping_key_id = get("BULWARK_WRAPPING_KEY_ID")
                    .map(|k| k.trim().to_string())
                    .filter(|k| !k.is_empty());
                Signing::Wrapped {
                    stack,
                    wrapping_key_id,
                    previous_kms_key_ids: get("BULWARK_PREVIOUS_KMS_KEY_IDS")
                        .map(|v| kms_key_ids(&v))
                        .unwrap_or_default(),
                }
            }
            Some(_) => {
                return Err(ConfigError::Malformed {
                    name: "BULWARK_SIGNING_MODE",
                    why: "kms or kms-wrapped".into(),
                });
            }
        };
        Ok(AwsResources {
            table_prefix: prefix,
            signing,
        })
    }

    /// Whether cookies carry `Secure`: always, except for an http issuer on a loopback host
    /// (the laptop), where a browser would drop them.
    pub fn secure_cookies(&self) -> bool {
        !self.issuer.starts_with("http://")
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    /// A tenant's own issuer: `{base}/t/{tenant}`.
    pub fn tenant_issuer(&self, tenant: &str) -> String {
        format!("{}/t/{tenant}", self.base)
    }

    /// This config as served under `tenant`'s own issuer.
    pub fn scoped(&self, tenant: &str) -> Config {
        let mut c = self.clone();
        c.issuer = self.tenant_issuer(tenant);
        c.tenant_scope = Some(tenant.to_string());
        c
    }

    /// Whether `iss` is one this deployment issues for tenant `tid`: the shared issuer, or the
    /// tenant's own (never another tenant's).
    pub fn accepts_issuer(&self, iss: &str, tid: &str) -> bool {
        iss == self.base || iss == self.tenant_issuer(tid)
    }

    /// Whether a request served here may touch `tenant` (anything, on the shared issuer).
    pub fn serves_tenant(&self, tenant: &str) -> bool {
        self.tenant_scope.as_deref().is_none_or(|t| t == tenant)
    }

    /// Whether the issuer is plain http on a loopback host (a laptop or a test): only then may
    /// the server fetch a stranger's URL over plain http, and only on loopback.
    pub fn issuer_is_loopback_http(&self) -> bool {
        url::Url::parse(&self.issuer)
            .is_ok_and(|u| u.scheme() == "http" && crate::domain::net::is_loopback_host(&u))
    }
}

/// How metrics are published: the CloudWatch namespace of the EMF lines
/// (`BULWARK_METRICS_NAMESPACE`, default `Bulwark`) and whether tenant-bearing counters also
/// carry a `Tenant` dimension (`BULWARK_METRICS_PER_TENANT=on`; default off: every tenant is
/// then a billed custom metric per counter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub namespace: String,
    pub per_tenant: bool,
}

pub const DEFAULT_METRICS_NAMESPACE: &str = "Bulwark";

impl MetricsConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let namespace = get("BULWARK_METRICS_NAMESPACE")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_string());
        if namespace.len() > 255
            || namespace.starts_with("AWS/")
            || !namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/#: ".contains(c))
        {
            return Err(ConfigError::Malformed {
                name: "BULWARK_METRICS_NAMESPACE",
                why: "a CloudWatch namespace: up to 255 of [A-Za-z0-9._-/#: ], not under AWS/".into(),
            });
        }
        Ok(Self {
            namespace,
            per_tenant: parse_on_off("BULWARK_METRICS_PER_TENANT", get("BULWARK_METRICS_PER_TENANT"))?,
        })
    }
}

/// `on`/`off` (unset or empty: off).
pub fn parse_on_off(name: &'static str, v: Option<String>) -> Result<bool, ConfigError> {
    match v.as_deref().map(str::trim) {
        None | Some("") | Some("off") => Ok(false),
        Some("on") => Ok(true),
        Some(_) => Err(ConfigError::Malformed {
            name,
            why: "on or off".into(),
        }),
    }
}

fn parse_ttl(name: &'static str, v: &str) -> Result<i64, ConfigError> {
    match v.trim().parse::<i64>() {
        Ok(n) if (60..=MAX_ACCESS_TOKEN_TTL).contains(&n) => Ok(n),
        _ => Err(ConfigError::Malformed {
            name,
            why: format!("expected seconds in 60..={MAX_ACCESS_TOKEN_TTL}"),
        }),
    }
}

/// A comma-separated list of KMS key ids or ARNs.
fn kms_key_ids(ids: &str) -> Vec<String> {
    ids.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// An issuer is an https URL (or http on a loopback host, for the laptop) with no query or
/// fragment (RFC 8414 §2).
pub fn validate_issuer(issuer: &str) -> Result<String, ConfigError> {
    let name = "issuer";
    let url = Url::parse(issuer).map_err(|e| ConfigError::Malformed {
        name,
        why: e.to_string(),
    })?;
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1") | Some("[::1]") | Some("localhost")
    );
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(ConfigError::Malformed {
            name,
            why: "must be https (http only on a loopback host)".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(ConfigError::Malformed {
            name,
            why: "must not have a query, fragment or userinfo".into(),
        });
    }
    Ok(issuer.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn missing_issuer_fails() {
        assert_eq!(
            Config::from_lookup(lookup(&[])).unwrap_err(),
            ConfigError::Missing {
                name: "BULWARK_ISSUER"
            }
        );
    }

    #[test]
    fn issuers() {
        for (issuer, ok) in [
            ("https://auth.example.com", true),
            ("https://auth.example.com/", true),
            ("http://127.0.0.1:8080", true),
            ("http://localhost:8080", true),
            ("http://auth.example.com", false),
            ("https://auth.example.com/?x=1", false),
            ("https://auth.example.com/#f", false),
            ("not a url", false),
        ] {
            assert_eq!(validate_issuer(issuer).is_ok(), ok, "{issuer}");
        }
        assert_eq!(
            Config::new("https://a.example/").unwrap().issuer,
            "https://a.example"
        );
    }

    #[test]
    fn the_tenant_cache_bound_is_sixty_seconds_at_most() {
        let base = [("BULWARK_ISSUER", "https://a.example")];
        assert_eq!(Config::from_lookup(lookup(&base)).unwrap().tenant_cache_secs, 60);
        for (v, ok) in [
            ("0", Some(0)),
            ("5", Some(5)),
            (" 60 ", Some(60)),
            ("61", None),
            ("-1", None),
            ("x", None),
        ] {
            let mut pairs = base.to_vec();
            pairs.push(("BULWARK_TENANT_CACHE_SECS", v));
            assert_eq!(
                Config::from_lookup(lookup(&pairs))
                    .ok()
                    .map(|c| c.tenant_cache_secs),
                ok,
                "{v}"
            );
        }
    }

    #[test]
    fn aws_resources() {
        let r = Config::aws_from_lookup(lookup(&[
            ("BULWARK_TABLE_PREFIX", "prod-"),
            ("BULWARK_KMS_KEY_IDS", "k1, k2"),
        ]));
        assert_eq!(
            r.unwrap(),
            AwsResources {
                table_prefix: "prod-".into(),
                signing: Signing::Kms {
                    key_ids: vec!["k1".into(), "k2".into()]
                }
            }
        );
        for (pairs, want) in [
            (
                &[("BULWARK_SIGNING_MODE", "kms-wrapped"), ("BULWARK_STACK", "prod")][..],
                Ok(Signing::Wrapped {
                    stack: "prod".into(),
                    wrapping_key_id: None,
                    previous_kms_key_ids: vec![],
                }),
            ),
            (
                &[
                    ("BULWARK_SIGNING_MODE", "kms-wrapped"),
                    ("BULWARK_STACK", "prod"),
                    ("BULWARK_WRAPPING_KEY_ID", "alias/prod-wrapping"),
                ][..],
                Ok(Signing::Wrapped {
                    stack: "prod".into(),
                    wrapping_key_id: Some("alias/prod-wrapping".into()),
                    previous_kms_key_ids: vec![],
                }),
            ),
            (
                &[
                    ("BULWARK_SIGNING_MODE", "kms-wrapped"),
                    ("BULWARK_STACK", "prod"),
                    ("BULWARK_PREVIOUS_KMS_KEY_IDS", "arn:aws:kms:r:1:key/old, "),
                ][..],
                Ok(Signing::Wrapped {
                    stack: "prod".into(),
                    wrapping_key_id: None,
                    previous_kms_key_ids: vec!["arn:aws:kms:r:1:key/old".into()],
                }),
            ),
            (
                &[
                    ("BULWARK_SIGNING_MODE", "kms"),
                    ("BULWARK_KMS_KEY_IDS", "k1"),
                    ("BULWARK_PREVIOUS_KMS_KEY_IDS", "k0"),
                ][..],
                Err(ConfigError::Malformed {
                    name: "BULWARK_PREVIOUS_KMS_KEY_IDS",
                    why: "only with kms-wrapped (in kms mode, previous keys follow the signing key in BULWARK_KMS_KEY_IDS)".into(),
                }),
            ),
            (
                &[("BULWARK_SIGNING_MODE", "kms"), ("BULWARK_KMS_KEY_IDS", " , ")][..],
                Err(ConfigError::Malformed {
                    name: "BULWARK_KMS_KEY_IDS",
                    why: "a comma-separated list of KMS key ids or ARNs, the signing key first".into(),
                }),
            ),
            (
                &[("BULWARK_SIGNING_MODE", "kms-wrapped")][..],
                Err(ConfigError::Missing {
                    name: "BULWARK_STACK",
                }),
            ),
            (
                &[("BULWARK_SIGNING_MODE", "kms-wrapped"), ("BULWARK_STACK", "a b")][..],
                Err(ConfigError::Malformed {
                    name: "BULWARK_STACK",
                    why: "a CloudFormation stack name ([A-Za-z0-9-]{1,128})".into(),
                }),
            ),
            (
                &[("BULWARK_SIGNING_MODE", "local"), ("BULWARK_STACK", "prod")][..],
                Err(ConfigError::Malformed {
                    name: "BULWARK_SIGNING_MODE",
                    why: "kms or kms-wrapped".into(),
                }),
            ),
            (
                &[("BULWARK_SIGNING_MODE", "kms")][..],
                Err(ConfigError::Missing {
                    name: "BULWARK_KMS_KEY_IDS",
                }),
            ),
        ] {
            let mut all = vec![("BULWARK_TABLE_PREFIX", "prod-")];
            all.extend_from_slice(pairs);
            assert_eq!(
                Config::aws_from_lookup(lookup(&all)).map(|r| r.signing),
                want,
                "{pairs:?}"
            );
        }
        assert_eq!(
            Config::aws_from_lookup(lookup(&[("BULWARK_KMS_KEY_IDS", "k1")])).unwrap_err(),
            ConfigError::Missing {
                name: "BULWARK_TABLE_PREFIX"
            }
        );
        assert!(
            Config::aws_from_lookup(lookup(&[
                ("BULWARK_TABLE_PREFIX", "p-"),
                ("BULWARK_KMS_KEY_IDS", " , ")
            ]))
            .is_err()
        );
        assert!(
            Config::aws_from_lookup(lookup(&[
                ("BULWARK_TABLE_PREFIX", "a b"),
                ("BULWARK_KMS_KEY_IDS", "k")
            ]))
            .is_err()
        );
    }

    #[test]
    fn ttl_is_bounded() {
        let c = Config::from_lookup(lookup(&[
            ("BULWARK_ISSUER", "https://a.example"),
            ("BULWARK_ACCESS_TOKEN_TTL", "600"),
        ]));
        assert_eq!(c.unwrap().access_token_ttl, 600);
        let c = Config::from_lookup(lookup(&[
            ("BULWARK_ISSUER", "https://a.example"),
            ("BULWARK_ACCESS_TOKEN_TTL", "5"),
        ]));
        assert!(matches!(c, Err(ConfigError::Malformed { .. })));
    }

    #[test]
    fn metrics_default_to_the_bulwark_namespace_without_tenants() {
        let m = MetricsConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(
            m,
            MetricsConfig {
                namespace: "Bulwark".into(),
                per_tenant: false
            }
        );
        let m = MetricsConfig::from_lookup(lookup(&[
            ("BULWARK_METRICS_NAMESPACE", "Bulwark/prod-stack"),
            ("BULWARK_METRICS_PER_TENANT", "on"),
        ]))
        .unwrap();
        assert_eq!(
            m,
            MetricsConfig {
                namespace: "Bulwark/prod-stack".into(),
                per_tenant: true
            }
        );
        for (k, v) in [
            ("BULWARK_METRICS_PER_TENANT", "yes"),
            ("BULWARK_METRICS_NAMESPACE", "AWS/Lambda"),
            ("BULWARK_METRICS_NAMESPACE", "a{b}"),
        ] {
            assert!(
                matches!(MetricsConfig::from_lookup(lookup(&[(k, v)])), Err(ConfigError::Malformed { name, .. }) if name == k),
                "{k}={v}"
            );
        }
    }
}
