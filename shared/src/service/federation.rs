//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1): federation. A
//! tenant trusts external identity providers (`bulwark issuer add`); a user is linked to a
//! subject at one of them (`bulwark user link`); a client registered for the grant (by the
//! operator) presents an assertion that provider signed about that subject and gets tokens for
//! the linked Bulwark user (`sub` = the Bulwark user id).
//!
//! The assertion: signed by a key of the trusted issuer its `iss` names (inline or fetched
//! through the SSRF-guarded fetcher), claims per [`check_grant_assertion`] (audience per
//! RFC 10070, `exp` ≤ 10 minutes ahead, `jti` once), the linked user active; scopes within
//! the client's. Every refusal is `invalid_grant`, with the reason only in the log.
//!
//! A trusted issuer added with `--id-jag` speaks the ID-JAG profile
//! (draft-ietf-oauth-identity-assertion-authz-grant) instead, and only it: its assertions are
//! checked by [`check_id_jag`] (typed `oauth-id-jag+jwt`, `aud` our issuer alone, `client_id`
//! the authenticated client, ...), their `scope` and `resource` claims bound the token
//! (`invalid_scope` / `invalid_target` beyond them), and no refresh token is issued (the
//! draft's SHOULD NOT: the client gets a new ID-JAG from its provider instead).

use crate::domain::assertion::{SKEW, check_grant_assertion};
use crate::domain::client::Client;
use crate::domain::grant_type::TokenResponse;
use crate::domain::id_jag::{Expected, check_id_jag, id_jag_resources, id_jag_scope};
use crate::domain::scope::{ScopeSet, grant_scope};
use crate::error::{ErrorCode, OAuthError};
use crate::fetch::FetchError;
use crate::keys::external;
use crate::service::App;
use crate::service::grants::{Direct, DirectKind, direct_grant};
use crate::service::token_endpoint::TokenRequest;

fn refused(client: &Client, why: &str) -> OAuthError {
    tracing::info!(client_id = %client.client_id, reason = why, "jwt-bearer assertion refused");
    OAuthError::new(
        ErrorCode::InvalidGrant,
        "the assertion is invalid, expired, replayed, or names no linked user",
    )
}

/// What a checked assertion is worth: whose it is, its `jti`, and what the token may be for.
struct Checked {
    subject: String,
    jti: String,
    exp: i64,
    scope: ScopeSet,
    /// RFC 8707 resources the grant is bound to (empty: unbound).
    resources: Vec<String>,
    kind: DirectKind,
}

/// A trusted issuer's public keys: inline, or fetched from its `jwks_uri` through the guarded
/// fetcher (cached, refetched for an unknown `kid` of `token`).
pub(crate) async fn issuer_keys(
    app: &App,
    trusted: &crate::domain::tenant::TrustedIssuer,
    token: &str,
) -> Result<std::sync::Arc<jsonwebtoken::jwk::JwkSet>, FetchError> {
    match (&trusted.jwks, &trusted.jwks_uri) {
        (Some(v), _) => external::check_jwks(v)
            .map(std::sync::Arc::new)
            .map_err(FetchError::Failed),
        (None, Some(u)) => {
            app.client_keys
                .keys_at(app.fetcher.as_ref(), u, external::kid(token).as_deref())
                .await
        }
        (None, None) => Err(FetchError::Failed("no keys".into())),
    }
}

pub async fn jwt_bearer(app: &App, req: &TokenRequest<'_>) -> Result<TokenResponse, OAuthError> {
    let (client, p) = (req.client, req.params);
    let assertion = p.require("assertion").map_err(OAuthError::invalid_request)?;
    let tenant = app
        .tenant(client.tenant.as_str())
        .await?
        .ok_or_else(OAuthError::server_error)?;
    let scope =
        grant_scope(p.get("scope"), &client.allowed_scopes(&tenant)).map_err(OAuthError::invalid_scope)?;
    let Some(iss) = external::unverified_claim(assertion, "iss") else {
        return Err(refused(client, "malformed assertion"));
    };
    let Some(trusted) = tenant.trusted_issuer(&iss) else {
        return Err(refused(client, "the issuer is not trusted by this tenant"));
    };
    if trusted.workload {
        // A workload platform's token names a workload, not a user: it authenticates a
        // `federated` client and is no user's assertion.
        return Err(refused(
            client,
            "the issuer is trusted for workloads, not for users",
        ));
    }
    let keys = match issuer_keys(app, trusted, assertion).await {
        Ok(k) => k,
        Err(e) => {
            tracing::info!(error = %e, "could not get a trusted issuer's keys");
            return Err(refused(client, "the issuer's keys are unavailable"));
        }
    };
    let Ok((header, claims)) = external::verify(assertion, &keys) else {
        return Err(refused(
            client,
            "the assertion does not verify with the issuer's keys",
        ));
    };
    let a = if trusted.id_jag {
        let jag = check_id_jag(
            header.typ.as_deref(),
            &claims,
            &Expected {
                trusted: &trusted.issuer,
                issuer: &app.config.issuer,
                client_id: &client.client_id,
                tenant: tenant.id.as_str(),
                idp_tenant: trusted.idp_tenant.as_deref(),
                now: app.now(),
            },
        )
        .map_err(|why| refused(client, why))?;
        let scope = id_jag_scope(
            jag.scope.as_ref(),
            p.get("scope"),
            &client.allowed_scopes(&tenant),
        )
        .map_err(OAuthError::invalid_scope)?;
        id_jag_resources(&jag.resources, &tenant.resources)
            .map_err(|d| OAuthError::new(ErrorCode::InvalidTarget, d))?;
        Checked {
            subject: jag.subject,
            jti: jag.jti,
            exp: jag.exp,
            scope,
            resources: jag.resources,
            kind: DirectKind::IdJag,
        }
    } else {
        let a = check_grant_assertion(
            header.typ.as_deref(),
            &claims,
            &trusted.issuer,
            &app.config.issuer,
            &app.config.endpoint("/oauth2/token"),
            app.now(),
        )
        .map_err(|why| refused(client, why))?;
        Checked {
            subject: a.subject,
            jti: a.jti,
            exp: a.exp,
            scope,
            resources: Vec::new(),
            kind: DirectKind::JwtBearer,
        }
    };
    let Some(link) = app
        .repo
        .federated_link(tenant.id.as_str(), &trusted.issuer, &a.subject)
        .await?
    else {
        return Err(refused(client, "no user is linked to the assertion's subject"));
    };
    if !app
        .repo
        // Per tenant: another tenant that trusts an issuer of the same name (with keys of its
        // own) must not be able to use up this tenant's `jti`s.
        .use_assertion(
            &format!("issuer:{}:{}", tenant.id.as_str(), trusted.issuer),
            &a.jti,
            a.exp + SKEW,
        )
        .await?
    {
        return Err(refused(client, "the assertion was used before (replay)"));
    }
    direct_grant(
        app,
        Direct {
            client,
            tenant: &tenant,
            sub: &link.sub,
            scope: &a.scope,
            params: p,
            kind: a.kind,
            dpop: req.dpop.as_ref(),
            resources: a.resources,
            checked: None,
        },
    )
    .await
}
