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
    add_action: String,
    remove_action: String,
    draft: &'a IssuerDraft,
}

/// The workload issuer form as the administrator filled it in (shown again with an error).
#[derive(Default)]
pub(super) struct IssuerDraft {
    issuer: String,
    jwks_uri: String,
    jwks: String,
    single_use: bool,
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
    policy_view_with(app, s, notice, error, &IssuerDraft::default()).await
}

async fn policy_view_with(
    app: &App,
    s: &Session,
    notice: Option<&str>,
    error: Option<&str>,
    draft: &IssuerDraft,
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
        add_action: s.url("/console/policy/issuers"),
        remove_action: s.url("/console/policy/issuers/remove"),
        draft,
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

// ---- trusted workload issuers ------------------------------------------------------------------

/// The service's words for the CLI's options, as the console's form names its fields.
fn issuer_words(why: &str) -> String {
    why.replace("--jwks-file or --jwks-uri", "a Keys URL or pasted Keys")
        .replace("(remove it first: bulwark issuer remove)", "(remove it first)")
        .replace("--jwks-uri", "Keys URL")
        .replace("--jwks-file", "Keys")
        .replace("--single-use", "Each token once")
        .replace("--workload: ", "")
        .replace("--workload", "workloads")
        .replace("--issuer", "Issuer")
        .replace("jwks:", "Keys:")
}

/// `POST /console/policy/issuers`: trust a workload issuer (federated apps' tokens), through
/// the same service function as `bulwark issuer add --workload` and `POST /admin/v1/issuers`:
/// the same checks, the same refusal to switch an issuer's kind, the same audit event, under
/// the administrator's name.
pub(super) async fn add_issuer(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let field = |name: &str| p.get(name).map(str::trim).unwrap_or_default().to_string();
    let draft = IssuerDraft {
        issuer: field("issuer"),
        jwks_uri: field("jwks_uri"),
        jwks: field("jwks"),
        single_use: p.get("single_use").is_some(),
    };
    let jwks = if draft.jwks.is_empty() {
        None
    } else {
        match serde_json::from_str::<serde_json::Value>(&draft.jwks) {
            Ok(v) if v.is_object() => Some(v),
            Ok(_) | Err(_) => {
                let why = "Keys must be a JWK Set: a JSON object with a keys array.";
                return policy_view_with(&app, &s, None, Some(why), &draft).await;
            }
        }
    };
    let entry = crate::domain::tenant::TrustedIssuer {
        issuer: draft.issuer.clone(),
        jwks,
        jwks_uri: Some(draft.jwks_uri.clone()).filter(|u| !u.is_empty()),
        id_jag: false,
        idp_tenant: None,
        workload: true,
        single_use: draft.single_use,
    };
    match crate::service::tenants::add_issuer(&app, s.tenant(), entry, &s.admin.actor).await {
        Ok(_) => see_other(&s.url_with("/console/policy", &[("notice", "issuer-trusted")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => policy_view_with(&app, &s, None, Some(&issuer_words(&msg)), &draft).await,
            Err(r) => r,
        },
    }
}

/// `POST /console/policy/issuers/remove`: stop trusting an issuer, through the same service
/// function as `bulwark issuer remove` and `DELETE /admin/v1/issuers`.
pub(super) async fn remove_issuer(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let issuer = form.params.get("issuer").unwrap_or_default();
    match crate::service::tenants::remove_issuer(&app, s.tenant(), issuer, &s.admin.actor).await {
        Ok(_) => see_other(&s.url_with("/console/policy", &[("notice", "issuer-removed")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => policy_view(&app, &s, None, Some(&msg)).await,
            Err(r) => r,
        },
    }
}
