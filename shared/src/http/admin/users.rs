//! `/admin/v1/users`: end users, their activation, their connected apps.

use super::*;

/// An end user. Never a password or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The `sub` of the user's tokens.
    pub user_id: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub active: bool,
    /// Holds the tenant-admin role.
    pub admin: bool,
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            user_id: u.sub.to_string(),
            username: u.username.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            active: u.active,
            admin: u.admin,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    pub username: String,
    /// At least 12 characters; stored only as an argon2id hash.
    #[serde(deserialize_with = "password")]
    #[schema(value_type = String)]
    pub password: Secret,
    pub name: Option<String>,
    pub email: Option<String>,
    pub admin: Option<bool>,
}

/// A change to a user (JSON merge patch: absent leaves a field as it is, `null` removes name
/// or email). A new password or role ends their sessions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "patch")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch")]
    pub email: Option<Option<String>>,
    pub admin: Option<bool>,
    /// A new password (never `null`).
    #[serde(default, deserialize_with = "new_password")]
    #[schema(value_type = String, required = false)]
    pub password: Option<Secret>,
    /// `true`: sign the user out everywhere — their sessions and every grant (refresh tokens,
    /// the access tokens issued from them, agents' delegated tokens) end now; they stay active
    /// and sign in again with their (new) password. With `password` after a suspected
    /// compromise, or alone. Audited as `user.signed_out_everywhere`.
    pub sign_out_everywhere: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    pub next_cursor: Option<String>,
}

/// An app a user connected (consented to or holds a grant for).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserApp {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserAppList {
    pub items: Vec<UserApp>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/users", tag = "users", params(ListParams),
    responses((status = 200, body = UserList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_users(
    StateX(app): StateX<State>,
    admin: Admin,
    QueryOf(q): QueryOf<ListParams>,
) -> Answer {
    let (limit, cursor) = q.page()?;
    let (users, next) = svc::list_users(&app, &admin.tenant, cursor.as_deref(), limit).await?;
    Ok(json_answer(
        StatusCode::OK,
        &UserList {
            items: users.iter().map(UserView::from).collect(),
            next_cursor: encode_cursor(next),
        },
        None,
    ))
}

#[utoipa::path(post, path = "/admin/v1/users", tag = "users", request_body = UserInput,
    responses((status = 201, body = UserView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn create_user(
    StateX(app): StateX<State>,
    admin: Admin,
    BodyOf(body): BodyOf<UserInput>,
) -> Answer {
    let u = crate::service::users::create_by(
        &app,
        crate::service::users::NewUser {
            tenant: &admin.tenant,
            username: &body.username,
            password: &body.password,
            email: body.email.as_deref(),
            name: body.name.as_deref(),
            admin: body.admin.unwrap_or(false),
        },
        &admin.actor,
    )
    .await
    .map_err(|e| match e {
        AdminError::Invalid(why) => {
            let field = if why.contains("password") {
                "password"
            } else if why.contains("username") {
                "username"
            } else if why.contains("email") {
                "email"
            } else {
                "name"
            };
            Problem::invalid_field(field, why)
        }
        other => other.into(),
    })?;
    let mut resp = json_answer(StatusCode::CREATED, &UserView::from(&u), Some(1));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/admin/v1/users/{}",
        crate::http::links::segment(&u.sub)
    )) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/admin/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = UserView, headers(("ETag" = String))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn get_user(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(user_id): PathOf<Subject>,
) -> Answer {
    let u = svc::user(&app, &admin.tenant, &user_id).await?;
    Ok(json_answer(
        StatusCode::OK,
        &UserView::from(&u.value),
        Some(u.version),
    ))
}

#[utoipa::path(patch, path = "/admin/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path), ("If-Match" = Option<String>, Header, description = "the ETag of the user as read")),
    request_body = UserPatch,
    responses((status = 200, body = UserView, headers(("ETag" = String))),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn patch_user(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(user_id): PathOf<Subject>,
    headers: HeaderMap,
    BodyOf(body): BodyOf<UserPatch>,
) -> Answer {
    let expected = if_match(&headers)?;
    let changes = UserChanges {
        name: body.name,
        email: body.email,
        admin: body.admin,
        password: body.password,
        sign_out_everywhere: body.sign_out_everywhere.unwrap_or(false),
    };
    let u = svc::patch_user(&app, &admin.tenant, &user_id, expected, changes, &admin.actor).await?;
    Ok(json_answer(
        StatusCode::OK,
        &UserView::from(&u.value),
        Some(u.version),
    ))
}

#[utoipa::path(delete, path = "/admin/v1/users/{user_id}", tag = "users", params(("user_id" = String, Path)),
    responses((status = 204, description = "deleted; their sessions, grants, consents and tokens ended"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn delete_user(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(user_id): PathOf<Subject>,
) -> Answer {
    svc::delete_user(&app, &admin.tenant, &user_id, &admin.actor).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/admin/v1/users/{user_id}/deactivate", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = UserView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn deactivate_user(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(user_id): PathOf<Subject>,
) -> Answer {
    let u = svc::set_active(&app, &admin.tenant, &user_id, false, &admin.actor).await?;
    Ok(json_answer(StatusCode::OK, &UserView::from(&u), None))
}

#[utoipa::path(post, path = "/admin/v1/users/{user_id}/reactivate", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = UserView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn reactivate_user(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(user_id): PathOf<Subject>,
) -> Answer {
    let u = svc::set_active(&app, &admin.tenant, &user_id, true, &admin.actor).await?;
    Ok(json_answer(StatusCode::OK, &UserView::from(&u), None))
}

#[utoipa::path(get, path = "/admin/v1/users/{user_id}/apps", tag = "users", params(("user_id" = String, Path)),
    responses((status = 200, body = UserAppList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn user_apps(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(user_id): PathOf<Subject>,
) -> Answer {
    let u = svc::user(&app, &admin.tenant, &user_id).await?;
    let apps = crate::service::account::connected_apps(&app, &admin.tenant, &u.value.sub).await?;
    Ok(json_answer(
        StatusCode::OK,
        &UserAppList {
            items: apps
                .into_iter()
                .map(|a| UserApp {
                    client_id: a.client_id,
                    name: a.name,
                    scopes: a.scopes.into_iter().map(|(s, _)| s).collect(),
                    granted_at: a.granted_at,
                    last_used: a.last_used,
                })
                .collect(),
            next_cursor: None,
        },
        None,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/users/{user_id}/apps/{client_id}", tag = "users",
    params(("user_id" = String, Path), ("client_id" = String, Path)),
    responses((status = 204, description = "the user's consent, grants and tokens for the app ended"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn revoke_user_app(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf((user_id, client_id)): PathOf<(Subject, ClientId)>,
) -> Answer {
    let u = svc::user(&app, &admin.tenant, &user_id).await?;
    let revoked =
        crate::service::account::revoke_app(&app, &admin.tenant, &u.value.sub, &client_id, &admin.actor)
            .await?;
    if !revoked {
        return Err(Problem::not_found("connected app of this user"));
    }
    Ok(no_content())
}
