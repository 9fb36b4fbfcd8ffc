//! Users through the admin API and the console: list, change, deactivate, delete.

use super::*;

// ---- users ------------------------------------------------------------------------------------

/// One page of the tenant's users, in username order.
pub async fn list_users(
    app: &App,
    tenant: &TenantId,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<User>, Option<String>), AdminError> {
    let (users, next) = app.repo.users_of(tenant, cursor, limit).await?;
    Ok((users.into_iter().map(|u| u.value).collect(), next))
}

/// A user of the tenant by `sub`; another tenant's is not found.
pub async fn user(app: &App, tenant: &TenantId, sub: &Subject) -> Result<Versioned<User>, AdminError> {
    app.repo
        .user(sub)
        .await?
        .filter(|u| u.value.tenant.as_str() == tenant)
        .ok_or_else(|| AdminError::NotFound("user".into()))
}

/// What a user PATCH may change (`None`: unchanged; `Some(None)`: removed).
#[derive(Default)]
pub struct UserChanges {
    pub name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub admin: Option<bool>,
    pub password: Option<Secret>,
    /// Sign the user out everywhere ([`SignOut::Everywhere`]): with a new password after a
    /// suspected compromise, or on its own.
    pub sign_out_everywhere: bool,
}

pub(super) fn check_name(name: &str) -> Result<(), AdminError> {
    crate::domain::user::check_display_name(name).map_err(|why| AdminError::Field("name".into(), why))
}

/// Change a user's profile, admin role or password. A password change or a change of role
/// ends the user's sessions; `sign_out_everywhere` ends them and every grant of the user
/// (with or without a new password), the user staying active.
pub async fn patch_user(
    app: &App,
    tenant: &TenantId,
    sub: &Subject,
    expected_version: Option<u64>,
    changes: UserChanges,
    actor: &str,
) -> Result<Versioned<User>, AdminError> {
    if let Some(Some(n)) = &changes.name {
        check_name(n)?;
    }
    if let Some(Some(e)) = &changes.email {
        check_email(e).map_err(|why| AdminError::Field("email".into(), why))?;
    }
    let hash = match &changes.password {
        Some(p) => {
            crate::domain::user::check_new_password(p)
                .map_err(|why| AdminError::Field("password".into(), why))?;
            let p = p.clone();
            Some(crate::service::users::on_hashing_pool(move || crate::secret::hash_password(&p)).await?)
        }
        None => None,
    };
    let current = user(app, tenant, sub).await?;
    check_version(expected_version, current.version)?;
    let mut u = current.value.clone();
    if let Some(n) = changes.name {
        u.name = n.map(|s| s.trim().to_string());
    }
    if let Some(e) = changes.email {
        u.email = e;
    }
    let role_changed = changes.admin.is_some_and(|a| a != u.admin);
    if let Some(a) = changes.admin {
        u.admin = a;
    }
    let sign_out = (hash.is_some() || role_changed || changes.sign_out_everywhere)
        .then(|| SignOut::everywhere_if(changes.sign_out_everywhere));
    if let Some(h) = hash {
        u.password_hash = h;
    }
    if let Some(s) = sign_out {
        s.apply(&mut u);
    }
    let mut writes = vec![
        app.repo.replace_user_write(&u, current.version)?,
        app.repo.audit_write(tenant, AuditKind::UserUpdated, actor, sub)?,
    ];
    if changes.password.is_some() {
        writes.push(
            app.repo
                .audit_write(tenant, AuditKind::UserPasswordSet, actor, sub)?,
        );
    }
    if let Some(s) = sign_out {
        writes.extend(s.audit_write(app, tenant, actor, sub)?);
    }
    if role_changed {
        let kind = if u.admin {
            AuditKind::UserAdminGranted
        } else {
            AuditKind::UserAdminRemoved
        };
        writes.push(app.repo.audit_write(tenant, kind, actor, sub)?);
    }
    match app.repo.commit(writes).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(stale()),
        Err(e) => return Err(e.into()),
    }
    if let Some(s) = sign_out {
        s.after_commit(app, tenant, sub, actor).await?;
    }
    Ok(Versioned {
        value: u,
        version: current.version + 1,
    })
}

/// Deactivate (`active = false`) or reactivate a user. Deactivation ends their sessions and
/// grants (so their refresh tokens and access tokens) at once; reactivation brings none back.
pub async fn set_active(
    app: &App,
    tenant: &TenantId,
    sub: &Subject,
    active: bool,
    actor: &str,
) -> Result<User, AdminError> {
    let current = user(app, tenant, sub).await?;
    let name = current.value.username.clone();
    if active {
        crate::service::users::reactivate(app, tenant, &name, actor).await
    } else {
        crate::service::users::deactivate_by(app, tenant, &name, actor).await
    }
}

/// Delete a user: deactivated first (their sessions and grants end), then their consents and
/// agent delegations, then the user and their username (free for a new user, who gets a new
/// `sub`).
pub async fn delete_user(app: &App, tenant: &TenantId, sub: &Subject, actor: &str) -> Result<(), AdminError> {
    let u = user(app, tenant, sub).await?;
    if u.value.active {
        set_active(app, tenant, sub, false, actor).await?;
    }
    crate::service::users::end_consents(app, tenant, sub).await?;
    // Their links to identity providers go too (the subject may be linked to someone else).
    for l in app.repo.links_of(sub).await? {
        app.repo.commit(vec![app.repo.delete_link_write(&l)]).await?;
    }
    for gid in app.repo.groups_of_user(sub).await? {
        let mut writes = app.repo.remove_member_writes(&gid, sub).to_vec();
        writes.push(app.repo.audit_write_detail(
            tenant,
            AuditKind::GroupMemberRemoved,
            actor,
            &gid,
            Some(format!("user={sub}")),
        )?);
        app.repo.commit(writes).await?;
    }
    for _ in 0..5 {
        let current = user(app, tenant, sub).await?;
        let mut writes = app
            .repo
            .delete_user_writes(&current.value, current.version)
            .to_vec();
        writes.push(app.repo.audit_write(tenant, AuditKind::UserDeleted, actor, sub)?);
        match app.repo.commit(writes).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AdminError::OAuth(OAuthError::unavailable()))
}
