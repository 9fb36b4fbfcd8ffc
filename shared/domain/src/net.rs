//! Which hosts a URL chosen by a stranger may name (a client's `jwks_uri`, a trusted issuer's):
//! the one rule the SSRF-guarded fetcher applies to every address it resolves, and that
//! registration applies to what it can judge without a lookup (addresses written as such,
//! names that are local by definition). Sans IO: a name's DNS answers are checked when it is
//! fetched, every time (they may change).

use std::net::IpAddr;

use url::Url;

/// Whether an address is one we may connect to on a stranger's behalf.
pub fn ip_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                return allow_loopback;
            }
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT, RFC 6598
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                return allow_loopback;
            }
            if let Some(v4) = v6.to_ipv4_mapped() {
                return ip_allowed(IpAddr::V4(v4), allow_loopback);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || s[0] == 0x2001 && s[1] == 0x0db8 // documentation
                || s[0] == 0x0064 && s[1] == 0xff9b // NAT64 (would reach IPv4 space)
                || s[0] == 0x2002 // 6to4 (embeds an IPv4 address)
                || (s[0] == 0x2001 && s[1] == 0) // Teredo (embeds an IPv4 address)
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID, 2001:10::/28
                || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only, 100::/64
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0xffff && s[5] == 0) // IPv4-translated, ::ffff:0:0/96
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // IPv4-compatible
        }
    }
}

/// Whether `url` names a loopback host (`127.0.0.0/8`, `[::1]`, `localhost`): where plain
/// http is allowed for development.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Names that are never public: `localhost` and its subdomains, and the special-use and
/// private-use suffixes (RFC 6761, 6762, 8375; `.internal`, ICANN's private-use TLD, where cloud
/// metadata endpoints live).
pub fn is_local_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let under = |suffix: &str| h == suffix || h.ends_with(&format!(".{suffix}"));
    [
        "localhost",
        "local",
        "localdomain",
        "internal",
        "home.arpa",
        "invalid",
        "test",
    ]
    .iter()
    .any(|s| under(s))
}

/// Whether `url`'s host may be fetched on a stranger's behalf, as far as can be told without a
/// DNS lookup: an address written in the URL must pass [`ip_allowed`], a name must not be
/// [`is_local_name`] (`localhost` is loopback: allowed only with `allow_loopback`).
pub fn check_host(url: &Url, allow_loopback: bool) -> Result<(), &'static str> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) if !ip_allowed(IpAddr::V4(ip), allow_loopback) => {
            Err("a non-public address")
        }
        Some(url::Host::Ipv6(ip)) if !ip_allowed(IpAddr::V6(ip), allow_loopback) => {
            Err("a non-public address")
        }
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            if allow_loopback {
                Ok(())
            } else {
                Err("a non-public address")
            }
        }
        Some(url::Host::Domain(d)) if is_local_name(d) => Err("a name that is not public"),
        Some(_) => Ok(()),
        None => Err("no host"),
    }
}

/// Whether registration may accept key URLs on loopback: only a development server whose own
/// issuer is loopback http fetches them (the fetcher's rule, `fetch::check_url`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyHosts {
    /// Public hosts only (every deployed issuer).
    PublicOnly,
    /// Loopback too (`http://127.0.0.1`, `[::1]`, `localhost`), for a loopback-http issuer.
    LoopbackToo,
}

impl KeyHosts {
    /// The hosts an issuer's fetcher reaches: loopback only for a loopback-http issuer.
    pub fn for_issuer(issuer_is_loopback_http: bool) -> Self {
        if issuer_is_loopback_http {
            KeyHosts::LoopbackToo
        } else {
            KeyHosts::PublicOnly
        }
    }
}

/// The longest key URL accepted.
pub const MAX_KEY_URL: usize = 2000;

/// A URL where someone's public keys will be fetched (a client's `jwks_uri`, a trusted issuer's),
/// as registration checks it: canonical (as the WHATWG parser writes it), https — or http to a
/// loopback host where loopback is allowed —, no userinfo or fragment, at most
/// [`MAX_KEY_URL`] bytes, and a host the fetcher may reach ([`check_host`]).
pub fn check_key_url(u: &str, hosts: KeyHosts) -> Result<Url, String> {
    let url = crate::client::canonical_url(u)?;
    let loopback_ok = hosts == KeyHosts::LoopbackToo;
    let loopback = is_loopback_host(&url);
    if (url.scheme() != "https" && !(url.scheme() == "http" && loopback && loopback_ok))
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
        || u.len() > MAX_KEY_URL
    {
        return Err("must be an https URL without userinfo or fragment".into());
    }
    check_host(&url, loopback_ok)
        .map_err(|why| format!("names {why}: keys are fetched only from public hosts"))?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_a_stranger_may_name() {
        for (url, loopback_ok, ok) in [
            ("https://keys.example.com/jwks", false, true),
            ("https://169.254.169.254/latest/meta-data", true, false),
            ("https://10.0.0.1/jwks", true, false),
            ("https://172.16.5.4/jwks", true, false),
            ("https://192.168.1.1/jwks", true, false),
            ("https://100.64.0.1/jwks", true, false),
            ("https://0.0.0.0/jwks", true, false),
            ("https://[::]/jwks", true, false),
            ("https://[fd00::1]/jwks", true, false),
            ("https://[fe80::1]/jwks", true, false),
            ("https://[::ffff:169.254.169.254]/jwks", true, false),
            ("https://127.0.0.1/jwks", false, false),
            ("http://127.0.0.1:9/jwks", true, true),
            ("https://localhost/jwks", false, false),
            ("http://localhost:9/jwks", true, true),
            ("https://metadata.google.internal/computeMetadata", true, false),
            ("https://printer.local/jwks", true, false),
            ("https://a.localhost/jwks", true, false),
            ("https://router.home.arpa/jwks", true, false),
            ("https://8.8.8.8/jwks", false, true),
        ] {
            let u = Url::parse(url).unwrap();
            assert_eq!(
                check_host(&u, loopback_ok).is_ok(),
                ok,
                "{url} (loopback allowed: {loopback_ok})"
            );
        }
    }

    #[test]
    fn key_urls() {
        use KeyHosts::*;
        for (url, hosts, ok) in [
            ("https://keys.example.com/jwks", PublicOnly, true),
            ("https://127.0.0.1/jwks", PublicOnly, false),
            ("https://[::1]/jwks", PublicOnly, false),
            ("https://localhost/jwks", PublicOnly, false),
            ("http://127.0.0.1:9/jwks", PublicOnly, false),
            ("http://127.0.0.1:9/jwks", LoopbackToo, true),
            ("http://[::1]:9/jwks", LoopbackToo, true),
            ("http://localhost:9/jwks", LoopbackToo, true),
            ("http://keys.example.com/jwks", LoopbackToo, false),
            ("https://user@keys.example.com/jwks", PublicOnly, false),
            ("https://keys.example.com/jwks#x", PublicOnly, false),
            ("https://KEYS.example.com/jwks", PublicOnly, false),
            ("https://169.254.169.254/", LoopbackToo, false),
        ] {
            assert_eq!(check_key_url(url, hosts).is_ok(), ok, "{url} {hosts:?}");
        }
        let long = format!("https://k.example/{}", "a".repeat(MAX_KEY_URL));
        assert!(check_key_url(&long, PublicOnly).is_err());
    }
}
