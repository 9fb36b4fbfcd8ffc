//! Request parameters of `application/x-www-form-urlencoded` bodies (RFC 6749 §3.1, §3.2):
//! parameters sent without a value are treated as omitted, and a parameter may appear at most
//! once (except those defined as repeatable, such as RFC 8707 `resource`).

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct Params(BTreeMap<String, Vec<String>>);

/// Parameters that may be repeated.
const REPEATABLE: &[&str] = &["resource", "audience"];

impl Params {
    /// Parse a form body. Fails on a repeated non-repeatable parameter and on bytes that are not
    /// UTF-8 after decoding.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if std::str::from_utf8(body).is_err() {
            return Err("the body is not UTF-8".into());
        }
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
                return Err("a parameter is not valid UTF-8".into());
            }
            if v.is_empty() {
                continue;
            }
            let entry = map.entry(k.into_owned()).or_default();
            entry.push(v.into_owned());
        }
        for (k, vs) in &map {
            if vs.len() > 1 && !REPEATABLE.contains(&k.as_str()) {
                return Err(format!("parameter {} is repeated", printable(k)));
            }
        }
        Ok(Self(map))
    }

    /// The value of a single-valued parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The value, or an error naming the missing parameter.
    pub fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| format!("missing parameter {name}"))
    }
}

/// A parameter name safe to echo in an error description.
fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let p = Params::parse(b"grant_type=client_credentials&scope=a+b&empty=&x=%41").unwrap();
        assert_eq!(p.get("grant_type"), Some("client_credentials"));
        assert_eq!(p.get("scope"), Some("a b"));
        assert_eq!(p.get("empty"), None);
        assert_eq!(p.get("x"), Some("A"));
        assert!(Params::parse(b"scope=a&scope=b").is_err());
        assert!(
            Params::parse(b"scope=a&scope=").is_ok(),
            "an empty repeat counts as omitted"
        );
        let p = Params::parse(b"resource=https://a&resource=https://b").unwrap();
        assert_eq!(p.all("resource").len(), 2);
        assert!(Params::parse(b"a=%FF").is_err());
        assert!(Params::parse(&[0x61, 0x3d, 0xff]).is_err());
        assert!(Params::parse(b"").unwrap().get("a").is_none());
    }
}
