//! Who may use an app, by the tenant administrator's say: the tenant's **app allowlist** (when
//! on, users may authorize only the listed apps) and an app's **user policy** (only these users,
//! or members of these groups, may authorize it). The rule here decides; the service layer asks
//! it wherever a user's authority reaches an app (the authorization endpoint, code redemption,
//! refresh, the password and JWT bearer grants, and every use of an access token), so that
//! existing grants stop working the moment the administrator says no.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Which users may authorize an app (`None` on the client: everyone in the tenant).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPolicy {
    /// User ids (`sub`).
    #[serde(default)]
    pub users: BTreeSet<String>,
    /// Group ids.
    #[serde(default)]
    pub groups: BTreeSet<String>,
}

impl UserPolicy {
    /// Whether deciding needs the user's groups.
    pub fn needs_groups(&self, sub: &str) -> bool {
        !self.users.contains(sub) && !self.groups.is_empty()
    }
}

/// Most apps on an allowlist, users or groups in one policy (they live in one item).
pub const MAX_LISTED: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The tenant's allowlist is on and does not name the app.
    NotOnAllowlist,
    /// The app's user policy does not include the user.
    NotAuthorizedUser,
    /// The app is the tenant's console and the user does not hold the admin role.
    NotAdministrator,
}

/// The decision. `user_groups`: the user's groups (only consulted when the policy names groups
/// and not the user).
pub fn decide(
    allowlist: Option<&BTreeSet<String>>,
    client_id: &str,
    policy: Option<&UserPolicy>,
    sub: &str,
    user_groups: &[String],
) -> Result<(), Denied> {
    if let Some(list) = allowlist
        && !list.contains(client_id)
    {
        return Err(Denied::NotOnAllowlist);
    }
    match policy {
        None => Ok(()),
        Some(p) if p.users.contains(sub) || user_groups.iter().any(|g| p.groups.contains(g)) => Ok(()),
        Some(_) => Err(Denied::NotAuthorizedUser),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn decisions() {
        let list = set(&["app1"]);
        let policy = UserPolicy {
            users: set(&["alice"]),
            groups: set(&["g-eng"]),
        };
        let empty = UserPolicy::default();
        for (allow, client, pol, sub, groups, expected) in [
            (None, "app1", None, "bob", vec![], Ok(())),
            (Some(&list), "app1", None, "bob", vec![], Ok(())),
            (
                Some(&list),
                "app2",
                None,
                "bob",
                vec![],
                Err(Denied::NotOnAllowlist),
            ),
            (
                Some(&list),
                "app2",
                Some(&policy),
                "alice",
                vec![],
                Err(Denied::NotOnAllowlist),
            ),
            (None, "app2", Some(&policy), "alice", vec![], Ok(())),
            (
                None,
                "app2",
                Some(&policy),
                "bob",
                vec![],
                Err(Denied::NotAuthorizedUser),
            ),
            (
                None,
                "app2",
                Some(&policy),
                "bob",
                vec!["g-eng".to_string()],
                Ok(()),
            ),
            (
                None,
                "app2",
                Some(&policy),
                "bob",
                vec!["g-ops".to_string()],
                Err(Denied::NotAuthorizedUser),
            ),
            (
                None,
                "app2",
                Some(&empty),
                "alice",
                vec![],
                Err(Denied::NotAuthorizedUser),
            ),
        ] {
            assert_eq!(
                decide(allow, client, pol, sub, &groups),
                expected,
                "{client} {sub} {groups:?}"
            );
        }
        assert!(!policy.needs_groups("alice"));
        assert!(policy.needs_groups("bob"));
        assert!(!empty.needs_groups("bob"));
    }
}
