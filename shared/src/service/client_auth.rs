//! Client authentication at the token, introspection and revocation endpoints: the presented
//! [`Evidence`] (read by `domain::client_auth::read_credentials`) checked against the client as
//! stored, one arm per method (`federated`: a workload platform's token, checked against the
//! client's federated credential and the tenant's workload issuer). A new method is a
//! `ClientAuthMethod` row (the method table), an `Evidence` variant and its reading in the
//! domain, and an arm here.

use crate::domain::assertion::check_client_assertion;
use crate::domain::client::Client;
use crate::domain::client_auth::{ClientAuthMethod, Evidence, PresentedCredentials};
use crate::error::OAuthError;
use crate::secret::{Secret, SecretHash, verify_against_nothing};
use crate::service::App;

/// Authenticate a client at the token, introspection or revocation endpoint. Unknown client,
/// wrong secret, expired secret and wrong method are one answer: 401 `invalid_client`, taking
/// the same time. Each such failure counts once (`ClientAuthFailures`; the tenant only of a
/// client that exists).
pub async fn authenticate(
    app: &App,
    creds: &PresentedCredentials,
    endpoint: &str,
) -> Result<Client, OAuthError> {
    let mut tenant = None;
    let out = check(app, creds, endpoint, &mut tenant).await;
    if matches!(&out, Err(e) if e.code == crate::error::ErrorCode::InvalidClient) {
        app.metrics.record(crate::metrics::Event::ClientAuthFailed {
            tenant: tenant.as_deref(),
        });
    }
    out
}

async fn check(
    app: &App,
    creds: &PresentedCredentials,
    endpoint: &str,
    tenant: &mut Option<String>,
) -> Result<Client, OAuthError> {
    let failed = || OAuthError::invalid_client("client authentication failed");
    // Under a tenant's own issuer, another tenant's client is as unknown as a missing one.
    // A metadata-document client (its id a URL) exists only per tenant: under a tenant's issuer.
    let found = match &app.config.tenant_scope {
        Some(t) => app.repo.client_in(t, &creds.client_id).await?,
        None => app.repo.client(&creds.client_id).await?,
    };
    let Some(found) = found.filter(|c| app.config.serves_tenant(c.value.tenant.as_str())) else {
        if let Evidence::SecretBasic(secret) | Evidence::SecretPost(secret) = &creds.evidence {
            // The same time as a wrong secret for a known client.
            verify_against_nothing(secret);
        }
        return Err(failed());
    };
    let client = found.value;
    *tenant = Some(client.tenant.as_str().to_string());
    let method = creds.method();
    match &creds.evidence {
        // A client assertion whose `sub` happens to be the client's own id is a workload token
        // too when the client is `federated` (its registration says which it takes).
        Evidence::Assertion(jwt) if client.metadata.auth_method() == ClientAuthMethod::Federated => {
            match federated(app, &client, jwt).await? {
                Ok(()) => Ok(client),
                Err(why) => {
                    tracing::info!(client_id = %client.client_id, reason = why, "client authentication failed (federated)");
                    Err(failed())
                }
            }
        }
        Evidence::Assertion(jwt) => match private_key_jwt(app, &client, jwt, endpoint).await? {
            Ok(()) => Ok(client),
            Err(why) => {
                tracing::info!(client_id = %client.client_id, reason = why, "client authentication failed (private_key_jwt)");
                Err(failed())
            }
        },
        Evidence::WorkloadToken(jwt) => match federated(app, &client, jwt).await? {
            Ok(()) => Ok(client),
            Err(why) => {
                tracing::info!(client_id = %client.client_id, reason = why, "client authentication failed (federated)");
                Err(failed())
            }
        },
        Evidence::Nothing => {
            // A public client: nothing to verify, but it must be registered as public.
            if client.metadata.is_public() && client.secret_hash.is_none() {
                return Ok(client);
            }
            tracing::info!(client_id = %client.client_id, "client authentication failed: not a public client");
            Err(failed())
        }
        Evidence::SecretBasic(secret) | Evidence::SecretPost(secret) => {
            if client_secret(app, &client, secret, method) {
                Ok(client)
            } else {
                Err(failed())
            }
        }
    }
}

/// Check a shared secret presented with `method` (`client_secret_basic` or
/// `client_secret_post`): the client is registered for that method, the secret is unexpired
/// and matches the current one or, within a rotation's grace, the previous one. Both are always
/// compared, so the time taken does not tell which one matched.
fn client_secret(app: &App, client: &Client, secret: &Secret, method: ClientAuthMethod) -> bool {
    let Some(hash) = client.secret_hash.as_deref().and_then(SecretHash::from_hex) else {
        verify_against_nothing(secret);
        tracing::info!(client_id = %client.client_id, "client authentication failed: the client has no secret");
        return false;
    };
    let current_ok = hash.verify(secret);
    let previous_ok = match client
        .previous_secret_hash
        .as_deref()
        .and_then(SecretHash::from_hex)
    {
        Some(prev) => prev.verify(secret) && client.previous_secret_until > app.now(),
        None => {
            verify_against_nothing(secret);
            false
        }
    };
    let secret_ok = current_ok | previous_ok;
    let method_ok = client.metadata.auth_method() == method;
    let unexpired = client.secret_expires_at == 0 || client.secret_expires_at > app.now();
    let ok = secret_ok && method_ok && unexpired;
    if !ok {
        tracing::info!(
            client_id = %client.client_id,
            secret_ok, method_ok, unexpired,
            "client authentication failed"
        );
    }
    ok
}

/// Check a `private_key_jwt` client assertion (RFC 7523 §2.2 with RFC 10070's audience rules):
/// the client is registered for the method; the JWT verifies with one of its keys (ES256,
/// RS256, PS256, EdDSA); its claims pass [`check_client_assertion`]; and its `jti` has not been
/// used before (recorded until `exp`). `Ok(Err(reason))`: refused (for the log only);
/// `Err`: the store failed.
async fn private_key_jwt(
    app: &App,
    client: &Client,
    assertion: &str,
    endpoint: &str,
) -> Result<Result<(), &'static str>, OAuthError> {
    if client.metadata.auth_method() != ClientAuthMethod::PrivateKeyJwt {
        return Ok(Err("the client is not registered for private_key_jwt"));
    }
    // An untyped assertion may name the endpoint it is sent to, and only that one (RFC 10070):
    // one addressed to the revocation endpoint is no good at the token endpoint.
    let mut endpoints = vec![app.config.endpoint(endpoint)];
    // RFC 9126 §2: at the pushed authorization request endpoint the token endpoint's URL is an
    // audience too (libraries sign one assertion for both).
    if endpoint == "/oauth2/par" {
        endpoints.push(app.config.endpoint("/oauth2/token"));
    }
    let Some(tenant) = app.tenant(client.tenant.as_str()).await? else {
        return Ok(Err("the client's tenant is gone"));
    };
    let max_lifetime = tenant.client_assertion_lifetime();
    let check = |typ: Option<&str>, claims: &serde_json::Value| {
        check_client_assertion(
            typ,
            claims,
            &client.client_id,
            &app.config.issuer,
            &endpoints,
            max_lifetime,
            app.now(),
        )
    };
    // What could never pass is refused before anyone's keys are fetched (a stranger's junk
    // JWT must not make us call the client's jwks_uri); the verified claims decide below.
    let Ok(header) = crate::keys::external::header(assertion) else {
        return Ok(Err("the assertion is not a JWT"));
    };
    let Some(unverified) = crate::keys::external::unverified_claims(assertion) else {
        return Ok(Err("the assertion is not a JWT"));
    };
    if let Err(why) = check(header.typ.as_deref(), &unverified) {
        return Ok(Err(why));
    }
    let kid = header.kid;
    let keys = match crate::service::client_keys::client_keys(
        &app.client_keys,
        app.fetcher.as_ref(),
        client,
        kid.as_deref(),
    )
    .await
    {
        Ok(k) => k,
        Err(e) => {
            tracing::info!(client_id = %client.client_id, error = %e, "could not get the client's keys");
            return Ok(Err("the client's keys are unavailable"));
        }
    };
    let Ok((header, claims)) = crate::keys::external::verify(assertion, &keys) else {
        return Ok(Err("the assertion does not verify with the client's keys"));
    };
    let accepted = match check(header.typ.as_deref(), &claims) {
        Ok(a) => a,
        Err(why) => return Ok(Err(why)),
    };
    let keep_until = accepted.exp + crate::domain::assertion::SKEW;
    if !app
        .repo
        .use_assertion(&client.client_id, &accepted.jti, keep_until)
        .await?
    {
        return Ok(Err("the assertion was used before (replay)"));
    }
    Ok(Ok(()))
}

/// Check a `federated` client's workload token (RFC 7523 §2.2 with a platform's token as the
/// assertion): the client is registered for the method by someone who may give it (the tenant
/// admin or the operator); its issuer is, right now, trusted by the tenant for workloads (the
/// tenant read fresh: removing the issuer or its `--workload` ends every such client's
/// authentication at once); the token verifies with that issuer's keys (asymmetric algorithms
/// only); its claims pass [`check_workload_token`]; and at a single-use issuer its `jti` has not
/// been used before (per tenant and issuer, until `exp`). A reusable issuer's token may
/// authenticate again until it expires, as its platform means it to. `Ok(Err(reason))`:
/// refused (for the log only); `Err`: the store failed.
async fn federated(app: &App, client: &Client, token: &str) -> Result<Result<(), &'static str>, OAuthError> {
    use crate::domain::workload::{Expected, check_workload_token};
    let method = client.metadata.auth_method();
    if method != ClientAuthMethod::Federated {
        return Ok(Err("the client is not registered for federated authentication"));
    }
    if !method.registrable_by(client.registrant()) {
        return Ok(Err(
            "a federated client must be made by the tenant admin or the operator",
        ));
    }
    let Some(credential) = client.metadata.federated_credential.as_ref() else {
        return Ok(Err("the client has no federated credential"));
    };
    let Some(tenant) = app.repo.tenant(client.tenant.as_str()).await? else {
        return Ok(Err("the client's tenant is gone"));
    };
    let tenant = tenant.value;
    let Some(trusted) = tenant.trusted_issuer(&credential.issuer).filter(|t| t.workload) else {
        return Ok(Err("the client's issuer is no longer trusted for workloads"));
    };
    let default_audience = app.config.tenant_issuer(tenant.id.as_str());
    let expected = Expected {
        credential,
        default_audience: &default_audience,
        single_use: trusted.single_use,
        now: app.now(),
    };
    // What could never pass is refused before the issuer's keys are fetched.
    let Ok(header) = crate::keys::external::header(token) else {
        return Ok(Err("the workload token is not a JWT"));
    };
    let Some(unverified) = crate::keys::external::unverified_claims(token) else {
        return Ok(Err("the workload token is not a JWT"));
    };
    if let Err(why) = check_workload_token(header.typ.as_deref(), &unverified, &expected) {
        return Ok(Err(why));
    }
    let keys = match crate::service::federation::issuer_keys(app, trusted, token).await {
        Ok(k) => k,
        Err(e) => {
            tracing::info!(client_id = %client.client_id, error = %e, "could not get a workload issuer's keys");
            return Ok(Err("the workload issuer's keys are unavailable"));
        }
    };
    let Ok((header, claims)) = crate::keys::external::verify(token, &keys) else {
        return Ok(Err("the workload token does not verify with the issuer's keys"));
    };
    let accepted = match check_workload_token(header.typ.as_deref(), &claims, &expected) {
        Ok(a) => a,
        Err(why) => return Ok(Err(why)),
    };
    if trusted.single_use {
        let Some(jti) = accepted.jti.as_deref() else {
            return Ok(Err("a single-use issuer's token needs a jti"));
        };
        if !app
            .repo
            // Per tenant and issuer, as for the JWT bearer grant's assertions.
            .use_assertion(
                &format!("workload:{}:{}", tenant.id.as_str(), trusted.issuer),
                jti,
                accepted.exp + crate::domain::assertion::SKEW,
            )
            .await?
        {
            return Ok(Err(
                "the workload token was used before (replay at a single-use issuer)",
            ));
        }
    }
    Ok(Ok(()))
}
