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
#[allow(dead_code)]
struct AuditParams {
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
pub(super) async fn audit(StateX(app): StateX<State>, admin: Admin, RawQuery(q): RawQuery) -> Answer {
    let q = query_pairs(
        q.as_deref(),
        &["kind", "subject", "since", "until", "limit", "cursor"],
    )?;
    let (limit, cursor) = list_params(&q)?;
    let time = |k: &str| -> Result<Option<i64>, Problem> {
        match q.get(k).and_then(Value::as_str) {
            None => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Problem::invalid_field(k, format!("{k} is a time in Unix seconds"))),
        }
    };
    let filter = AuditFilter {
        kind: q.get("kind").and_then(Value::as_str).map(str::to_string),
        subject: q.get("subject").and_then(Value::as_str).map(str::to_string),
        since: time("since")?,
        until: time("until")?,
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
