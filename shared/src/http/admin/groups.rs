//! `/admin/v1/groups`: groups of users, for apps' user policies.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub group_id: String,
    pub name: String,
    pub created_at: i64,
}

impl From<&svc::Group> for GroupView {
    fn from(g: &svc::Group) -> Self {
        Self {
            group_id: g.id.clone(),
            name: g.name.clone(),
            created_at: g.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    /// 1 to 100 printable characters.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub added_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/groups", tag = "groups", params(ListParams),
    responses((status = 200, body = GroupList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_groups(
    StateX(app): StateX<State>,
    admin: Admin,
    QueryOf(q): QueryOf<ListParams>,
) -> Answer {
    let (limit, cursor) = q.page()?;
    let (groups, next) = svc::list_groups(&app, &admin.tenant, cursor.as_deref(), limit).await?;
    Ok(json_answer(
        StatusCode::OK,
        &GroupList {
            items: groups.iter().map(GroupView::from).collect(),
            next_cursor: encode_cursor(next),
        },
        None,
    ))
}

#[utoipa::path(post, path = "/admin/v1/groups", tag = "groups", request_body = GroupInput,
    responses((status = 201, body = GroupView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn create_group(
    StateX(app): StateX<State>,
    admin: Admin,
    BodyOf(body): BodyOf<GroupInput>,
) -> Answer {
    let g = svc::create_group(&app, &admin.tenant, &body.name, &admin.actor).await?;
    Ok(json_answer(StatusCode::CREATED, &GroupView::from(&g), None))
}

#[utoipa::path(get, path = "/admin/v1/groups/{group_id}", tag = "groups", params(("group_id" = String, Path)),
    responses((status = 200, body = GroupView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn get_group(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(gid): PathOf<String>,
) -> Answer {
    let g = svc::group(&app, &admin.tenant, &gid).await?;
    Ok(json_answer(StatusCode::OK, &GroupView::from(&g.value), None))
}

#[utoipa::path(delete, path = "/admin/v1/groups/{group_id}", tag = "groups", params(("group_id" = String, Path)),
    responses((status = 204, description = "deleted with its memberships"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn delete_group(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(gid): PathOf<String>,
) -> Answer {
    svc::delete_group(&app, &admin.tenant, &gid, &admin.actor).await?;
    Ok(no_content())
}

#[utoipa::path(get, path = "/admin/v1/groups/{group_id}/members", tag = "groups",
    params(("group_id" = String, Path), ListParams),
    responses((status = 200, body = MemberList), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn list_members(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf(gid): PathOf<String>,
    QueryOf(q): QueryOf<ListParams>,
) -> Answer {
    let (limit, cursor) = q.page()?;
    let (members, next) = svc::members(&app, &admin.tenant, &gid, cursor.as_deref(), limit).await?;
    Ok(json_answer(
        StatusCode::OK,
        &MemberList {
            items: members
                .into_iter()
                .map(|m| MemberView {
                    user_id: m.sub.into_string(),
                    added_at: m.added_at,
                })
                .collect(),
            next_cursor: encode_cursor(next),
        },
        None,
    ))
}

#[utoipa::path(put, path = "/admin/v1/groups/{group_id}/members/{user_id}", tag = "groups",
    params(("group_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, body = MemberView), (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn add_member(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf((gid, sub)): PathOf<(String, Subject)>,
) -> Answer {
    let m = svc::add_member(&app, &admin.tenant, &gid, &sub, &admin.actor).await?;
    Ok(json_answer(
        StatusCode::OK,
        &MemberView {
            user_id: m.sub.into_string(),
            added_at: m.added_at,
        },
        None,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/groups/{group_id}/members/{user_id}", tag = "groups",
    params(("group_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "removed; apps that admitted the user only through this group stop working for them"),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(super) async fn remove_member(
    StateX(app): StateX<State>,
    admin: Admin,
    PathOf((gid, sub)): PathOf<(String, Subject)>,
) -> Answer {
    svc::remove_member(&app, &admin.tenant, &gid, &sub, &admin.actor).await?;
    Ok(no_content())
}
