//! The console's tenant policy page.

use super::*;

// ---- policy ----------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/policy.html")]
pub(super) struct PolicyBody<'a> {
    action: String,
    csrf: &'a str,
    version: u64,
    dcr: &'a str,
    dcr_options: [(&'static str, &'static str); 3],
    password_grant: bool,
    allowlist_on: bool,
    apps: Vec<(String, String, bool)>,
    more_apps: bool,
    /// Each trusted issuer and what it is trusted for.
    issuers: Vec<(String, &'static str)>,
}

/// Apps listed on the policy page.
pub(super) const POLICY_APPS: usize = 200;

pub(super) fn dcr_name(p: DcrPolicy) -> &'static str {
    match p {
        DcrPolicy::Open => "open",
        DcrPolicy::Token => "token",
        DcrPolicy::Closed => "closed",
    }
}

pub(super) async fn policy_view(
    app: &App,
    s: &Session,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let t = match svc::tenant(app, s.tenant()).await {
        Ok(t) => t,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let (clients, next) = match svc::list_clients(app, s.tenant(), None, POLICY_APPS).await {
        Ok(r) => r,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let list = t.value.app_allowlist.as_ref();
    let apps = clients
        .iter()
        .filter(|c| c.agent_of.is_none())
        .map(|c| {
            (
                c.client_id.to_string(),
                app_name(c),
                list.is_some_and(|l| l.contains(c.client_id.as_str())),
            )
        })
        .collect();
    let body = render(&PolicyBody {
        action: s.url("/console/policy"),
        csrf: &s.csrf(),
        version: t.version,
        dcr: dcr_name(t.value.dcr_policy),
        dcr_options: [
            ("open", "Open: any app may register"),
            ("token", "With an initial access token"),
            ("closed", "Closed: administrators register apps"),
        ],
        password_grant: t.value.password_grant,
        allowlist_on: list.is_some(),
        apps,
        more_apps: next.is_some(),
        issuers: t
            .value
            .trusted_issuers
            .iter()
            .map(|i| {
                let what = match (i.workload, i.single_use, i.id_jag) {
                    (true, true, _) => "Workloads (federated apps); each token once",
                    (true, false, _) => "Workloads (federated apps)",
                    (false, _, true) => "Users: ID-JAGs",
                    (false, _, false) => "Users: JWT bearer assertions",
                };
                (i.issuer.clone(), what)
            })
            .collect(),
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Policy",
        "policy",
        notice,
        error,
        &body,
    )
}

pub(super) async fn policy(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    policy_view(&app, &s, notice_of(&q), None).await
}

pub(super) async fn save_policy(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let result = async {
        let t = svc::tenant(&app, s.tenant()).await?;
        let (clients, _) = svc::list_clients(&app, s.tenant(), None, POLICY_APPS).await?;
        let shown: std::collections::BTreeSet<&str> = clients.iter().map(|c| c.client_id.as_str()).collect();
        let allowlist = if p.get("allowlist").is_some() {
            // The apps checked here, and those on the list that this page did not show.
            let mut ids: Vec<String> = clients
                .iter()
                .filter(|c| p.get(&format!("app.{}", c.client_id)).is_some())
                .map(|c| c.client_id.to_string())
                .collect();
            if let Some(old) = &t.value.app_allowlist {
                ids.extend(old.iter().filter(|id| !shown.contains(id.as_str())).cloned());
            }
            Some(ids)
        } else {
            None
        };
        let dcr = match p.get("dcr") {
            Some("open") => Some(DcrPolicy::Open),
            Some("token") => Some(DcrPolicy::Token),
            Some("closed") => Some(DcrPolicy::Closed),
            _ => {
                return Err(AdminError::Field(
                    "dcr".into(),
                    "Choose a registration policy.".into(),
                ));
            }
        };
        let version = p.get("version").and_then(|v| v.parse::<u64>().ok());
        let changes = PolicyChanges {
            dcr,
            password_grant: Some(p.get("password_grant").is_some()),
            app_allowlist: Some(allowlist),
            ..PolicyChanges::default()
        };
        svc::patch_policy(&app, s.tenant(), version, changes, &s.admin.actor).await
    }
    .await;
    match result {
        Ok(_) => see_other(&s.url_with("/console/policy", &[("notice", "policy")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => policy_view(&app, &s, None, Some(&msg)).await,
            Err(r) => r,
        },
    }
}
