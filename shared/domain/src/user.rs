//! End users: usernames, argon2id password hashes, and the login-throttle rule.

use serde::{Deserialize, Serialize};

pub use super::id::Subject;
use super::tenant::TenantId;
use crate::secret::Secret;

/// A user as stored. `sub` is a stable opaque id, unique across tenants; the password only as
/// an argon2id PHC string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub sub: Subject,
    pub tenant: TenantId,
    /// Normalised (see [`normalize_username`]).
    pub username: String,
    pub password_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub active: bool,
    pub created_at: i64,
    /// Moves on whenever the password changes or the user is deactivated; a session counts
    /// only under the epoch it was started in, so none survives such a change (not even one a
    /// lagging index kept out of the sweep).
    #[serde(default)]
    pub session_epoch: u64,
    /// Moves on with "sign out everywhere" and deactivation. A grant records the epoch of the
    /// user as they were authenticated for it (at the authorization request, or the password or
    /// assertion check) and stands only while it is the user's: every use of a grant reads the
    /// user, so a grant the cascade missed, or one a request in flight wrote after it, is dead
    /// all the same, and a reactivated user gets none back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grant_epoch: u64,
    /// Holds the tenant-admin role (the Connected Apps console; set by the operator or an admin).
    #[serde(default)]
    pub admin: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl User {
    /// Whether a grant made under `grant_epoch` still stands for this user (see
    /// [`User::grant_epoch`]).
    pub fn grant_stands(&self, grant_epoch: u64) -> bool {
        grant_epoch == self.grant_epoch
    }
}

/// Usernames compare case-insensitively: trimmed, Unicode NFC, lower-cased, 1–128 characters,
/// and held to the display-name rules (no spaces, control characters, bidi controls,
/// zero-width or other invisible format characters, no pile of combining marks), since they
/// are shown to administrators in the console, the CLI and the audit trail. One form per
/// canonically equivalent name (NFC): a decomposed `é` is the composed one. Compatibility forms
/// (fullwidth letters) and look-alikes from other scripts (Cyrillic `а`) are other names: the
/// tenant admin who creates users decides what it allows.
pub fn normalize_username(s: &str) -> Result<String, String> {
    let nfc = icu_normalizer::ComposingNormalizerBorrowed::new_nfc();
    // NFC again after lower-casing, which can leave a decomposed sequence (`İ` → `i̇`).
    let u = nfc
        .normalize(&nfc.normalize(s.trim()).to_lowercase())
        .into_owned();
    if u.is_empty() || u.chars().count() > 128 {
        return Err("a username is 1 to 128 characters".into());
    }
    if u.chars().any(char::is_whitespace) || !crate::client::is_displayable(&u) {
        return Err(
            "a username has no spaces, control characters or invisible formatting characters (bidi controls, zero-width characters)"
                .into(),
        );
    }
    Ok(u)
}

/// What the audit trail records for a username someone tried that is not one
/// ([`normalize_username`] refused it): never the string itself, which a stranger chose to
/// mislead whoever reads the trail, but a short digest that still tells repeated tries apart.
pub fn refused_username(s: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(s.as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("(invalid username, sha256 {hex}...)")
}

/// A password a user may set: 8–1024 characters.
pub fn check_new_password(p: &Secret) -> Result<(), String> {
    let n = p.expose().chars().count();
    if n < 8 {
        return Err("a password has at least 8 characters".into());
    }
    if n > 1024 {
        return Err("a password has at most 1024 characters".into());
    }
    Ok(())
}

/// A user's display name: 1 to 200 characters after trimming, held to the display-name rules
/// (no control, bidi or invisible format characters, no pile of combining marks), at creation
/// and at every change alike: it is shown on pages, in tokens and to administrators.
pub fn check_display_name(name: &str) -> Result<(), String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 || !crate::client::is_displayable(n) {
        return Err("a name is 1 to 200 printable characters".into());
    }
    Ok(())
}

/// An email address as far as we check it (the mailbox is the tenant's business), and fit to be
/// shown (no invisible or bidi characters).
pub fn check_email(e: &str) -> Result<(), String> {
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_control() || c.is_whitespace())
        && crate::client::is_displayable(e);
    if ok {
        Ok(())
    } else {
        Err("not an email address".into())
    }
}

/// Login attempts (reserved before the password is checked; a success clears them) for one
/// username within [`THROTTLE_WINDOW`] before further attempts are refused.
pub const THROTTLE_MAX_FAILURES: u32 = 5;
/// The window (seconds) in which failures count; a locked username unlocks when it ends.
pub const THROTTLE_WINDOW: i64 = 15 * 60;

/// Failed-login counter for one (tenant, username), as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailures {
    pub count: u32,
    pub first_at: i64,
}

impl LoginFailures {
    /// Seconds until the username may try again, if it is locked now.
    pub fn locked_for(&self, now: i64) -> Option<i64> {
        let ends = self.first_at + THROTTLE_WINDOW;
        (self.count >= THROTTLE_MAX_FAILURES && ends > now).then_some(ends - now)
    }
}

/// Reserve one more login attempt given the live counter (if any) at `now`: the new counter,
/// or `Err(seconds to wait)` if the limit is already reached in this window.
pub fn reserve_attempt(current: Option<&LoginFailures>, now: i64) -> Result<LoginFailures, i64> {
    match current {
        Some(f) if f.first_at + THROTTLE_WINDOW > now => match f.locked_for(now) {
            Some(wait) => Err(wait),
            None => Ok(LoginFailures {
                count: f.count + 1,
                first_at: f.first_at,
            }),
        },
        _ => Ok(LoginFailures {
            count: 1,
            first_at: now,
        }),
    }
}

/// A user's identity at an external identity provider (for the JWT bearer grant).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FederatedLink {
    pub tenant: TenantId,
    pub issuer: String,
    pub subject: String,
    /// The Bulwark user.
    pub sub: Subject,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(normalize_username("  Alice ").unwrap(), "alice");
        assert_eq!(
            normalize_username("alice@example.com").unwrap(),
            "alice@example.com"
        );
        // One form per name: NFC (a decomposed é is the composed one), then lower case.
        assert_eq!(normalize_username("Jose\u{301}").unwrap(), "jos\u{e9}");
        assert_eq!(normalize_username("JOS\u{c9}").unwrap(), "jos\u{e9}");
        assert_eq!(normalize_username("Zoë").unwrap(), "zoë");
        for bad in [
            "",
            "   ",
            "a b",
            "a\u{7}",
            &"x".repeat(129),
            // The review's spoof: a right-to-left override, an isolate, a zero-width space.
            "root\u{202e}gnp.exe\u{2066}\u{200b}<b>x</b>\"}{\"kind\":\"user.admin_granted",
            "ad\u{200b}min",
            "admin\u{2060}",
            "\u{feff}admin",
            "a\u{0301}\u{0301}\u{0301}\u{0301}",
        ] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "  ", "Alice\u{202e}", "a\u{200b}b", &"x".repeat(201)] {
            assert!(check_display_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_display_name(" Zoë Ünïcödé 日本 ").is_ok());
        assert!(check_email("a\u{200b}@example.com").is_err());
        assert!(check_email("alice@example.com").is_ok());
        let r = refused_username("root\u{202e}gnp.exe");
        assert!(r.starts_with("(invalid username, sha256 ") && r.is_ascii(), "{r}");
        assert_eq!(
            r,
            refused_username("root\u{202e}gnp.exe"),
            "repeated tries look alike"
        );
    }

    #[test]
    fn new_passwords_have_a_length() {
        assert!(check_new_password(&Secret::new("short")).is_err());
        assert!(check_new_password(&Secret::new("correct horse battery")).is_ok());
    }

    #[test]
    fn throttle() {
        let f = LoginFailures {
            count: 4,
            first_at: 1000,
        };
        assert_eq!(f.locked_for(1001), None);
        let f = LoginFailures {
            count: 5,
            first_at: 1000,
        };
        assert_eq!(f.locked_for(1001), Some(THROTTLE_WINDOW - 1));
        assert_eq!(f.locked_for(1000 + THROTTLE_WINDOW), None);
    }

    #[test]
    fn reservations() {
        let mut c: Option<LoginFailures> = None;
        for n in 1..=THROTTLE_MAX_FAILURES {
            let next = reserve_attempt(c.as_ref(), 1000).unwrap();
            assert_eq!(next.count, n);
            c = Some(next);
        }
        assert_eq!(reserve_attempt(c.as_ref(), 1010), Err(THROTTLE_WINDOW - 10));
        // The window ends: a fresh count.
        let fresh = reserve_attempt(c.as_ref(), 1000 + THROTTLE_WINDOW).unwrap();
        assert_eq!((fresh.count, fresh.first_at), (1, 1000 + THROTTLE_WINDOW));
    }

    #[test]
    fn emails() {
        assert!(check_email("a@b.example").is_ok());
        for bad in ["a", "@b.c", "a@b", "a @b.c", "a@.c"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
