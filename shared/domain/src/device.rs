//! The device authorization grant (RFC 8628) as rules and records: the user code's alphabet
//! and shape, reading what a user typed, the device code's record, and what a poll gets.
//!
//! The user code is short by design (a person types it), so it is guessable: the services
//! bound the wrong codes (per signed-in user, and per tenant as a backstop, in the store), the
//! user confirms it, and it lives minutes. It is stored as its SHA-256, which hides it from a
//! casual look only (37 bits). The device code is a 256-bit secret, stored only as its SHA-256.

use serde::{Deserialize, Serialize};

use crate::id::{ClientId, Subject};
use crate::tenant::TenantId;

/// The characters of a user code (RFC 8628 §6.1: consonants only, no vowels to spell words,
/// no look-alikes such as 0/O or 1/I): 20 of them, so 8 characters are 20⁸ ≈ 2.6·10¹⁰ codes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// How many characters a user code has (shown as `XXXX-XXXX`).
pub const USER_CODE_LEN: usize = 8;

/// The polling interval a device is first told, in seconds (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: i64 = 5;

/// How much a too-fast poll adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: i64 = 5;

/// The interval never grows beyond this (a device that keeps polling too fast is told to wait
/// this long; the code expires first anyway).
pub const MAX_INTERVAL: i64 = 300;

/// How much sooner than its interval a poll may come, in (whole) seconds, before it is too
/// fast: arrival jitter and truncation to whole seconds must not slow a client down for good.
pub const POLL_LEEWAY: i64 = 1;

/// A user code from random bytes, by rejection sampling (a byte below 240 picks
/// `byte % 20`, so every character is equally likely). `None`: too few usable bytes (the
/// caller draws more).
pub fn user_code_from(random: &[u8]) -> Option<String> {
    let limit = (256 / USER_CODE_ALPHABET.len() * USER_CODE_ALPHABET.len()) as u8;
    let code: String = random
        .iter()
        .filter(|b| **b < limit)
        .take(USER_CODE_LEN)
        .map(|b| char::from(USER_CODE_ALPHABET[usize::from(*b) % USER_CODE_ALPHABET.len()]))
        .collect();
    (code.len() == USER_CODE_LEN).then_some(code)
}

/// What a user typed, as the user code it means: case, hyphens and spaces do not matter;
/// anything else that is not the alphabet, or another length, is no code (`None`).
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let ok = code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    ok.then_some(code)
}

/// A normalised user code as the user is shown it: `XXXX-XXXX`.
pub fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len().min(USER_CODE_LEN / 2));
    format!("{a}-{b}")
}

/// A device authorization request in progress, stored under the hash of its device code
/// until it is redeemed, denied and reported, or expires.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceCode {
    pub tenant: TenantId,
    pub client_id: ClientId,
    /// The scope asked for, as the client may have it (checked at the request).
    pub scope: String,
    /// RFC 8707 resources the grant will be bound to (none: the tenant's default audience).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// The issuer the request came to (`None`: the shared issuer): it is approved and redeemed
    /// only there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_scope: Option<String>,
    /// The hash of its user code (to end the user code's pointer with it).
    pub user_code_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The polling interval the device must keep, in seconds: it grows by
    /// [`SLOW_DOWN_STEP`] with every too-fast poll.
    pub interval: i64,
    /// When the device last polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<i64>,
    pub status: DeviceStatus,
}

/// Where the user's decision stands.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Nobody has approved or denied it yet.
    Pending,
    /// A signed-in user approved it.
    Approved(Approval),
    /// The user denied it.
    Denied,
}

/// Who approved a device code, and the state of things then that its redemption checks again
/// (as an authorization code carries them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Approval {
    pub sub: Subject,
    pub auth_time: i64,
    /// The user's session epoch at approval: a deactivation or new password since ends it.
    pub user_epoch: u64,
    /// The user's grant epoch at approval (`User::grant_epoch`): the grant carries it.
    pub grant_epoch: u64,
    /// The version of the user's "took this app back" marker at approval (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<u64>,
}

/// What a poll of a device code gets (RFC 8628 §3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Past its expiry: `expired_token`.
    Expired,
    /// Polled sooner than its interval: `slow_down`, and the interval is now this.
    SlowDown { interval: i64 },
    /// Not decided yet: `authorization_pending`.
    Pending,
    /// The user denied it: `access_denied`.
    Denied,
    /// Approved: the tokens.
    Approved(Approval),
}

impl DeviceCode {
    /// A poll at `now`: what it gets, with the record updated (on a poll in time, the poll's
    /// time; on one sooner than the interval less [`POLL_LEEWAY`], the interval grown by
    /// [`SLOW_DOWN_STEP`], up to [`MAX_INTERVAL`], and the last poll's time kept). Only a pending
    /// code's record changes; the caller stores it (only if it changed) at the version it read,
    /// so that of concurrent polls one counts and the others are too fast.
    pub fn poll(&mut self, now: i64) -> Poll {
        if now >= self.expires_at {
            return Poll::Expired;
        }
        match &self.status {
            DeviceStatus::Approved(a) => Poll::Approved(a.clone()),
            DeviceStatus::Denied => Poll::Denied,
            DeviceStatus::Pending => {
                // Whole seconds: a poll sent `interval` after the last may arrive up to a second
                // "early" by transit jitter and truncation; only one clearly early slows down.
                let too_fast = self
                    .last_poll
                    .is_some_and(|t| now - t < self.interval - POLL_LEEWAY);
                if too_fast {
                    // The poll's time is not moved (RFC 8628 §3.5 asks only that the interval
                    // grow): once the interval is at its cap, a too-fast poll changes nothing.
                    self.interval = (self.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
                    Poll::SlowDown {
                        interval: self.interval,
                    }
                } else {
                    self.last_poll = Some(now);
                    Poll::Pending
                }
            }
        }
    }

    /// Whether a user may still approve or deny it at `now`.
    pub fn awaits_decision(&self, now: i64) -> bool {
        now < self.expires_at && self.status == DeviceStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_only_the_alphabet_and_every_character_is_as_likely() {
        let all: Vec<u8> = (0..=255u8).collect();
        // 240 usable bytes: the first 8 give the first 8 characters of the alphabet, cycled.
        assert_eq!(user_code_from(&all).as_deref(), Some("BCDFGHJK"));
        // Bytes from 240 up are skipped, not folded (folding would favour the first 16).
        let mut high = vec![240u8, 255, 250];
        high.extend([19u8, 39, 59, 79, 99, 119, 139, 159]);
        assert_eq!(user_code_from(&high).as_deref(), Some("ZZZZZZZZ"));
        assert_eq!(user_code_from(&[1, 2, 3]), None);
        assert_eq!(user_code_from(&[250; 64]), None);
        // Each character is taken by exactly 12 of the 240 usable bytes.
        for (i, _) in USER_CODE_ALPHABET.iter().enumerate() {
            let n = (0u8..240).filter(|b| usize::from(*b) % 20 == i).count();
            assert_eq!(n, 12);
        }
    }

    #[test]
    fn what_the_user_types_is_read_without_case_or_hyphens() {
        let cases: &[(&str, Option<&str>)] = &[
            ("BCDF-GHJK", Some("BCDFGHJK")),
            ("bcdf-ghjk", Some("BCDFGHJK")),
            ("bcdfghjk", Some("BCDFGHJK")),
            (" BCDF GHJK ", Some("BCDFGHJK")),
            ("B-C-D-F-G-H-J-K", Some("BCDFGHJK")),
            ("BCDF-GHJ", None),
            ("BCDF-GHJKL", None),
            ("ABCD-EFGH", None), // vowels are not in the alphabet
            ("BCDF-GHJ0", None), // nor digits
            ("BCDF-GHJÄ", None),
            ("", None),
            ("ＢCDF-GHJK", None), // a full-width letter is not B
        ];
        for (input, want) in cases {
            assert_eq!(normalize_user_code(input).as_deref(), *want, "{input:?}");
        }
        assert_eq!(normalize_user_code(&"B".repeat(100)), None);
        assert_eq!(display_user_code("BCDFGHJK"), "BCDF-GHJK");
    }

    fn pending(now: i64) -> DeviceCode {
        DeviceCode {
            tenant: TenantId::parse("acme").unwrap(),
            client_id: "cli".into(),
            scope: "openid".into(),
            resources: vec![],
            issuer_scope: None,
            user_code_hash: "h".into(),
            created_at: now,
            expires_at: now + 600,
            interval: DEFAULT_INTERVAL,
            last_poll: None,
            status: DeviceStatus::Pending,
        }
    }

    #[test]
    fn polling_too_fast_grows_the_interval_by_five_seconds_each_time() {
        let mut d = pending(1000);
        assert_eq!(d.poll(1000), Poll::Pending);
        // Within a second of the interval (whole seconds): jitter, not too fast.
        assert_eq!(d.poll(1004), Poll::Pending);
        assert_eq!(d.last_poll, Some(1004));
        // Clearly early: slow_down; the interval grows, the last poll in time stays.
        assert_eq!(d.poll(1006), Poll::SlowDown { interval: 10 });
        assert_eq!(d.last_poll, Some(1004));
        // Now 10 s (less the second of leeway), counted from the last poll in time.
        assert_eq!(d.poll(1012), Poll::SlowDown { interval: 15 });
        assert_eq!(d.poll(1018), Poll::Pending);
        assert_eq!(d.interval, 15);
        assert_eq!(d.last_poll, Some(1018));
        for _ in 0..100 {
            d.poll(1019);
        }
        assert_eq!(d.interval, MAX_INTERVAL);
        // At the cap, a too-fast poll changes nothing: the caller has nothing to write.
        let before = d.clone();
        assert_eq!(
            d.poll(1020),
            Poll::SlowDown {
                interval: MAX_INTERVAL
            }
        );
        assert_eq!(d, before);
    }

    #[test]
    fn a_decided_or_expired_code_answers_what_it_is() {
        let mut d = pending(1000);
        assert_eq!(d.poll(1600), Poll::Expired);
        assert!(!d.awaits_decision(1600));
        assert!(d.awaits_decision(1599));
        d.status = DeviceStatus::Denied;
        assert_eq!(d.poll(1001), Poll::Denied);
        assert!(!d.awaits_decision(1001));
        let a = Approval {
            sub: Subject::from("u1"),
            auth_time: 1000,
            user_epoch: 0,
            grant_epoch: 0,
            revocation: None,
        };
        d.status = DeviceStatus::Approved(a.clone());
        // An approved code is redeemed however soon the device polls; not after its expiry.
        d.last_poll = Some(1001);
        assert_eq!(d.poll(1001), Poll::Approved(a));
        assert_eq!(d.poll(1600), Poll::Expired);
    }
}
