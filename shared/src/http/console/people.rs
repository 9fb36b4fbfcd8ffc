//! The console's users pages: the list, a new user, deactivate and reactivate, a new password.

use super::*;

// ---- users -----------------------------------------------------------------------------------

pub(super) struct UserRow {
    /// Where its Deactivate (or Reactivate) form posts.
    action: String,
    /// Its password reset form.
    reset_href: String,
    username: String,
    display: String,
    email: String,
    admin: bool,
    active: bool,
    created: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub(super) struct UsersBody<'a> {
    create_action: String,
    csrf: &'a str,
    rows: Vec<UserRow>,
    next_href: Option<String>,
    form_username: &'a str,
    form_name: &'a str,
    form_email: &'a str,
}

pub(super) async fn users_view(
    app: &App,
    s: &Session,
    cursor: Option<&str>,
    form: Option<&Params>,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (list, next) = match list_page(svc::list_users(app, s.tenant(), cursor, PAGE).await) {
        Ok(page) => page,
        Err(r) => return r,
    };
    let rows = list
        .into_iter()
        .map(|u| UserRow {
            is_me: u.sub == s.admin.actor,
            action: s.url(&format!(
                "/console/users/{}/{}",
                links::segment(&u.sub),
                if u.active { "deactivate" } else { "reactivate" }
            )),
            reset_href: s.url(&format!("/console/users/{}/password", links::segment(&u.sub))),
            display: u.name.clone().unwrap_or_else(|| u.username.clone()),
            email: u.email.clone().unwrap_or_default(),
            admin: u.admin,
            active: u.active,
            created: date(u.created_at),
            username: u.username,
        })
        .collect();
    let get = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("");
    let body = render(&UsersBody {
        create_action: s.url("/console/users"),
        csrf: &s.csrf(),
        rows,
        next_href: next_href(s, "/console/users", &[], next),
        form_username: get("username"),
        form_name: get("name"),
        form_email: get("email"),
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Users",
        "users",
        notice,
        error,
        &body,
    )
}

pub(super) async fn users_page(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let s = match page_session(&app, &query, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query_params(&query);
    users_view(&app, &s, cursor_of(&q).as_deref(), None, notice_of(&q), None).await
}

pub(super) async fn create_user(
    StateX(app): StateX<State>,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let password = Secret::new(p.get("password").unwrap_or(""));
    let created = users::create_by(
        &app,
        users::NewUser {
            tenant: s.tenant(),
            username: p.get("username").unwrap_or(""),
            password: &password,
            email: p.get("email").map(str::trim).filter(|e| !e.is_empty()),
            name: p.get("name").map(str::trim).filter(|n| !n.is_empty()),
            admin: p.get("admin").is_some(),
        },
        &s.admin.actor,
    )
    .await;
    match created {
        Ok(_) => see_other(&s.url_with("/console/users", &[("notice", "user-created")])),
        Err(e) => match admin_error(e) {
            Ok(msg) => users_view(&app, &s, None, Some(p), None, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

pub(super) async fn set_active(
    app: &App,
    query: &Option<String>,
    form: &PageForm,
    sub: &str,
    active: bool,
) -> Response {
    let s = match form_session(app, query, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if sub == s.admin.actor && !active {
        return users_view(app, &s, None, None, None, Some("You cannot deactivate yourself.")).await;
    }
    match svc::set_active(app, s.tenant(), &Subject::from(sub), active, &s.admin.actor).await {
        Ok(_) => see_other(&s.url_with(
            "/console/users",
            &[("notice", if active { "reactivated" } else { "deactivated" })],
        )),
        Err(e) => match admin_error(e) {
            Ok(msg) => users_view(app, &s, None, None, None, Some(&msg)).await,
            Err(r) => r,
        },
    }
}

pub(super) async fn deactivate(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(q): RawQuery,
    form: PageForm,
) -> Response {
    set_active(&app, &q, &form, &sub, false).await
}

pub(super) async fn reactivate(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(q): RawQuery,
    form: PageForm,
) -> Response {
    set_active(&app, &q, &form, &sub, true).await
}

#[derive(Template)]
#[template(path = "console/password.html")]
pub(super) struct PasswordBody<'a> {
    action: String,
    cancel_href: String,
    csrf: &'a str,
    username: &'a str,
    display: String,
    is_me: bool,
    sign_out_everywhere: bool,
}

/// The password reset form: "Sign out everywhere" is checked unless the administrator
/// unchecked it in the form shown again.
pub(super) async fn password_view(
    app: &App,
    s: &Session,
    sub: &str,
    sign_out_everywhere: bool,
    error: Option<&str>,
) -> Response {
    let u = match svc::user(app, s.tenant(), &Subject::from(sub)).await {
        Ok(u) => u.value,
        Err(e) => {
            return match admin_error(e) {
                Ok(msg) => console_page(s, 404, "Not found", "users", None, Some(&msg), ""),
                Err(r) => r,
            };
        }
    };
    let body = render(&PasswordBody {
        action: s.url(&format!("/console/users/{}/password", links::segment(&u.sub))),
        cancel_href: s.url("/console/users"),
        csrf: &s.csrf(),
        username: &u.username,
        display: u.name.clone().unwrap_or_else(|| u.username.clone()),
        is_me: u.sub == s.admin.actor,
        sign_out_everywhere,
    });
    console_page(
        s,
        if error.is_some() { 400 } else { 200 },
        "Reset password",
        "users",
        None,
        error,
        &body,
    )
}

pub(super) async fn password_page(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match page_session(&app, &query, &headers).await {
        Ok(s) => password_view(&app, &s, &sub, true, None).await,
        Err(r) => r,
    }
}

/// `POST /console/users/{user_id}/password`: a new password (their sessions end) and, when
/// "Sign out everywhere" is checked, every grant of theirs too (`service::admin::patch_user`).
pub(super) async fn set_password(
    StateX(app): StateX<State>,
    Path(sub): Path<String>,
    RawQuery(query): RawQuery,
    form: PageForm,
) -> Response {
    let s = match form_session(&app, &query, &form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let p = &form.params;
    let everywhere = p.get("sign_out_everywhere").is_some();
    let changes = svc::UserChanges {
        password: Some(Secret::new(p.get("password").unwrap_or(""))),
        sign_out_everywhere: everywhere,
        ..Default::default()
    };
    match svc::patch_user(
        &app,
        s.tenant(),
        &Subject::from(sub.as_str()),
        None,
        changes,
        &s.admin.actor,
    )
    .await
    {
        Ok(_) => see_other(&s.url_with(
            "/console/users",
            &[(
                "notice",
                if everywhere {
                    "signed-out-everywhere"
                } else {
                    "password-set"
                },
            )],
        )),
        Err(e) => match admin_error(e) {
            Ok(msg) => password_view(&app, &s, &sub, everywhere, Some(&msg)).await,
            Err(r) => r,
        },
    }
}
