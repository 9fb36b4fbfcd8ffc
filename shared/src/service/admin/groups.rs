//! Groups and memberships through the admin API.

use super::*;

// ---- groups -----------------------------------------------------------------------------------

pub use crate::store::repo_users::{Group, Membership};

pub(super) fn check_group_name(name: &str) -> Result<String, AdminError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 || !crate::domain::client::is_displayable(n) {
        return Err(AdminError::Field(
            "name".into(),
            "a group name is 1 to 100 printable characters".into(),
        ));
    }
    Ok(n.to_string())
}

pub async fn list_groups(
    app: &App,
    tenant: &TenantId,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Group>, Option<String>), AdminError> {
    Ok(app.repo.groups_of(tenant, cursor, limit).await?)
}

/// A group of the tenant; another tenant's is not found.
pub async fn group(app: &App, tenant: &TenantId, gid: &str) -> Result<Versioned<Group>, AdminError> {
    app.repo
        .group(gid)
        .await?
        .filter(|g| g.value.tenant == tenant)
        .ok_or_else(|| AdminError::NotFound("group".into()))
}

pub async fn create_group(
    app: &App,
    tenant: &TenantId,
    name: &str,
    actor: &str,
) -> Result<Group, AdminError> {
    let g = Group {
        id: crate::secret::random_id(12),
        tenant: tenant.clone(),
        name: check_group_name(name)?,
        created_at: app.now(),
    };
    app.repo
        .commit(vec![
            app.repo.create_group_write(&g)?,
            app.repo
                .audit_write(tenant, AuditKind::GroupCreated, actor, &g.id)?,
        ])
        .await?;
    Ok(g)
}

/// Delete a group and its memberships. Apps whose policy named it no longer admit its former
/// members through it (at once: every use checks memberships).
pub async fn delete_group(app: &App, tenant: &TenantId, gid: &str, actor: &str) -> Result<(), AdminError> {
    let g = group(app, tenant, gid).await?;
    app.repo
        .commit(vec![
            app.repo.delete_group_write(gid, g.version),
            app.repo
                .audit_write(tenant, AuditKind::GroupDeleted, actor, gid)?,
        ])
        .await
        .map_err(|e| match e {
            StoreError::Conflict => AdminError::Stale,
            e => e.into(),
        })?;
    loop {
        let (members, _) = app.repo.members_of(gid, None, 12).await?;
        if members.is_empty() {
            return Ok(());
        }
        let writes = members
            .iter()
            .flat_map(|m| app.repo.remove_member_writes(gid, &m.sub))
            .collect();
        app.repo.commit(writes).await?;
    }
}

pub async fn add_member(
    app: &App,
    tenant: &TenantId,
    gid: &str,
    sub: &Subject,
    actor: &str,
) -> Result<Membership, AdminError> {
    group(app, tenant, gid).await?;
    user(app, tenant, sub).await?;
    let m = Membership {
        group: gid.to_string(),
        sub: sub.clone(),
        tenant: tenant.clone(),
        added_at: app.now(),
    };
    let mut writes: Vec<_> = app.repo.add_member_writes(&m)?.into();
    writes.push(app.repo.audit_write_detail(
        tenant,
        AuditKind::GroupMemberAdded,
        actor,
        gid,
        Some(format!("user={sub}")),
    )?);
    match app.repo.commit(writes).await {
        Ok(()) => Ok(m),
        Err(StoreError::Conflict) => Err(AdminError::NotFound("group".into())),
        Err(e) => Err(e.into()),
    }
}

/// Take a user out of a group: apps that admitted them only through it stop working for them now.
pub async fn remove_member(
    app: &App,
    tenant: &TenantId,
    gid: &str,
    sub: &Subject,
    actor: &str,
) -> Result<(), AdminError> {
    group(app, tenant, gid).await?;
    if !app.repo.groups_of_user(sub).await?.iter().any(|g| g == gid) {
        return Err(AdminError::NotFound("member".into()));
    }
    let mut writes: Vec<_> = app.repo.remove_member_writes(gid, sub).into();
    writes.push(app.repo.audit_write_detail(
        tenant,
        AuditKind::GroupMemberRemoved,
        actor,
        gid,
        Some(format!("user={sub}")),
    )?);
    app.repo.commit(writes).await?;
    Ok(())
}

pub async fn members(
    app: &App,
    tenant: &TenantId,
    gid: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<Membership>, Option<String>), AdminError> {
    group(app, tenant, gid).await?;
    Ok(app.repo.members_of(gid, cursor, limit).await?)
}
