//! The audit trail through the admin API and the console.

use super::*;

// ---- audit ------------------------------------------------------------------------------------

/// Which audit events to list.
#[derive(Default, Debug)]
pub struct AuditFilter {
    /// An exact kind (`client.created`) or a family (`client`, matching `client.*`).
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEvent) -> bool {
        let kind_ok = self.kind.as_deref().is_none_or(|k| {
            e.kind == k
                || (e.kind.len() > k.len() && e.kind.starts_with(k) && e.kind.as_bytes()[k.len()] == b'.')
        });
        kind_ok
            && self.subject.as_deref().is_none_or(|s| e.subject == s)
            && self.until.is_none_or(|u| e.at <= u)
    }
}

/// Events read at most per request while filtering (the page may come back short, with a cursor).
pub(super) const AUDIT_SCAN: usize = 2000;
/// Events read per store query while filtering.
pub(super) const AUDIT_PAGE: usize = 200;

/// Newest first: up to `limit` events that match, and a cursor if there may be more. Reads the
/// store in pages of `AUDIT_PAGE` (a rare kind costs at most `AUDIT_SCAN / AUDIT_PAGE`
/// queries per request) and, when it stops in the middle of a page, returns the cursor right
/// after the last event it returned.
pub async fn audit(
    app: &App,
    tenant: &TenantId,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<AuditEvent>, Option<String>), AdminError> {
    let mut out = Vec::with_capacity(limit);
    let mut cursor = cursor.map(str::to_string);
    let mut scanned = 0;
    loop {
        let (page, next) = app
            .repo
            .audit_events_with_cursors(tenant, cursor.as_deref(), AUDIT_PAGE, true)
            .await?;
        scanned += page.len();
        let count = page.len();
        for (i, (e, after)) in page.into_iter().enumerate() {
            if filter.since.is_some_and(|s| e.at < s) {
                return Ok((out, None));
            }
            if filter.matches(&e) {
                out.push(e);
                if out.len() >= limit {
                    let more = if i + 1 < count { Some(after) } else { next };
                    return Ok((out, more));
                }
            }
        }
        match next {
            None => return Ok((out, None)),
            Some(n) if scanned >= AUDIT_SCAN => return Ok((out, Some(n))),
            Some(n) => cursor = Some(n),
        }
    }
}
