//! Client ID Metadata Documents: the client behind a URL `client_id`, fetched through the
//! SSRF-guarded fetcher, checked by `domain::cimd`, and kept per tenant in the clients table
//! (so every function instance sees the same document, and the grants, codes and tokens of such
//! a client work like any other's).
//!
//! Fetched when first met, again when the stored copy is older than its cache lifetime
//! (5 minutes to 24 hours), and again when an authorization request names a redirect URI the
//! stored copy lacks (at most once a minute). A copy past its lifetime whose refetch fails is
//! not used. A client the tenant admin disabled is never refetched; one deleted is fetched
//! afresh when next met (to keep a host out, the tenant lists the hosts it accepts).

use crate::domain::audit::AuditKind;
use crate::domain::cimd::{
    self, DocumentState, FETCHES_PER_MINUTE, Freshness, MAX_DOCUMENT, REFETCHES_PER_DOCUMENT,
    REFETCHES_PER_MINUTE, check_url, freshness, validate_document,
};
use crate::domain::client::{Client, Origin};
use crate::domain::tenant::Tenant;
use crate::error::OAuthError;
use crate::service::App;
use crate::store::StoreError;

/// Why a metadata-document client cannot be used (the error page says which; the details are
/// logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The tenant does not accept the URL (its host, its form), or holds it disabled.
    NotAccepted,
    /// The document could not be fetched or is not valid (and no usable copy is stored).
    Unavailable,
}

/// The client a metadata-document `client_id` names in `tenant`, for an authorization request
/// to `redirect_uri`. `Ok(Err(why))`: refused.
pub async fn resolve(
    app: &App,
    tenant: &Tenant,
    url: &str,
    redirect_uri: Option<&str>,
) -> Result<Result<Client, Refused>, OAuthError> {
    let tid = tenant.id.as_str();
    let host = match check_url(url, app.config.issuer_is_loopback_http()) {
        Ok(h) => h,
        Err(why) => {
            tracing::info!(tenant = tid, reason = why, "metadata-document client id refused");
            return Ok(Err(Refused::NotAccepted));
        }
    };
    if !tenant.cimd.allows(&host) {
        tracing::info!(tenant = tid, host = %host, "metadata-document host not accepted by the tenant's policy");
        return Ok(Err(Refused::NotAccepted));
    }
    let stored = app.repo.client_any_in(tid, url).await?;
    if let Some(s) = &stored
        && (s.value.disabled || s.value.origin != Origin::Cimd)
    {
        return Ok(Err(Refused::NotAccepted));
    }
    let now = app.now();
    let state = stored.as_ref().and_then(|s| s.value.document);
    let verdict = match (&stored, state) {
        (Some(s), Some(st)) => freshness(&s.value.metadata, &st, redirect_uri, now),
        _ => Freshness::Stale,
    };
    let keep = |why: &str| -> Result<Client, Refused> {
        match (&stored, &verdict) {
            (Some(s), Freshness::Refetch) => Ok(s.value.clone()),
            _ => {
                tracing::info!(tenant = tid, host = %host, reason = why, "metadata document unavailable");
                Err(Refused::Unavailable)
            }
        }
    };
    if verdict == Freshness::Use
        && let Some(s) = stored
    {
        return Ok(Ok(s.value));
    }
    // A URL met for the first time draws on the tenant's budget, which anyone naming made-up
    // URLs on an accepted host can use up; a document the tenant already holds is refetched
    // from its own budget (and a tenant-wide one for such refetches), so strangers cannot
    // starve the clients in use.
    let budget = match &stored {
        None => {
            app.repo
                .take_from_window(&format!("cimd#{tid}"), u64::from(FETCHES_PER_MINUTE), 60)
                .await?
        }
        Some(_) => {
            app.repo
                .take_from_window(
                    &format!("cimd#{tid}#doc#{url}"),
                    u64::from(REFETCHES_PER_DOCUMENT),
                    60,
                )
                .await?
                && app
                    .repo
                    .take_from_window(&format!("cimd#{tid}#known"), u64::from(REFETCHES_PER_MINUTE), 60)
                    .await?
        }
    };
    if !budget {
        return Ok(keep("the tenant's document fetch limit is reached"));
    }
    let doc = match app.fetcher.get_document(url, MAX_DOCUMENT).await {
        Ok(d) => d,
        Err(e) => return Ok(keep(&e.to_string())),
    };
    let metadata = match validate_document(&doc.json, url, tenant, app.key_hosts()) {
        Ok(m) => m,
        Err(why) => {
            tracing::info!(tenant = tid, host = %host, reason = %why, "metadata document invalid");
            return Ok(Err(Refused::Unavailable));
        }
    };
    let document = Some(DocumentState {
        fetched_at: now,
        fresh_until: cimd::fresh_until(now, doc.max_age),
    });
    let (client, version, kind) = match &stored {
        Some(s) => {
            let old = &s.value;
            let new_place = metadata
                .redirect_uris
                .iter()
                .any(|u| !old.metadata.redirect_uris.contains(u));
            let changed = metadata != old.metadata;
            // Key-based authentication dropped (the admin API refuses that switch for any
            // client): what was issued under the keys would otherwise be redeemable by anyone
            // holding it. It ends, and users are asked again.
            let keys_dropped = metadata.is_public() && !old.metadata.is_public();
            let c = Client {
                // A new redirect URI: consents given before are asked again (as for RFC 7592).
                consent_epoch: old.consent_epoch + u64::from(new_place || keys_dropped),
                tokens_revoked_before: if keys_dropped {
                    now
                } else {
                    old.tokens_revoked_before
                },
                updated_at: if changed { now } else { old.updated_at },
                metadata,
                document,
                ..old.clone()
            };
            (
                c,
                Some(s.version),
                changed.then_some(AuditKind::ClientDocumentChanged),
            )
        }
        None => {
            // Met by anyone who names its URL: it expires unused, as an open registration does.
            let c = Client {
                document,
                open_registration: true,
                ..Client::new(
                    url.to_string().into(),
                    tenant.id.clone(),
                    metadata,
                    Origin::Cimd,
                    now,
                )
            };
            (c, None, Some(AuditKind::ClientDocumentAdded))
        }
    };
    let mut writes = vec![app.repo.document_client_write(&client, version)?];
    if version.is_none()
        && let Some(due) = crate::domain::client::open_registration_expires_at(&client, None)
    {
        writes.push(app.repo.open_registration_write(url, tid, due)?);
    }
    if let Some(kind) = kind {
        writes.push(app.repo.audit_write(tid, kind, "metadata-document", url)?);
    }
    match app.repo.commit(writes).await {
        Ok(()) => Ok(Ok(client)),
        // Another request stored it meanwhile (or the admin disabled or deleted it): use what
        // is there now, if live.
        Err(StoreError::Conflict) => match app.repo.client_in(tid, url).await? {
            Some(c) if c.value.origin == Origin::Cimd => Ok(Ok(c.value)),
            _ => Ok(Err(Refused::Unavailable)),
        },
        Err(e) => Err(e.into()),
    }
}
