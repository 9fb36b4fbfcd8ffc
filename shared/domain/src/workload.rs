//! Workload identity federation, sans IO: a client that authenticates with a token its workload
//! platform issued (a GitHub Actions OIDC token, a Kubernetes projected service-account token)
//! instead of a secret. The tenant trusts the platform's issuer for workloads
//! (`TrustedIssuer::workload`); the client names the issuer and the subjects it stands for
//! ([`FederatedCredential`], set only by the tenant admin or the operator:
//! `ClientAuthMethod::Federated`'s registrant). The signature is checked elsewhere
//! (`keys::external`, asymmetric algorithms only); replay, for a single-use issuer, is the
//! store's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::assertion::SKEW;

/// The longest time ahead a workload token's `exp` may be: an hour. A platform token valid for
/// longer (a Kubernetes token without `expirationSeconds`, which may live a year) is refused: a
/// stolen one would be good for too long.
pub const MAX_WORKLOAD_TOKEN_LIFETIME: i64 = 3600;

/// The most subjects one client may stand for.
pub const MAX_SUBJECTS: usize = 10;

/// Who a `federated` client is: the trusted workload issuer, the subjects (exact `sub` values)
/// whose tokens authenticate it, and the audience those tokens must carry (`None`: the
/// tenant's issuer URL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// Read a `federated_credential` metadata member: an object with `issuer` (a URL, compared as
/// a string), `subjects` (1 to [`MAX_SUBJECTS`] exact values, no wildcards) and an optional
/// `audience`. Whether the issuer is trusted for workloads is the caller's to check (it has
/// the tenant).
pub fn read_federated_credential(v: &Value) -> Result<FederatedCredential, String> {
    let obj: &Map<String, Value> = v
        .as_object()
        .ok_or("federated_credential must be an object with issuer, subjects and audience")?;
    for k in obj.keys() {
        if !matches!(k.as_str(), "issuer" | "subjects" | "audience") {
            return Err("federated_credential has only issuer, subjects and audience".into());
        }
    }
    let text = |k: &str, max: usize| -> Result<Option<String>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= max && printable(s) => Ok(Some(s.clone())),
            Some(_) => Err(format!(
                "federated_credential {k} must be 1 to {max} printable characters"
            )),
        }
    };
    let issuer = text("issuer", 512)?.ok_or("federated_credential needs the workload issuer")?;
    let audience = text("audience", 512)?;
    let subjects: Vec<String> = match obj.get("subjects") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_SUBJECTS => a
            .iter()
            .map(|s| match s {
                Value::String(s) if !s.is_empty() && s.len() <= 256 && printable(s) => Ok(s.clone()),
                _ => Err(String::from(
                    "federated_credential subjects must be 1 to 256 printable characters each",
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(format!(
                "federated_credential needs subjects: 1 to {MAX_SUBJECTS} exact sub values"
            ));
        }
    };
    if subjects.iter().any(|s| s.contains('*')) {
        // Matched exactly: a `*` would match only itself, and whoever wrote it meant more.
        return Err("federated_credential subjects are matched exactly: no wildcards".into());
    }
    let mut deduped: Vec<String> = Vec::with_capacity(subjects.len());
    for s in subjects {
        if !deduped.contains(&s) {
            deduped.push(s);
        }
    }
    Ok(FederatedCredential {
        issuer,
        subjects: deduped,
        audience,
    })
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// What a valid workload token leaves to do: for a single-use issuer, spend its `jti` until
/// `exp`.
#[derive(Debug, PartialEq, Eq)]
pub struct WorkloadToken {
    pub subject: String,
    pub jti: Option<String>,
    pub exp: i64,
}

/// What a workload token must match.
pub struct Expected<'a> {
    pub credential: &'a FederatedCredential,
    /// The audience when the credential names none: the tenant's issuer URL.
    pub default_audience: &'a str,
    /// The issuer is single-use (`--single-use`): every token needs a `jti`.
    pub single_use: bool,
    pub now: i64,
}

/// Check a workload token's header type and claims (its signature already verified with the
/// trusted issuer's keys): `typ` absent or `JWT` (no access token, client authentication JWT
/// or other typed JWT); `iss` the credential's issuer; `sub` exactly one of its subjects; `aud`
/// its audience (or the tenant's issuer URL) as a string or a one-element array; `exp` present,
/// not past, at most [`MAX_WORKLOAD_TOKEN_LIFETIME`] ahead; `nbf` and `iat` not in the future;
/// `jti` required at a single-use issuer.
pub fn check_workload_token(
    typ: Option<&str>,
    claims: &Value,
    e: &Expected<'_>,
) -> Result<WorkloadToken, &'static str> {
    if typ.is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err("the workload token's typ is not JWT");
    }
    let s = |k: &str| claims.get(k).and_then(Value::as_str);
    if s("iss") != Some(e.credential.issuer.as_str()) {
        return Err("iss is not the client's workload issuer");
    }
    let sub = s("sub").ok_or("sub is required")?;
    if !e.credential.subjects.iter().any(|x| x == sub) {
        return Err("sub is not one of the client's subjects");
    }
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => a.as_str(),
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_str().ok_or("aud must be a string")?,
        _ => return Err("aud must be a single value"),
    };
    if aud != e.credential.audience.as_deref().unwrap_or(e.default_audience) {
        return Err("aud is not the client's audience");
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("exp is required")?;
    if exp.saturating_add(SKEW) <= e.now {
        return Err("the workload token has expired");
    }
    if exp > e.now + MAX_WORKLOAD_TOKEN_LIFETIME + SKEW {
        return Err("exp may be at most an hour ahead");
    }
    for k in ["nbf", "iat"] {
        if let Some(t) = claims.get(k) {
            match t.as_i64() {
                Some(t) if t <= e.now + SKEW => {}
                _ => return Err("the workload token is not valid yet (nbf or iat)"),
            }
        }
    }
    let jti = match claims.get("jti") {
        None | Some(Value::Null) => None,
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => Some(j.clone()),
        Some(_) => return Err("jti must be 1 to 256 characters"),
    };
    if e.single_use && jti.is_none() {
        return Err("a single-use issuer's token needs a jti");
    }
    Ok(WorkloadToken {
        subject: sub.to_string(),
        jti,
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AS: &str = "https://as.example/t/acme";
    const NOW: i64 = 1_000_000;

    fn cred(audience: Option<&str>) -> FederatedCredential {
        FederatedCredential {
            issuer: "https://token.actions.githubusercontent.com".into(),
            subjects: vec!["repo:octo/app:ref:refs/heads/main".into()],
            audience: audience.map(str::to_string),
        }
    }

    fn good() -> Value {
        json!({"iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:octo/app:ref:refs/heads/main", "aud": AS,
            "exp": NOW + 300, "iat": NOW - 10, "nbf": NOW - 10, "jti": "j1"})
    }

    fn check(
        typ: Option<&str>,
        patch: Value,
        audience: Option<&str>,
        single_use: bool,
    ) -> Result<WorkloadToken, &'static str> {
        let mut c = good();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        let cred = cred(audience);
        check_workload_token(
            typ,
            &c,
            &Expected {
                credential: &cred,
                default_audience: AS,
                single_use,
                now: NOW,
            },
        )
    }

    #[test]
    fn a_workload_token_passes_only_as_its_client_expects() {
        let ok = check(None, json!({}), None, true).unwrap();
        assert_eq!(
            (ok.subject.as_str(), ok.jti.as_deref(), ok.exp),
            ("repo:octo/app:ref:refs/heads/main", Some("j1"), NOW + 300)
        );
        assert!(check(Some("JWT"), json!({}), None, false).is_ok());
        assert!(
            check(None, json!({"aud": [AS]}), None, false).is_ok(),
            "Kubernetes' one-element array"
        );
        assert!(
            check(None, json!({"jti": null}), None, false).is_ok(),
            "reusable: no jti needed"
        );
        assert!(check(None, json!({"aud": "sts.example"}), Some("sts.example"), false).is_ok());
        assert!(check(None, json!({"exp": NOW + 3600}), None, false).is_ok());
        for (why, typ, patch, audience, single_use) in [
            (
                "another branch",
                None,
                json!({"sub": "repo:octo/app:ref:refs/heads/dev"}),
                None,
                false,
            ),
            (
                "another repo",
                None,
                json!({"sub": "repo:evil/app:ref:refs/heads/main"}),
                None,
                false,
            ),
            (
                "a prefix of the subject",
                None,
                json!({"sub": "repo:octo/app"}),
                None,
                false,
            ),
            ("no sub", None, json!({"sub": null}), None, false),
            (
                "another issuer",
                None,
                json!({"iss": "https://evil.example"}),
                None,
                false,
            ),
            (
                "wrong audience",
                None,
                json!({"aud": "https://other.example"}),
                None,
                false,
            ),
            (
                "default audience when one is set",
                None,
                json!({}),
                Some("sts.example"),
                false,
            ),
            (
                "two audiences",
                None,
                json!({"aud": [AS, "https://other.example"]}),
                None,
                false,
            ),
            ("no audience", None, json!({"aud": null}), None, false),
            ("expired", None, json!({"exp": NOW - 60}), None, false),
            ("no exp", None, json!({"exp": null}), None, false),
            (
                "exp far ahead",
                None,
                json!({"exp": NOW + 3600 + 120}),
                None,
                false,
            ),
            (
                "exp a year ahead",
                None,
                json!({"exp": NOW + 31_536_000}),
                None,
                false,
            ),
            ("not yet valid", None, json!({"nbf": NOW + 300}), None, false),
            (
                "issued in the future",
                None,
                json!({"iat": NOW + 300}),
                None,
                false,
            ),
            ("an access token", Some("at+jwt"), json!({}), None, false),
            (
                "a client assertion",
                Some("client-authentication+jwt"),
                json!({}),
                None,
                false,
            ),
            (
                "no jti at a single-use issuer",
                None,
                json!({"jti": null}),
                None,
                true,
            ),
            ("a numeric jti", None, json!({"jti": 7}), None, false),
        ] {
            assert!(check(typ, patch, audience, single_use).is_err(), "{why}");
        }
    }

    #[test]
    fn a_federated_credential_is_read_strictly() {
        let c = read_federated_credential(&json!({"issuer": "https://k8s.example",
            "subjects": ["system:serviceaccount:ns:a", "system:serviceaccount:ns:a"], "audience": "x"}))
        .unwrap();
        assert_eq!(c.subjects, ["system:serviceaccount:ns:a"]);
        for bad in [
            json!("https://k8s.example"),
            json!({"issuer": "https://k8s.example"}),
            json!({"issuer": "https://k8s.example", "subjects": []}),
            json!({"issuer": "https://k8s.example", "subjects": ["repo:octo/*"]}),
            json!({"issuer": "https://k8s.example", "subjects": [""]}),
            json!({"issuer": "https://k8s.example", "subjects": ["a\nb"]}),
            json!({"subjects": ["a"]}),
            json!({"issuer": "https://k8s.example", "subjects": ["a"], "match": "prefix"}),
            json!({"issuer": "https://k8s.example", "subjects": ["a","b","c","d","e","f","g","h","i","j","k"]}),
        ] {
            assert!(read_federated_credential(&bad).is_err(), "{bad}");
        }
    }
}
