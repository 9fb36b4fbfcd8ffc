//! Who is a tenant administrator: the one rule, for the admin API and the console alike
//! (`service::admin::caller` applies it to a live token).

use crate::claims::AccessClaims;
use crate::client::{ADMIN_SCOPE, Client, Origin};
use crate::grant::Grant;
use crate::tenant::TenantId;
use crate::user::User;

/// The administrator a token speaks for, and the one tenant it may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    pub tenant: TenantId,
    /// Recorded in the audit trail: the admin client's id, or the console user's `sub`.
    pub actor: String,
    /// An admin-role user signed in to the console (not an admin client).
    pub console: bool,
}

/// Why a live token of ours does not speak for an administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotAdmin {
    /// A console token from before the user's new password or role change: no longer valid at
    /// all (401).
    Stale,
    /// Valid, but not an administrator's (403).
    Forbidden,
}

/// The administrator a live access token speaks for (its signature, expiry, revocation,
/// client, grant and user already checked, and read fresh: `client`, `user`, `grant`): a token
/// with [`ADMIN_SCOPE`] for the admin audience (`admin_audience`), that is either an
/// operator-made admin client's own token (client credentials: nobody acts for it) or an
/// admin-role user's token from the tenant's console, never delegated, from a sign-in since the
/// user's last new password or role change (the grant records the session epoch it was made
/// under); and whose client may still hold the scope now (the operator may have taken it away).
pub fn admin_of(
    claims: &AccessClaims,
    client: &Client,
    user: Option<&User>,
    grant: Option<&Grant>,
    admin_audience: &str,
) -> Result<Admin, NotAdmin> {
    let scoped = claims.scope.split(' ').any(|s| s == ADMIN_SCOPE) && claims.aud == admin_audience;
    let own = client.origin == Origin::Admin
        && claims.gid.is_none()
        && claims.act.is_none()
        && claims.sub == claims.client_id;
    let console = client.origin == Origin::Console
        && claims.gid.is_some()
        && claims.act.is_none()
        && user.is_some_and(|u| {
            u.admin && u.sub == claims.sub && grant.and_then(|g| g.user_epoch) == Some(u.session_epoch)
        });
    if client.origin == Origin::Console && !console {
        return Err(NotAdmin::Stale);
    }
    if !scoped || !(own || console) || !client.may_hold_admin_scope() {
        return Err(NotAdmin::Forbidden);
    }
    let tenant = TenantId::parse(&claims.tid).map_err(|_| NotAdmin::Forbidden)?;
    Ok(Admin {
        tenant,
        actor: if console {
            claims.sub.clone()
        } else {
            claims.client_id.clone()
        },
        console,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const AUD: &str = "https://id.example/admin/v1";

    fn claims(v: Value) -> AccessClaims {
        let mut base = json!({"iss": "https://id.example", "aud": AUD, "exp": 9, "iat": 1, "nbf": 1,
            "jti": "j", "tid": "acme", "scope": ADMIN_SCOPE});
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            b.extend(o.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn client(origin: &str, scope: &str) -> Client {
        serde_json::from_value(json!({"client_id": "c", "tenant": "acme", "secret_expires_at": 0,
            "issued_at": 1, "updated_at": 1, "origin": origin,
            "metadata": {"grant_types": ["client_credentials"], "response_types": [],
                "token_endpoint_auth_method": "client_secret_basic", "scope": scope}}))
        .unwrap()
    }

    fn user(admin: bool, epoch: u64) -> User {
        serde_json::from_value(json!({"sub": "u", "tenant": "acme", "username": "alice",
            "password_hash": "", "active": true, "created_at": 1, "session_epoch": epoch, "admin": admin}))
        .unwrap()
    }

    fn grant(epoch: Option<u64>) -> Grant {
        serde_json::from_value(
            json!({"gid": "g", "tenant": "acme", "sub": "u", "client_id": "console",
            "scope": ADMIN_SCOPE, "auth_time": 1, "created_at": 1, "last_used": 1, "expires_at": 9,
            "user_epoch": epoch}),
        )
        .unwrap()
    }

    #[test]
    fn an_operator_made_clients_own_token() {
        let c = client("admin", ADMIN_SCOPE);
        let own = claims(json!({"sub": "c", "client_id": "c"}));
        let a = admin_of(&own, &c, None, None, AUD).unwrap();
        assert_eq!(
            (a.tenant.as_str(), a.actor.as_str(), a.console),
            ("acme", "c", false)
        );
        let wrong_aud = claims(json!({"sub": "c", "client_id": "c", "aud": "https://api.example"}));
        assert_eq!(
            admin_of(&wrong_aud, &c, None, None, AUD),
            Err(NotAdmin::Forbidden)
        );
        let no_scope = claims(json!({"sub": "c", "client_id": "c", "scope": "api:read"}));
        assert_eq!(admin_of(&no_scope, &c, None, None, AUD), Err(NotAdmin::Forbidden));
        let for_a_user = claims(json!({"sub": "u", "client_id": "c", "gid": "g"}));
        assert_eq!(
            admin_of(&for_a_user, &c, None, None, AUD),
            Err(NotAdmin::Forbidden)
        );
        let delegated = claims(json!({"sub": "c", "client_id": "c", "act": {"sub": "agent"}}));
        assert_eq!(
            admin_of(&delegated, &c, None, None, AUD),
            Err(NotAdmin::Forbidden)
        );
        // A client that no longer holds the scope (the operator took it away).
        assert_eq!(
            admin_of(&own, &client("admin", "api:read"), None, None, AUD),
            Err(NotAdmin::Forbidden)
        );
        // A tenant admin's API client is not an operator-made one.
        assert_eq!(
            admin_of(&own, &client("api", ADMIN_SCOPE), None, None, AUD),
            Err(NotAdmin::Forbidden)
        );
    }

    #[test]
    fn an_admin_users_console_token_from_their_current_sign_in() {
        let tenant = crate::tenant::TenantId::parse("acme").unwrap();
        let c = crate::console::client(
            &tenant,
            &format!("https://id.example{}", crate::console::CALLBACK_PATH),
            1,
        );
        let t = claims(json!({"sub": "u", "client_id": c.client_id, "gid": "g"}));
        let a = admin_of(&t, &c, Some(&user(true, 3)), Some(&grant(Some(3))), AUD).unwrap();
        assert_eq!((a.actor.as_str(), a.console), ("u", true));
        // Not an admin (any more), a new password or role since, or no grant: not valid at all.
        for (u, g) in [
            (user(false, 3), grant(Some(3))),
            (user(true, 4), grant(Some(3))),
            (user(true, 3), grant(None)),
        ] {
            assert_eq!(admin_of(&t, &c, Some(&u), Some(&g), AUD), Err(NotAdmin::Stale));
        }
        assert_eq!(
            admin_of(&t, &c, None, Some(&grant(Some(3))), AUD),
            Err(NotAdmin::Stale)
        );
        let someone_else = claims(json!({"sub": "v", "client_id": c.client_id, "gid": "g"}));
        assert_eq!(
            admin_of(
                &someone_else,
                &c,
                Some(&user(true, 3)),
                Some(&grant(Some(3))),
                AUD
            ),
            Err(NotAdmin::Stale)
        );
    }
}
