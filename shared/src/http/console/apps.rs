//! The console's Connected Apps pages: the list, a new app, an app, its secret, disable, enable, delete.

use super::*;

// ---- apps ------------------------------------------------------------------------------------

pub(super) struct AppRowView {
    client_id: String,
    href: String,
    name: String,
    kind: &'static str,
    scopes: Vec<String>,
    created: String,
    last_used: String,
    users: String,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "console/apps.html")]
pub(super) struct AppsBody {
    new_href: String,
    rows: Vec<AppRowView>,
    next_href: Option<String>,
}

pub(super) const PAGE: usize = 50;

/// What kind of app a client is, in the console's words.
fn kind(c: &Client) -> &'static str {
    if c.agent_of.is_some() {
        "Agent"
    } else if c.metadata.grant_types.iter().any(|g| g.acts_for_user()) {
        "Acts on behalf of users"
    } else {
        "Acts on its own behalf"
    }
}

pub(super) async fn apps(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    let (rows, next) = match list_page(con::apps(&app, s.tenant(), cursor_of(&q).as_deref(), PAGE).await) {
        Ok(page) => page,
        Err(r) => return r,
    };
    let rows = rows
        .into_iter()
        .map(|r| AppRowView {
            name: app_name(&r.client),
            kind: kind(&r.client),
            scopes: r.client.metadata.scopes().iter().map(str::to_string).collect(),
            created: date(r.client.issued_at),
            last_used: when(r.last_used),
            users: if r.more_users {
                format!("{}+", r.users)
            } else {
                r.users.to_string()
            },
            disabled: r.client.disabled,
            href: s.app_url("/console/app", &r.client.client_id),
            client_id: r.client.client_id.into_string(),
        })
        .collect();
    let body = render(&AppsBody {
        new_href: s.url("/console/apps/new"),
        rows,
        next_href: next_href(&s, "/console/apps", &[], next),
    });
    console_page(&s, 200, "Connected Apps", "apps", notice_of(&q), None, &body)
}

pub(super) struct ScopeChoice {
    name: String,
    description: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "console/app_new.html")]
pub(super) struct NewAppBody<'a> {
    action: String,
    cancel_href: String,
    csrf: &'a str,
    name: &'a str,
    kind: &'a str,
    redirect_uris: &'a str,
    dpop_bound: bool,
    scopes: Vec<ScopeChoice>,
    /// The tenant's trusted workload issuers, for a federated app (none: no such choice).
    workload_issuers: Vec<String>,
    federated_issuer: &'a str,
    subjects: &'a str,
    audience: &'a str,
}

pub(super) async fn new_app_form(
    app: &App,
    s: &Session,
    form: Option<&Params>,
    error: Option<&str>,
) -> Response {
    let tenant = match svc::tenant(app, s.tenant()).await {
        Ok(t) => t.value,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let get = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("");
    let scopes = tenant
        .scopes
        .iter()
        .filter(|(n, _)| {
            !n.starts_with(RESERVED_SCOPE_PREFIX) && n.as_str() != "openid" && n.as_str() != "offline_access"
        })
        .map(|(n, d)| ScopeChoice {
            checked: form.is_some_and(|f| f.get(&format!("scope.{n}")).is_some()),
            name: n.clone(),
            description: d.clone(),
        })
        .collect();
    let body = render(&NewAppBody {
        action: s.url("/console/apps"),
        cancel_href: s.url("/console/apps"),
        csrf: &s.csrf(),
        name: get("name"),
        kind: get("kind"),
        redirect_uris: get("redirect_uris"),
        dpop_bound: !get("dpop_bound").is_empty(),
        scopes,
        workload_issuers: tenant
            .trusted_issuers
            .iter()
            .filter(|i| i.workload)
            .map(|i| i.issuer.clone())
            .collect(),
        federated_issuer: get("federated_issuer"),
        subjects: get("subjects"),
        audience: get("audience"),
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Create application",
        "apps",
        None,
        error,
        &body,
    )
}

pub(super) async fn new_app(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match page_session(&app, &query, &headers).await {
        Ok(s) => new_app_form(&app, &s, None, None).await,
        Err(r) => r,
    }
}

#[derive(Template)]
#[template(path = "console/secret.html")]
pub(super) struct SecretBody<'a> {
    app_href: String,
    heading: &'a str,
    name: &'a str,
    client_id: &'a str,
    secret: &'a str,
    grace: Option<String>,
    token_endpoint: &'a str,
}

/// The page that shows a secret, once (never cached: `pages::page` sends `no-store`).
pub(super) fn secret_page(app: &App, s: &Session, heading: &str, c: &Client, secret: &Secret) -> Response {
    let grace = c
        .previous_secret_hash
        .as_ref()
        .filter(|_| c.previous_secret_until > app.now())
        .map(|_| format!("keeps working until {}", date(c.previous_secret_until)));
    let body = render(&SecretBody {
        app_href: s.app_url("/console/app", &c.client_id),
        heading,
        name: &app_name(c),
        client_id: &c.client_id,
        secret: secret.expose(),
        grace,
        token_endpoint: &app.config.endpoint("/oauth2/token"),
    });
    console_page(s, 200, heading, "apps", None, None, &body)
}

/// `POST /console/apps`: create an app from the form; its secret is shown once.
pub(super) async fn create_app(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let tenant = match svc::tenant(&app, s.tenant()).await {
        Ok(t) => t.value,
        Err(e) => return admin_error(e).err().unwrap_or_else(no_tenant),
    };
    let scope: Vec<&str> = tenant
        .scopes
        .keys()
        .filter(|n| p.get(&format!("scope.{n}")).is_some())
        .map(String::as_str)
        .collect();
    let mut body = json!({
        "client_name": p.get("name").unwrap_or("").trim(),
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": scope.join(" "),
    });
    match p.get("kind") {
        Some("users") => {
            let uris: Vec<&str> = p
                .get("redirect_uris")
                .unwrap_or("")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            body["grant_types"] = json!(["authorization_code", "refresh_token"]);
            body["response_types"] = json!(["code"]);
            body["redirect_uris"] = json!(uris);
        }
        Some("own") => {
            body["grant_types"] = json!(["client_credentials"]);
            body["response_types"] = json!([]);
        }
        Some("device") => {
            // A CLI or a device without a browser (RFC 8628): a public client, as it keeps no
            // secret; its user approves each device on the verification page.
            body["grant_types"] = json!(["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"]);
            body["response_types"] = json!([]);
            body["token_endpoint_auth_method"] = json!("none");
        }
        Some("federated") => {
            // A workload that authenticates with its platform's token (a trusted workload
            // issuer's), as `POST /admin/v1/clients` with `federated_credential` makes one.
            let subjects: Vec<&str> = p
                .get("subjects")
                .unwrap_or("")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let mut credential = json!({
                "issuer": p.get("federated_issuer").unwrap_or("").trim(),
                "subjects": subjects,
            });
            if let Some(aud) = p.get("audience").map(str::trim).filter(|a| !a.is_empty()) {
                credential["audience"] = json!(aud);
            }
            body["grant_types"] = json!(["client_credentials"]);
            body["response_types"] = json!([]);
            body["token_endpoint_auth_method"] = json!("federated");
            body["federated_credential"] = credential;
        }
        _ => return new_app_form(&app, &s, Some(p), Some("Choose how the app acts.")).await,
    }
    if p.get("dpop_bound").is_some() {
        body["dpop_bound_access_tokens"] = json!(true);
    }
    if body["client_name"].as_str().is_some_and(str::is_empty) {
        return new_app_form(&app, &s, Some(p), Some("Give the app a name.")).await;
    }
    match svc::create_client(&app, s.tenant(), &body, &s.admin.actor).await {
        Ok(reg) => match &reg.secret {
            Some(secret) => secret_page(&app, &s, "Application created", &reg.client, secret),
            None => see_other(&s.app_url("/console/app", &reg.client.client_id)),
        },
        Err(e) => match admin_error(e) {
            Ok(msg) => new_app_form(&app, &s, Some(p), Some(&msg)).await,
            Err(r) => r,
        },
    }
}

#[derive(Template)]
#[template(path = "console/app.html")]
pub(super) struct AppBody<'a> {
    all_href: String,
    secret_action: String,
    toggle_action: String,
    delete_href: String,
    csrf: &'a str,
    client_id: &'a str,
    name: String,
    kind: &'static str,
    scopes: Vec<String>,
    redirect_uris: &'a [String],
    auth_method: &'a str,
    dpop: bool,
    /// A `federated` client's workload issuer and subjects.
    workload: Option<(&'a str, &'a [String])>,
    created: String,
    last_used: String,
    grace: Option<String>,
    /// (href, name) of the app it is an agent of.
    agent_of: Option<(String, String)>,
    disabled: bool,
    managed: bool,
    has_secret: bool,
    users: Vec<(String, String)>,
    more_users: String,
    /// (href, client id, name) of each of its agents.
    agents: Vec<(String, String, String)>,
}

pub(super) async fn app_view(app: &App, s: &Session, client_id: &str, error: Option<&str>) -> Response {
    let d = match con::app_detail(app, s.tenant(), &ClientId::from(client_id)).await {
        Ok(d) => d,
        Err(AdminError::NotFound(_)) => {
            return console_page(
                s,
                404,
                "Not found",
                "apps",
                None,
                Some("There is no such application."),
                "",
            );
        }
        Err(e) => {
            return admin_error(e)
                .err()
                .unwrap_or_else(|| pages::error_page(400, "The page could not be shown."));
        }
    };
    let c = &d.client;
    let now = app.now();
    let body = render(&AppBody {
        all_href: s.url("/console/apps"),
        secret_action: s.app_url("/console/app/secret", &c.client_id),
        toggle_action: s.app_url(
            if c.disabled {
                "/console/app/enable"
            } else {
                "/console/app/disable"
            },
            &c.client_id,
        ),
        delete_href: s.app_url("/console/app/delete", &c.client_id),
        csrf: &s.csrf(),
        client_id: &c.client_id,
        name: app_name(c),
        kind: kind(c),
        scopes: c.metadata.scopes().iter().map(str::to_string).collect(),
        redirect_uris: &c.metadata.redirect_uris,
        auth_method: c.metadata.token_endpoint_auth_method.as_str(),
        dpop: c.metadata.dpop_bound_access_tokens,
        workload: c
            .metadata
            .federated_credential
            .as_ref()
            .map(|f| (f.issuer.as_str(), f.subjects.as_slice())),
        created: date(c.issued_at),
        last_used: when(d.last_used),
        grace: c
            .previous_secret_hash
            .as_ref()
            .filter(|_| c.previous_secret_until > now)
            .map(|_| format!("keeps working until {}", date(c.previous_secret_until))),
        agent_of: d
            .agent_of
            .as_ref()
            .map(|a| (s.app_url("/console/app", &a.client_id), app_name(a))),
        disabled: c.disabled,
        managed: c.metadata.scopes().contains(ADMIN_SCOPE),
        has_secret: c.secret_hash.is_some(),
        users: d
            .users
            .iter()
            .map(|u| {
                (
                    u.name
                        .clone()
                        .map_or_else(|| u.username.clone(), |n| format!("{n} ({})", u.username)),
                    u.email.clone().unwrap_or_default(),
                )
            })
            .collect(),
        more_users: if d.more_beyond {
            format!("{} or more", d.more_users.max(1))
        } else {
            d.more_users.to_string()
        },
        agents: d
            .agents
            .iter()
            .map(|a| {
                (
                    s.app_url("/console/app", &a.client_id),
                    a.client_id.to_string(),
                    app_name(a),
                )
            })
            .collect(),
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        &app_name(c),
        "apps",
        None,
        error,
        &body,
    )
}

pub(super) async fn app_page(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match page_session(&app, &query, &headers).await {
        Ok(s) => app_view(&app, &s, app_id(&ids), None).await,
        Err(r) => r,
    }
}

pub(super) async fn rotate(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let client_id = app_id(&ids);
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let grace = form
        .params
        .get("grace_seconds")
        .and_then(|g| g.parse::<i64>().ok())
        .unwrap_or(86_400);
    match svc::rotate_secret(
        &app,
        s.tenant(),
        &ClientId::from(client_id),
        grace,
        &s.admin.actor,
        false,
    )
    .await
    {
        Ok((secret, c)) => secret_page(&app, &s, "New secret", &c, &secret),
        Err(e) => match admin_error(e) {
            Ok(msg) => app_view(&app, &s, client_id, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

pub(super) async fn set_disabled(
    app: &App,
    query: &Option<String>,
    form: &PageForm,
    client_id: &str,
    disabled: bool,
) -> Response {
    let s = match form_session(app, query, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let patch = json!({"disabled": disabled});
    match svc::patch_client(
        app,
        s.tenant(),
        &ClientId::from(client_id),
        None,
        &patch,
        &s.admin.actor,
    )
    .await
    {
        Ok(_) => see_other(&s.url_with(
            "/console/apps",
            &[("notice", if disabled { "disabled" } else { "enabled" })],
        )),
        Err(e) => match admin_error(e) {
            Ok(msg) => app_view(app, &s, client_id, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

pub(super) async fn disable(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(q): RawQuery,
    form: PageForm,
) -> Response {
    set_disabled(&app, &q, &form, app_id(&ids), true).await
}

pub(super) async fn enable(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(q): RawQuery,
    form: PageForm,
) -> Response {
    set_disabled(&app, &q, &form, app_id(&ids), false).await
}

#[derive(Template)]
#[template(path = "console/confirm_delete.html")]
pub(super) struct ConfirmDeleteBody<'a> {
    action: String,
    cancel_href: String,
    csrf: &'a str,
    client_id: &'a str,
    name: String,
    agents: usize,
}

pub(super) async fn confirm_delete(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let d = match con::app_detail(&app, s.tenant(), &ClientId::from(app_id(&ids))).await {
        Ok(d) => d,
        Err(e) => {
            return match admin_error(e) {
                Ok(msg) => console_page(&s, 404, "Not found", "apps", None, Some(&msg), ""),
                Err(r) => r,
            };
        }
    };
    let body = render(&ConfirmDeleteBody {
        action: s.app_url("/console/app/delete", &d.client.client_id),
        cancel_href: s.app_url("/console/app", &d.client.client_id),
        csrf: &s.csrf(),
        client_id: &d.client.client_id,
        name: app_name(&d.client),
        agents: d.agents.len(),
    });
    console_page(&s, 200, "Delete application", "apps", None, None, &body)
}

pub(super) async fn delete(
    StateX(app): StateX<State>,
    ids: Ids,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let client_id = app_id(&ids);
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match svc::delete_client(&app, s.tenant(), &ClientId::from(client_id), &s.admin.actor).await {
        Ok(()) => see_other(&s.url_with("/console/apps", &[("notice", "deleted")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => app_view(&app, &s, client_id, Some(&msg)).await,
            Err(r) => r,
        },
    }
}
