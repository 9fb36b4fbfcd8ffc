//! `/admin/v1/audit`: the tenant's audit trail, newest first.

use super::*;

/// A security event. Never a secret in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Unix seconds.
    pub at: i64,
    /// e.g. `client.created`, `client.secret_rotated`, `user.deactivated`, `consent.revoked`.
    pub kind: String,
    /// Who did it: an admin client id, `cli`, `dcr`, a user id.
    pub actor: String,
    /// What it was done to.
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            at: e.at,
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            detail: e.detail,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub items: Vec<AuditEventView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditParams {
    /// An event kind (`client.created`) or family (`client`).
    kind: Option<String>,
    /// What the events were done to (a client id, user id, ...).
    subject: Option<String>,
    /// Unix seconds, inclusive.
    since: Option<i64>,
    /// Unix seconds, inclusive.
    until: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = AuditList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn audit(
    StateX(app): StateX<State>,
    admin: Admin,
    QueryOf(q): QueryOf<AuditParams>,
) -> Answer {
    let (limit, cursor) = page(q.limit, q.cursor.as_deref())?;
    let filter = AuditFilter {
        kind: q.kind,
        subject: q.subject,
        since: q.since,
        until: q.until,
    };
    let (events, next) = svc::audit(&app, &admin.tenant, &filter, cursor.as_deref(), limit).await?;
    Ok(json_answer(
        StatusCode::OK,
        &AuditList {
            items: events.into_iter().map(AuditEventView::from).collect(),
            next_cursor: encode_cursor(next),
        },
        None,
    ))
}
