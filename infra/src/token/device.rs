//! The device authorization grant's polling (RFC 8628 §3.4–3.5), sans IO: fed each token
//! endpoint answer and the seconds waited before it, it says how long to wait next, or that the
//! run is over.

use serde_json::Value;

/// The grant type of the polling requests.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §3.2: without `interval`, 5 seconds.
const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 §3.5: `slow_down` adds 5 seconds to the interval, for this and later requests.
const SLOW_DOWN: u64 = 5;
/// No server's `interval` makes us wait longer than this between polls.
const MAX_INTERVAL: u64 = 300;
/// `expires_in` is required; a server that leaves it out gets this long.
const DEFAULT_EXPIRY: u64 = 1800;

/// What to do after an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Poll again after this many seconds (`authorization_pending`, `slow_down`).
    Wait(u64),
    /// The answer is the token response.
    Done,
    /// The answer is final and not a token: `access_denied`, `expired_token` or any other
    /// error (or a 200 without a token); the caller reports the answer.
    Refused,
    /// The device code's lifetime would be over before the next poll.
    Expired,
}

/// The polling state: the interval, and how much of the device code's lifetime is left.
#[derive(Debug)]
pub struct Poll {
    interval: u64,
    left: u64,
}

impl Poll {
    /// From the device authorization response's `interval` and `expires_in`.
    pub fn new(interval: Option<u64>, expires_in: Option<u64>) -> Self {
        Self {
            interval: interval.unwrap_or(DEFAULT_INTERVAL).clamp(1, MAX_INTERVAL),
            left: expires_in.unwrap_or(DEFAULT_EXPIRY),
        }
    }

    /// How long to wait before the first poll.
    pub fn first_wait(&self) -> u64 {
        self.interval
    }

    /// The token endpoint answered `status` with `body`, `waited` seconds after the previous
    /// request (or the device authorization).
    pub fn next(&mut self, status: u16, body: &Value, waited: u64) -> Next {
        self.left = self.left.saturating_sub(waited);
        if status == 200 && body["access_token"].is_string() {
            return Next::Done;
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => self.interval = (self.interval + SLOW_DOWN).min(MAX_INTERVAL),
            // access_denied, expired_token, and anything else: final (never poll on an error
            // we do not know).
            Some(_) | None => return Next::Refused,
        }
        if self.interval > self.left {
            return Next::Expired;
        }
        Next::Wait(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(e: &str) -> Value {
        json!({"error": e})
    }

    #[test]
    fn pending_waits_the_interval_and_slow_down_adds_five_seconds_for_good() {
        let mut p = Poll::new(Some(2), Some(600));
        assert_eq!(p.first_wait(), 2);
        assert_eq!(p.next(400, &err("authorization_pending"), 2), Next::Wait(2));
        assert_eq!(p.next(400, &err("slow_down"), 2), Next::Wait(7));
        assert_eq!(p.next(400, &err("authorization_pending"), 7), Next::Wait(7));
        assert_eq!(p.next(400, &err("slow_down"), 7), Next::Wait(12));
        assert_eq!(
            p.next(200, &json!({"access_token": "at", "token_type": "Bearer"}), 12),
            Next::Done
        );
    }

    #[test]
    fn the_default_interval_is_five_seconds_and_a_zero_one_is_one() {
        assert_eq!(Poll::new(None, Some(600)).first_wait(), 5);
        assert_eq!(Poll::new(Some(0), Some(600)).first_wait(), 1);
        assert_eq!(Poll::new(Some(100_000), Some(600)).first_wait(), MAX_INTERVAL);
    }

    #[test]
    fn denial_expiry_and_unknown_answers_end_the_polling() {
        for body in [
            err("access_denied"),
            err("expired_token"),
            err("invalid_grant"),
            err("invalid_client"),
            json!({}),
            json!({"token_type": "Bearer"}),
        ] {
            let mut p = Poll::new(Some(1), Some(600));
            assert_eq!(p.next(400, &body, 1), Next::Refused, "{body}");
        }
        let mut p = Poll::new(Some(1), Some(600));
        assert_eq!(p.next(200, &json!({"token_type": "Bearer"}), 1), Next::Refused);
    }

    #[test]
    fn it_stops_when_the_device_code_would_expire_before_the_next_poll() {
        let mut p = Poll::new(Some(5), Some(12));
        assert_eq!(p.next(400, &err("authorization_pending"), 5), Next::Wait(5));
        assert_eq!(p.next(400, &err("authorization_pending"), 5), Next::Expired);
        let mut p = Poll::new(Some(5), Some(12));
        assert_eq!(p.next(400, &err("slow_down"), 5), Next::Expired);
    }
}
