//! DPoP (RFC 9449): what makes a proof acceptable, sans IO. The signature is checked in `keys`
//! and the `jti` against the store's replay cache in `service::dpop`; everything else about a
//! proof — its header, its claims, the key's thumbprint — is decided here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use url::Url;

use crate::jwk::{ALGORITHM_NAMES, PRIVATE_MEMBERS, check_public_jwks};

/// The `typ` of a DPoP proof (§4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// The algorithms a proof may be signed with: asymmetric only (discovery's
/// `dpop_signing_alg_values_supported`).
pub const ALGORITHMS: &[&str] = ALGORITHM_NAMES;

/// How old a proof's `iat` may be (§4.3 step 11, §11.1): a proof is made for one request.
pub const MAX_AGE: i64 = 60;

/// How far in the future a proof's `iat` may be (clock skew).
pub const MAX_SKEW: i64 = 5;

/// The longest `jti` accepted (the store keys on it).
pub const MAX_JTI: usize = 128;

/// The longest proof accepted, in bytes.
pub const MAX_PROOF: usize = 8 * 1024;

/// How long a server nonce (§8) stands: it is made for a window of this many seconds and
/// accepted in that window and the next (so for 5 to 10 minutes).
pub const NONCE_WINDOW: i64 = 300;

/// What a server nonce says (signed by the server, so any instance can check another's): the
/// tenant it was issued for and its window.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NonceClaims {
    pub tid: String,
    pub w: i64,
}

impl NonceClaims {
    /// A nonce for `tenant` now.
    pub fn now(tenant: &str, now: i64) -> Self {
        Self {
            tid: tenant.to_string(),
            w: now.div_euclid(NONCE_WINDOW),
        }
    }

    /// Whether it is `tenant`'s and still current at `now` (its window or the next).
    pub fn accepts(&self, tenant: &str, now: i64) -> bool {
        let w = now.div_euclid(NONCE_WINDOW);
        self.tid == tenant && (self.w == w || self.w + 1 == w)
    }
}

/// A JWK SHA-256 thumbprint (RFC 7638), base64url: what a DPoP-bound token's `cnf.jkt` holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Jkt(String);

impl Jkt {
    /// A thumbprint as a client sends one (`dpop_jkt`): 43 base64url characters (32 bytes).
    pub fn parse(s: &str) -> Option<Jkt> {
        let ok = s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32);
        ok.then(|| Jkt(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a proof is refused. Every one is `invalid_dpop_proof` on the wire; the variants say
/// which check failed (in the error description and in tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofError {
    /// More than one `DPoP` header (§4.3 step 1).
    Multiple,
    /// Not a JWS with a JSON header and claims.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Typ,
    /// `alg` is not an asymmetric algorithm of ours (`none`, HMAC, ...).
    Alg,
    /// `jwk` is missing, not a public key of a type we verify with, or does not fit `alg`.
    Jwk,
    /// `jwk` carries private or symmetric key material.
    PrivateKey,
    /// The signature does not verify with `jwk`.
    Signature,
    /// `jti` missing, empty or too long.
    Jti,
    /// `htm` is not the request's method.
    Htm,
    /// `htu` is not the request's URL.
    Htu,
    /// `iat` missing, too old or in the future.
    Iat,
    /// `ath` missing or not the hash of the access token presented with it.
    Ath,
    /// The proof was used before (its `jti` was seen for this key).
    Replay,
}

impl ProofError {
    pub const fn description(self) -> &'static str {
        match self {
            ProofError::Multiple => "a request carries at most one DPoP proof",
            ProofError::Malformed => "the DPoP proof is not a well-formed JWT",
            ProofError::Typ => "the DPoP proof's typ must be dpop+jwt",
            ProofError::Alg => "the DPoP proof must be signed with ES256, RS256, PS256 or EdDSA",
            ProofError::Jwk => "the DPoP proof's jwk must be a public key for its alg",
            ProofError::PrivateKey => "the DPoP proof's jwk must not contain private key material",
            ProofError::Signature => "the DPoP proof's signature does not verify with its jwk",
            ProofError::Jti => "the DPoP proof needs a jti (at most 128 characters)",
            ProofError::Htm => "the DPoP proof's htm is not this request's method",
            ProofError::Htu => "the DPoP proof's htu is not this endpoint's URL",
            ProofError::Iat => "the DPoP proof's iat is missing, too old or in the future",
            ProofError::Ath => "the DPoP proof's ath is not the hash of the access token",
            ProofError::Replay => "the DPoP proof was used before",
        }
    }
}

/// A proof's header, checked: its algorithm and public key.
#[derive(Clone, Debug, PartialEq)]
pub struct ProofHeader {
    pub alg: String,
    /// The public JWK, as sent.
    pub jwk: Map<String, Value>,
    pub jkt: Jkt,
}

/// Check a proof's (decoded) JOSE header: `typ` `dpop+jwt`, an asymmetric `alg` of ours, a
/// public `jwk` of a type that fits the `alg` (§4.3 steps 4 to 7).
pub fn check_header(header: &Value) -> Result<ProofHeader, ProofError> {
    let h = header.as_object().ok_or(ProofError::Malformed)?;
    if h.get("typ").and_then(Value::as_str) != Some(PROOF_TYP) {
        return Err(ProofError::Typ);
    }
    let alg = h.get("alg").and_then(Value::as_str).ok_or(ProofError::Alg)?;
    if !ALGORITHMS.contains(&alg) {
        return Err(ProofError::Alg);
    }
    let jwk = h.get("jwk").and_then(Value::as_object).ok_or(ProofError::Jwk)?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    check_public_jwks(&serde_json::json!({ "keys": [jwk] })).map_err(|_| ProofError::Jwk)?;
    let fits = match (jwk.get("kty").and_then(Value::as_str), alg) {
        (Some("EC"), "ES256") => jwk.get("crv").and_then(Value::as_str) == Some("P-256"),
        (Some("RSA"), "RS256" | "PS256") => true,
        (Some("OKP"), "EdDSA") => jwk.get("crv").and_then(Value::as_str) == Some("Ed25519"),
        _ => false,
    };
    if !fits {
        return Err(ProofError::Jwk);
    }
    let jkt = thumbprint(jwk).ok_or(ProofError::Jwk)?;
    Ok(ProofHeader {
        alg: alg.to_string(),
        jwk: jwk.clone(),
        jkt,
    })
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK: the required members of its type, in
/// lexicographic order, as compact JSON.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<Jkt> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    let canonical = match s("kty")? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            json_str(s("crv")?),
            json_str(s("x")?),
            json_str(s("y")?)
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            json_str(s("e")?),
            json_str(s("n")?)
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            json_str(s("crv")?),
            json_str(s("x")?)
        ),
        _ => return None,
    };
    Some(Jkt(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))))
}

fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The request a proof must be for.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The HTTP method (`POST`, `GET`).
    pub method: &'a str,
    /// The endpoint's URL as this server publishes it.
    pub url: &'a str,
    pub now: i64,
    /// The access token presented with the proof (at a resource): its hash must be the
    /// proof's `ath`. `None` at the token endpoint.
    pub access_token: Option<&'a str>,
}

/// A proof's claims, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofClaims {
    pub jti: String,
    pub iat: i64,
    pub nonce: Option<String>,
}

/// Check a proof's claims against the request (§4.3 steps 8 to 12): `jti`, `htm`, `htu`
/// (without query and fragment), `iat` within [`MAX_AGE`], and `ath` where an access token is
/// presented.
pub fn check_claims(claims: &Value, expected: &Expected<'_>) -> Result<ProofClaims, ProofError> {
    let c = claims.as_object().ok_or(ProofError::Malformed)?;
    let jti = c.get("jti").and_then(Value::as_str).unwrap_or_default();
    if jti.is_empty() || jti.len() > MAX_JTI {
        return Err(ProofError::Jti);
    }
    if c.get("htm").and_then(Value::as_str) != Some(expected.method) {
        return Err(ProofError::Htm);
    }
    let htu = c.get("htu").and_then(Value::as_str).ok_or(ProofError::Htu)?;
    if !htu_matches(htu, expected.url) {
        return Err(ProofError::Htu);
    }
    // A NumericDate may have a fraction (RFC 7519 §2): Python's time.time() does.
    let iat = c
        .get("iat")
        .and_then(|v| {
            v.as_i64().or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
        })
        .ok_or(ProofError::Iat)?;
    if iat < expected.now - MAX_AGE || iat > expected.now + MAX_SKEW {
        return Err(ProofError::Iat);
    }
    if let Some(token) = expected.access_token {
        let ath = c.get("ath").and_then(Value::as_str).ok_or(ProofError::Ath)?;
        if !crate::secret::ct_eq_str(ath, &access_token_hash(token)) {
            return Err(ProofError::Ath);
        }
    }
    let nonce = match c.get("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(ProofError::Malformed),
    };
    Ok(ProofClaims {
        jti: jti.to_string(),
        iat,
        nonce,
    })
}

/// Whether a proof's `htu` names `endpoint`: the same scheme, host, port and path, ignoring
/// the query and fragment (§4.3 step 9, RFC 3986 §6.2.2–6.2.3 normalisation by the URL
/// parser: case of scheme and host, default port, dot segments).
pub fn htu_matches(htu: &str, endpoint: &str) -> bool {
    let (Ok(a), Ok(b)) = (Url::parse(htu), Url::parse(endpoint)) else {
        return false;
    };
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && normal_path(a.path()) == normal_path(b.path())
        && a.username().is_empty()
        && a.password().is_none()
}

/// A path with percent-encoded unreserved characters decoded and every other escape's hex
/// digits in upper case (RFC 3986 §6.2.2.1–6.2.2.2), so `/oauth2/%74oken` is `/oauth2/token`.
fn normal_path(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let c = (h * 16 + l) as u8;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(c as char);
            } else {
                out.push('%');
                out.push((b[i + 1] as char).to_ascii_uppercase());
                out.push((b[i + 2] as char).to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// `ath`: the base64url SHA-256 of an access token (§4.2).
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn thumbprint_is_rfc_7638() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let t = thumbprint(jwk.as_object().unwrap()).unwrap();
        assert_eq!(t.as_str(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(Jkt::parse(t.as_str()), Some(t));
    }

    fn ec_jwk() -> Value {
        json!({"kty": "EC", "crv": "P-256",
               "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
               "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"})
    }

    fn header(typ: &str, alg: &str, jwk: Value) -> Value {
        json!({"typ": typ, "alg": alg, "jwk": jwk})
    }

    #[test]
    fn header_rules() {
        assert!(check_header(&header("dpop+jwt", "ES256", ec_jwk())).is_ok());
        let cases = [
            (header("JWT", "ES256", ec_jwk()), ProofError::Typ),
            (header("dpop+jwt", "HS256", ec_jwk()), ProofError::Alg),
            (header("dpop+jwt", "none", ec_jwk()), ProofError::Alg),
            (header("dpop+jwt", "RS256", ec_jwk()), ProofError::Jwk),
            (json!({"typ": "dpop+jwt", "alg": "ES256"}), ProofError::Jwk),
        ];
        for (h, want) in cases {
            assert_eq!(check_header(&h), Err(want), "{h}");
        }
        let mut private = ec_jwk();
        private["d"] = json!("870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE");
        assert_eq!(
            check_header(&header("dpop+jwt", "ES256", private)),
            Err(ProofError::PrivateKey)
        );
        let symmetric = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert_eq!(
            check_header(&header("dpop+jwt", "ES256", symmetric)),
            Err(ProofError::PrivateKey)
        );
    }

    const URL: &str = "https://as.example/oauth2/token";

    fn expected(now: i64, token: Option<&str>) -> Expected<'_> {
        Expected {
            method: "POST",
            url: URL,
            now,
            access_token: token,
        }
    }

    #[test]
    fn claim_rules() {
        let ok = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": 1000});
        assert_eq!(
            check_claims(&ok, &expected(1000, None)).map(|c| c.jti),
            Ok("j1".to_string())
        );
        let with = |k: &str, v: Value| {
            let mut c = ok.clone();
            c[k] = v;
            c
        };
        let cases = [
            (with("jti", json!("")), ProofError::Jti),
            (with("jti", json!("x".repeat(129))), ProofError::Jti),
            (with("htm", json!("GET")), ProofError::Htm),
            (with("htm", json!("post")), ProofError::Htm),
            (
                with("htu", json!("https://as.example/oauth2/other")),
                ProofError::Htu,
            ),
            (
                with("htu", json!("https://evil.example/oauth2/token")),
                ProofError::Htu,
            ),
            (
                with("htu", json!("http://as.example/oauth2/token")),
                ProofError::Htu,
            ),
            (with("iat", json!(1000 - MAX_AGE - 1)), ProofError::Iat),
            (with("iat", json!(1000 + MAX_SKEW + 1)), ProofError::Iat),
            (with("iat", json!("1000")), ProofError::Iat),
        ];
        for (c, want) in cases {
            assert_eq!(check_claims(&c, &expected(1000, None)), Err(want), "{c}");
        }
        // htu without query and fragment; host case and default port do not matter.
        for htu in [
            "https://as.example/oauth2/token?x=1",
            "https://as.example/oauth2/token#f",
            "https://AS.example:443/oauth2/token",
        ] {
            assert!(
                check_claims(&with("htu", json!(htu)), &expected(1000, None)).is_ok(),
                "{htu}"
            );
        }
    }

    #[test]
    fn ath_is_required_with_an_access_token_and_must_match() {
        let base = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": 1000});
        assert_eq!(
            check_claims(&base, &expected(1000, Some("tok"))),
            Err(ProofError::Ath)
        );
        let mut wrong = base.clone();
        wrong["ath"] = json!(access_token_hash("other"));
        assert_eq!(
            check_claims(&wrong, &expected(1000, Some("tok"))),
            Err(ProofError::Ath)
        );
        let mut right = base;
        right["ath"] = json!(access_token_hash("tok"));
        assert!(check_claims(&right, &expected(1000, Some("tok"))).is_ok());
    }

    /// RFC 9449 §4.3: "servers SHOULD employ syntax-based normalization (Section 6.2.2 of
    /// [RFC3986]) and scheme-based normalization (Section 6.2.3 of [RFC3986]) before comparing
    /// the htu claim". A percent-encoded unreserved character is the character itself, and
    /// percent-encoding hex digits are case-insensitive; a reserved one (`%2F`) is not decoded.
    #[test]
    fn htu_is_compared_after_percent_encoding_normalisation() {
        for htu in [
            "https://as.example/oauth2/%74oken",
            "https://as.example/%6Fauth2/token",
            "https://as.example/%6fauth2/token",
        ] {
            assert!(htu_matches(htu, URL), "{htu}");
        }
        assert!(htu_matches(
            "https://as.example/base%7Ex/oauth2/token",
            "https://as.example/base~x/oauth2/token"
        ));
        assert!(!htu_matches("https://as.example/oauth2%2Ftoken", URL));
    }

    /// RFC 9449 §4.2: `iat` is a NumericDate (RFC 7519 §2: "a JSON numeric value", which may
    /// be non-integer). A client that writes `time.time()` (Python) sends a float; a fresh
    /// proof must not be refused for it.
    #[test]
    fn iat_may_be_a_non_integer_numeric_date() {
        for iat in [json!(1000.0), json!(999.75)] {
            let c = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": iat});
            assert!(check_claims(&c, &expected(1000, None)).is_ok(), "{c}");
        }
        // Still refused when stale.
        let stale = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": 800.5});
        assert_eq!(check_claims(&stale, &expected(1000, None)), Err(ProofError::Iat));
    }

    #[test]
    fn jkt_parse_takes_only_a_sha256_thumbprint() {
        assert!(Jkt::parse("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").is_some());
        for bad in [
            "",
            "short",
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X=",
            &"a".repeat(44),
        ] {
            assert!(Jkt::parse(bad).is_none(), "{bad}");
        }
    }
}

#[cfg(test)]
mod nonce_tests {
    use super::*;

    #[test]
    fn a_nonce_stands_for_its_window_and_the_next_and_its_tenant_only() {
        let n = NonceClaims::now("acme", 1_000_000);
        assert!(n.accepts("acme", 1_000_000));
        assert!(n.accepts("acme", 1_000_000 + NONCE_WINDOW));
        assert!(!n.accepts("acme", 1_000_000 + 2 * NONCE_WINDOW));
        assert!(!n.accepts("acme", 1_000_000 - NONCE_WINDOW));
        assert!(!n.accepts("beta", 1_000_000));
    }
}
