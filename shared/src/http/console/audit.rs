//! The console's audit trail page.

use super::*;

// ---- audit -----------------------------------------------------------------------------------

pub(super) struct AuditRow {
    at: String,
    kind: String,
    actor: String,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub(super) struct AuditBody<'a> {
    action: String,
    tenant: &'a str,
    kind: &'a str,
    subject: &'a str,
    since_days: &'a str,
    since_options: [(&'static str, &'static str); 5],
    rows: Vec<AuditRow>,
    next_href: Option<String>,
}

pub(super) async fn audit(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    let kind = q.get("kind").map(str::trim).unwrap_or("");
    let subject = q.get("subject").map(str::trim).unwrap_or("");
    let since_days = q.get("since_days").unwrap_or("");
    let days = since_days.parse::<i64>().ok().filter(|d| (1..=366).contains(d));
    let filter = AuditFilter {
        kind: (!kind.is_empty()).then(|| kind.chars().take(64).collect()),
        subject: (!subject.is_empty()).then(|| subject.chars().take(256).collect()),
        since: days.map(|d| app.now() - d * 86_400),
        until: None,
    };
    let (events, next) =
        match list_page(svc::audit(&app, s.tenant(), &filter, cursor_of(&q).as_deref(), PAGE).await) {
            Ok(page) => page,
            Err(r) => return r,
        };
    let rows = events
        .into_iter()
        .map(|e| AuditRow {
            at: date(e.at),
            kind: e.kind,
            actor: e.actor,
            subject: e.subject,
            detail: e.detail.unwrap_or_default(),
        })
        .collect();
    let body = render(&AuditBody {
        action: links::url(&s.base, "/console/audit", &[]),
        tenant: s.tenant(),
        kind,
        subject,
        since_days,
        since_options: [
            ("", "All time"),
            ("1", "Last day"),
            ("7", "Last 7 days"),
            ("30", "Last 30 days"),
            ("90", "Last 90 days"),
        ],
        rows,
        next_href: next_href(
            &s,
            "/console/audit",
            &[("kind", kind), ("subject", subject), ("since_days", since_days)],
            next,
        ),
    });
    console_page(&s, 200, "Audit log", "audit", None, None, &body)
}
