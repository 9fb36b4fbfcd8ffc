//! What the audit trail records: one enum of every kind of event, so that no path writes a
//! kind by hand (a typo would be a kind nobody filters for), and the rules for what an event
//! may say (anything an unauthenticated request can put there is rendered safe first).
//!
//! Two families: [`AuditKind`], a change, written by `Repo::audit_write` as one write of the
//! transaction that makes the change (so an event exists exactly when its change landed); and
//! [`Noted`], something that happened and changed nothing (a failed login), written alone.

/// A security-relevant event, stored for the tenant admin and logged on target `audit`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: i64,
    pub tenant: String,
    /// e.g. `client.created`, `client.deleted`, `token.revoked`.
    pub kind: String,
    /// Who did it: a client id, `cli`, `dcr`.
    pub actor: String,
    /// What it was done to (a client id, a `jti`, ...). Never a secret.
    pub subject: String,
    /// More about it (e.g. a token exchange's app and scopes). Never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A change, recorded in the same transaction as the change itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditKind {
    ClientCreated,
    ClientUpdated,
    ClientDeleted,
    ClientExpired,
    ClientDisabled,
    ClientEnabled,
    ClientSecretRotated,
    ClientDocumentAdded,
    ClientDocumentChanged,
    ConsentGranted,
    ConsentDenied,
    ConsentRevoked,
    ConsentReset,
    GrantCreated,
    GrantRevoked,
    CodeReplayed,
    RefreshReused,
    RefreshRevoked,
    TokenRevoked,
    TokenExchanged,
    AgentFirstActed,
    AgentStopped,
    /// A session began (a successful sign-in).
    LoginSucceeded,
    /// The user ended a session on the account page.
    Logout,
    /// An administrator signed out of the console.
    ConsoleSignedOut,
    UserCreated,
    UserUpdated,
    UserDeleted,
    UserDeactivated,
    UserReactivated,
    UserPasswordSet,
    UserAdminGranted,
    UserAdminRemoved,
    UserLinked,
    /// Every grant of the user ended at once (e.g. with an admin's password reset).
    UserSignedOutEverywhere,
    TenantCreated,
    TenantLifetimesSet,
    ScopeAdded,
    ScopeUpdated,
    ScopeRemoved,
    ScopeRestricted,
    ScopeUnrestricted,
    ResourceAdded,
    ResourceRemoved,
    PolicyUpdated,
    PolicyPasswordGrantAllowed,
    PolicyPasswordGrantDenied,
    PolicyAppUsersSet,
    IssuerTrusted,
    IssuerRemoved,
    IatCreated,
    IatDeleted,
    GroupCreated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
}

impl AuditKind {
    /// Every kind, for tests and documentation.
    pub const ALL: &'static [AuditKind] = &[
        AuditKind::ClientCreated,
        AuditKind::ClientUpdated,
        AuditKind::ClientDeleted,
        AuditKind::ClientExpired,
        AuditKind::ClientDisabled,
        AuditKind::ClientEnabled,
        AuditKind::ClientSecretRotated,
        AuditKind::ClientDocumentAdded,
        AuditKind::ClientDocumentChanged,
        AuditKind::ConsentGranted,
        AuditKind::ConsentDenied,
        AuditKind::ConsentRevoked,
        AuditKind::ConsentReset,
        AuditKind::GrantCreated,
        AuditKind::GrantRevoked,
        AuditKind::CodeReplayed,
        AuditKind::RefreshReused,
        AuditKind::RefreshRevoked,
        AuditKind::TokenRevoked,
        AuditKind::TokenExchanged,
        AuditKind::AgentFirstActed,
        AuditKind::AgentStopped,
        AuditKind::LoginSucceeded,
        AuditKind::Logout,
        AuditKind::ConsoleSignedOut,
        AuditKind::UserCreated,
        AuditKind::UserUpdated,
        AuditKind::UserDeleted,
        AuditKind::UserDeactivated,
        AuditKind::UserReactivated,
        AuditKind::UserPasswordSet,
        AuditKind::UserAdminGranted,
        AuditKind::UserAdminRemoved,
        AuditKind::UserLinked,
        AuditKind::UserSignedOutEverywhere,
        AuditKind::TenantCreated,
        AuditKind::TenantLifetimesSet,
        AuditKind::ScopeAdded,
        AuditKind::ScopeUpdated,
        AuditKind::ScopeRemoved,
        AuditKind::ScopeRestricted,
        AuditKind::ScopeUnrestricted,
        AuditKind::ResourceAdded,
        AuditKind::ResourceRemoved,
        AuditKind::PolicyUpdated,
        AuditKind::PolicyPasswordGrantAllowed,
        AuditKind::PolicyPasswordGrantDenied,
        AuditKind::PolicyAppUsersSet,
        AuditKind::IssuerTrusted,
        AuditKind::IssuerRemoved,
        AuditKind::IatCreated,
        AuditKind::IatDeleted,
        AuditKind::GroupCreated,
        AuditKind::GroupDeleted,
        AuditKind::GroupMemberAdded,
        AuditKind::GroupMemberRemoved,
    ];

    /// The name stored and shown (`family.event`), as events have always been named.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditKind::ClientCreated => "client.created",
            AuditKind::ClientUpdated => "client.updated",
            AuditKind::ClientDeleted => "client.deleted",
            AuditKind::ClientExpired => "client.expired",
            AuditKind::ClientDisabled => "client.disabled",
            AuditKind::ClientEnabled => "client.enabled",
            AuditKind::ClientSecretRotated => "client.secret_rotated",
            AuditKind::ClientDocumentAdded => "client.document_added",
            AuditKind::ClientDocumentChanged => "client.document_changed",
            AuditKind::ConsentGranted => "consent.granted",
            AuditKind::ConsentDenied => "consent.denied",
            AuditKind::ConsentRevoked => "consent.revoked",
            AuditKind::ConsentReset => "consent.reset",
            AuditKind::GrantCreated => "grant.created",
            AuditKind::GrantRevoked => "grant.revoked",
            AuditKind::CodeReplayed => "code.replayed",
            AuditKind::RefreshReused => "refresh.reused",
            AuditKind::RefreshRevoked => "refresh.revoked",
            AuditKind::TokenRevoked => "token.revoked",
            AuditKind::TokenExchanged => "token.exchanged",
            AuditKind::AgentFirstActed => "agent.first_acted",
            AuditKind::AgentStopped => "agent.stopped",
            AuditKind::LoginSucceeded => "login.succeeded",
            AuditKind::Logout => "logout",
            AuditKind::ConsoleSignedOut => "console.signed_out",
            AuditKind::UserCreated => "user.created",
            AuditKind::UserUpdated => "user.updated",
            AuditKind::UserDeleted => "user.deleted",
            AuditKind::UserDeactivated => "user.deactivated",
            AuditKind::UserReactivated => "user.reactivated",
            AuditKind::UserPasswordSet => "user.password_set",
            AuditKind::UserAdminGranted => "user.admin_granted",
            AuditKind::UserAdminRemoved => "user.admin_removed",
            AuditKind::UserLinked => "user.linked",
            AuditKind::UserSignedOutEverywhere => "user.signed_out_everywhere",
            AuditKind::TenantCreated => "tenant.created",
            AuditKind::TenantLifetimesSet => "tenant.lifetimes_set",
            AuditKind::ScopeAdded => "scope.added",
            AuditKind::ScopeUpdated => "scope.updated",
            AuditKind::ScopeRemoved => "scope.removed",
            AuditKind::ScopeRestricted => "scope.restricted",
            AuditKind::ScopeUnrestricted => "scope.unrestricted",
            AuditKind::ResourceAdded => "resource.added",
            AuditKind::ResourceRemoved => "resource.removed",
            AuditKind::PolicyUpdated => "policy.updated",
            AuditKind::PolicyPasswordGrantAllowed => "policy.password_grant_allowed",
            AuditKind::PolicyPasswordGrantDenied => "policy.password_grant_denied",
            AuditKind::PolicyAppUsersSet => "policy.app_users_set",
            AuditKind::IssuerTrusted => "issuer.trusted",
            AuditKind::IssuerRemoved => "issuer.removed",
            AuditKind::IatCreated => "iat.created",
            AuditKind::IatDeleted => "iat.deleted",
            AuditKind::GroupCreated => "group.created",
            AuditKind::GroupDeleted => "group.deleted",
            AuditKind::GroupMemberAdded => "group.member_added",
            AuditKind::GroupMemberRemoved => "group.member_removed",
        }
    }
}

/// Something that happened and changed nothing: written on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noted {
    /// A sign-in with a wrong password, an unknown or inactive user, or an invalid username.
    LoginFailed,
    /// A sign-in refused because the username's attempts are used up for now.
    LoginLocked,
    /// A user code (RFC 8628) refused on the verification page: unknown, expired or already
    /// answered, or the tenant's or client's attempts used up for now. Bounded per tenant and
    /// window (`service::device`), so a stranger cannot write without end.
    DeviceCodeRefused,
}

impl Noted {
    pub const ALL: &'static [Noted] = &[Noted::LoginFailed, Noted::LoginLocked, Noted::DeviceCodeRefused];

    pub const fn as_str(self) -> &'static str {
        match self {
            Noted::LoginFailed => "login.failed",
            Noted::LoginLocked => "login.locked",
            Noted::DeviceCodeRefused => "device.user_code_refused",
        }
    }
}

/// The longest actor, subject or detail an event keeps, in characters.
pub const MAX_FIELD: usize = 256;

/// `s` as an event may hold it, whoever supplied it: every character that is not fit to be
/// shown (controls, bidi and other invisible format characters, stacked combining marks: see
/// [`crate::client::is_displayable`]) written as `\u{…}`, and at most [`MAX_FIELD`]
/// characters (then `…`). What an administrator reads in the console or the CLI is then what
/// was stored, never text that reorders or hides itself.
pub fn safe_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_FIELD * 4));
    let mut marks = 0;
    for (count, c) in s.chars().enumerate() {
        if count >= MAX_FIELD {
            out.push('…');
            break;
        }
        let mark = crate::client::is_combining_mark(c);
        marks = if mark { marks + 1 } else { 0 };
        if c.is_control()
            || crate::client::is_invisible_format(c)
            || (mark && marks > crate::client::MAX_COMBINING)
        {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_kind_has_one_distinct_name() {
        let mut seen = HashSet::new();
        for k in AuditKind::ALL {
            assert!(seen.insert(k.as_str()), "{k:?} shares its name");
            assert!(
                k.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{k:?}"
            );
        }
        for n in Noted::ALL {
            assert!(seen.insert(n.as_str()), "{n:?} shares its name");
        }
    }

    #[test]
    fn what_strangers_write_is_rendered_safe() {
        let spoof = "root\u{202e}gnp.exe\u{2066}\u{200b}<b>x</b>\"}{\"kind\":\"user.admin_granted";
        let safe = safe_text(spoof);
        assert_eq!(
            safe,
            "root\\u{202e}gnp.exe\\u{2066}\\u{200b}<b>x</b>\"}{\"kind\":\"user.admin_granted"
        );
        assert!(crate::client::is_displayable(&safe));
        assert_eq!(safe_text("alice"), "alice");
        assert_eq!(safe_text("Zoë Ünïcödé 日本"), "Zoë Ünïcödé 日本");
        assert_eq!(safe_text("a\nb\u{0}"), "a\\u{000a}b\\u{0000}");
        let long = "x".repeat(1000);
        assert_eq!(safe_text(&long).chars().count(), MAX_FIELD + 1);
        let marks = format!("a{}", "\u{0301}".repeat(20));
        assert!(crate::client::is_displayable(&safe_text(&marks)));
    }
}
