//! DPoP (RFC 9449) proofs at our endpoints: [`proof_key`] checks the proof a request carries —
//! its header and claims by `domain::dpop`, its signature with its own key by `keys::external`,
//! its `jti` once per key in the store (a conditional put, so a proof is spent on every backend
//! and across every Lambda instance at once) — and answers the key's thumbprint, which binds
//! the tokens issued or accepted.

use crate::domain::dpop::{self, Expected, Jkt, NonceClaims, ProofError};
use crate::domain::tenant::TenantId;
use crate::error::{ErrorCode, OAuthError};
use crate::keys::external::{unverified_header, verify_with_key};
use crate::service::App;

/// The request a proof must be for: what `domain::dpop::Expected` holds, minus the time.
#[derive(Clone, Copy, Debug)]
pub struct At<'a> {
    pub method: &'a str,
    /// The endpoint's URL as this issuer publishes it.
    pub url: &'a str,
    /// The access token presented with the proof (at a resource).
    pub access_token: Option<&'a str>,
}

/// A checked proof: its key's thumbprint and the server nonce it carries, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    pub jkt: Jkt,
    pub nonce: Option<String>,
}

/// The thumbprint of the key of the one DPoP proof in `proofs` (the request's `DPoP` header
/// values), checked for the request `at`; `None` when the request carries no proof.
pub async fn proof_key(app: &App, proofs: &[&str], at: At<'_>) -> Result<Option<Jkt>, OAuthError> {
    Ok(proof(app, proofs, at).await?.map(|p| p.jkt))
}

/// The one DPoP proof in `proofs`, checked for the request `at`; `None` when there is none.
pub async fn proof(app: &App, proofs: &[&str], at: At<'_>) -> Result<Option<Proof>, OAuthError> {
    match proofs {
        [] => Ok(None),
        [proof] => check(app, proof, at).await.map(Some).map_err(|e| {
            tracing::info!(reason = ?e, "DPoP proof refused");
            match e {
                Refused::Proof(p) => OAuthError::invalid_dpop_proof(p.description()),
                Refused::Store(e) => e,
            }
        }),
        _ => Err(OAuthError::invalid_dpop_proof(ProofError::Multiple.description())),
    }
}

/// How an access token was presented at a protected resource (RFC 9449 §7).
#[derive(Clone, Copy, Debug)]
pub enum Presented<'a> {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: DPoP`, with the request's `DPoP` header values and method.
    DPoP { proofs: &'a [&'a str], method: &'a str },
}

/// Whether a live access token is presented as its binding requires, at the resource `url`: a
/// DPoP-bound token (`cnf.jkt`) only with the DPoP scheme and a fresh proof of that key over
/// this request and this token (`ath`); an unbound token only as a bearer token. Every refusal
/// of a DPoP presentation is a 401 with a `DPoP` challenge.
pub async fn check_presentation(
    app: &App,
    bound_to: Option<&Jkt>,
    token: &str,
    presented: Presented<'_>,
    url: &str,
) -> Result<(), OAuthError> {
    match (bound_to, presented) {
        (None, Presented::Bearer) => Ok(()),
        (Some(_), Presented::Bearer) => Err(OAuthError::invalid_token(
            "this access token is bound to a DPoP key: present it with the DPoP scheme and a proof",
        )
        .dpop_challenge()),
        (None, Presented::DPoP { .. }) => Err(OAuthError::invalid_token(
            "this access token is not bound to a DPoP key: present it as a Bearer token",
        )
        .dpop_challenge()),
        (Some(jkt), Presented::DPoP { proofs, method }) => {
            let at = At {
                method,
                url,
                access_token: Some(token),
            };
            let key = proof_key(app, proofs, at).await.map_err(|e| match e.code {
                // The store failed: a 503 to retry, not a reason to drop the token.
                ErrorCode::TemporarilyUnavailable | ErrorCode::ServerError => e,
                _ => e.dpop_challenge(),
            })?;
            match key {
                Some(k) if &k == jkt => Ok(()),
                Some(_) => Err(OAuthError::invalid_token(
                    "the DPoP proof is made with another key than the one the token is bound to",
                )
                .dpop_challenge()),
                None => Err(OAuthError::invalid_dpop_proof("a DPoP proof is required").dpop_challenge()),
            }
        }
    }
}

#[derive(Debug)]
enum Refused {
    Proof(ProofError),
    Store(OAuthError),
}

impl From<ProofError> for Refused {
    fn from(e: ProofError) -> Self {
        Refused::Proof(e)
    }
}

async fn check(app: &App, proof: &str, at: At<'_>) -> Result<Proof, Refused> {
    if proof.len() > dpop::MAX_PROOF {
        return Err(ProofError::Malformed.into());
    }
    let header = unverified_header(proof).ok_or(ProofError::Malformed)?;
    let h = dpop::check_header(&header)?;
    let claims = verify_with_key(proof, &h.jwk).map_err(|_| ProofError::Signature)?;
    let c = dpop::check_claims(
        &claims,
        &Expected {
            method: at.method,
            url: at.url,
            now: app.now(),
            access_token: at.access_token,
        },
    )?;
    // Each proof once: its jti, per key, until it is too old to be accepted anyway.
    let fresh = app
        .repo
        .use_assertion(
            &format!("dpop:{}", h.jkt.as_str()),
            &c.jti,
            c.iat + dpop::MAX_AGE + 1,
        )
        .await
        .map_err(|e| Refused::Store(e.into()))?;
    if !fresh {
        return Err(ProofError::Replay.into());
    }
    Ok(Proof {
        jkt: h.jkt,
        nonce: c.nonce,
    })
}

/// The JWS `typ` of a server nonce.
const NONCE_TYP: &str = "dpop-nonce+jwt";

/// Server nonces this process made, by (tenant, window): at most one signature per tenant per
/// window per process (in `kms` mode each is a KMS `Sign`).
#[derive(Default)]
pub struct NonceCache(std::sync::Mutex<std::collections::HashMap<(String, i64), String>>);

const NONCE_CACHE_MAX: usize = 10_000;

/// Where `tenant` requires nonces (`dpop_nonce_required`), that `proof` carries a current one
/// of ours: otherwise `use_dpop_nonce` with a fresh nonce in `DPoP-Nonce` (RFC 9449 §8). A
/// nonce is a JWS of ours over the tenant and a time window, so any instance accepts one
/// another instance made, with nothing stored.
pub async fn require_nonce(app: &App, tenant: &TenantId, proof: Option<&Proof>) -> Result<(), OAuthError> {
    let Some(proof) = proof else {
        return Ok(());
    };
    let Some(t) = app.tenant(tenant).await? else {
        return Ok(());
    };
    if !t.dpop_nonce_required {
        return Ok(());
    }
    if let Some(n) = &proof.nonce
        && nonce_is_current(app, tenant, n).await?
    {
        return Ok(());
    }
    let mut e = OAuthError::new(
        ErrorCode::UseDpopNonce,
        "the DPoP proof must carry the nonce given in the DPoP-Nonce header",
    );
    e.dpop_nonce = Some(nonce(app, tenant).await?);
    Err(e)
}

/// A current server nonce for `tenant`.
pub async fn nonce(app: &App, tenant: &TenantId) -> Result<String, OAuthError> {
    let claims = NonceClaims::now(tenant.as_str(), app.now());
    let key = (claims.tid.clone(), claims.w);
    if let Ok(cache) = app.dpop_nonces.0.lock()
        && let Some(n) = cache.get(&key)
    {
        return Ok(n.clone());
    }
    let payload = serde_json::to_vec(&claims).map_err(|_| OAuthError::server_error())?;
    let n = app.signer.sign_jwt(NONCE_TYP, &payload).await?;
    if let Ok(mut cache) = app.dpop_nonces.0.lock() {
        if cache.len() >= NONCE_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, n.clone());
    }
    Ok(n)
}

async fn nonce_is_current(app: &App, tenant: &TenantId, nonce: &str) -> Result<bool, OAuthError> {
    if nonce.len() > 1024 {
        return Ok(false);
    }
    let keys = app.signer.public_keys().await?;
    let Ok(payload) = crate::keys::jws::verify(nonce, &keys, NONCE_TYP) else {
        return Ok(false);
    };
    Ok(serde_json::from_slice::<NonceClaims>(&payload).is_ok_and(|c| c.accepts(tenant.as_str(), app.now())))
}
