//! `authorize::redirect_matches` with a list of registered redirect URIs and a presented one.
//! Input: registered URIs one a line, a NUL byte, then the presented string (anything, as a
//! form parameter can carry). Registered URIs that `validate_redirect_uri` refuses are dropped
//! (registration would have refused them). Invariant (RFC 9700 §4.1.3, RFC 8252 §7.3): if the
//! presented string matches, it is one registered string exactly, or differs from one only in
//! the port of an `http://` loopback IP literal.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use shared::domain::authorize::redirect_matches;
use shared::domain::client::validate_redirect_uri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (registered, presented) = s.split_once('\0').unwrap_or((s, ""));
    let registered: Vec<String> = registered
        .split('\n')
        .filter(|r| validate_redirect_uri(r).is_ok())
        .map(str::to_string)
        .collect();
    if redirect_matches(&registered, presented) {
        assert!(
            registered.iter().any(|r| allowed(r, presented)),
            "{presented:?} matched {registered:?}"
        );
    }
    // Every registered URI matches itself.
    for r in &registered {
        assert!(redirect_matches(&registered, r), "{r:?} does not match itself");
    }
});

/// Equal, or both `http://<loopback IP literal>[:port]<rest>` with the same literal and rest.
fn allowed(registered: &str, presented: &str) -> bool {
    registered == presented
        || loopback_without_port(registered).is_some_and(|r| loopback_without_port(presented) == Some(r))
}

/// `(host, rest)` of `http://host[:port]rest` when host is written as a loopback IP literal:
/// `127.x.y.z` in plain dotted decimal, or `[::1]`.
fn loopback_without_port(uri: &str) -> Option<(&str, &str)> {
    let after = uri.strip_prefix("http://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let loopback = host == "[::1]" || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    loopback.then_some((host, rest))
}
