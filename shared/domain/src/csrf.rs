//! The CSRF tokens of the hosted pages' forms, derived and checked in one place. A form's token
//! is derived from a secret the browser holds in an `HttpOnly` cookie that a page of another
//! site can neither read nor guess — the browser-binding cookie (login and consent pages), the
//! account session cookie, the console's session token — so nothing is stored for it, and a
//! token is good exactly as long as its cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::secret::ct_eq_str;

/// The token of the forms of a browser holding `cookie_secret`.
pub fn token(cookie_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bulwark-csrf\0");
    h.update(cookie_secret.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Whether a form's `csrf` field is the token of the browser holding `cookie_secret` (compared
/// in constant time; a missing field never is).
pub fn check(presented: Option<&str>, cookie_secret: &str) -> bool {
    presented.is_some_and(|p| ct_eq_str(p, &token(cookie_secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_belongs_to_one_cookie() {
        let t = token("cookie-a");
        assert_eq!(t.len(), 43);
        assert!(!t.contains("cookie-a"));
        assert!(check(Some(&t), "cookie-a"));
        assert!(!check(Some(&t), "cookie-b"));
        assert!(!check(None, "cookie-a"));
        assert!(!check(Some(""), "cookie-a"));
    }
}
