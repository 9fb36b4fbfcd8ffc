//! Scopes: RFC 6749 §3.3 scope strings and sets.

use std::collections::BTreeSet;

/// A set of scope tokens, kept sorted so that its string form is canonical.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parse a space-delimited scope string. Each token must be `%x21 / %x23-5B / %x5D-7E`
    /// (RFC 6749 §3.3); repeated tokens are merged.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for token in s.split(' ') {
            if token.is_empty() {
                continue;
            }
            let ok = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !ok || token.len() > 128 {
                return Err(format!("malformed scope token {:?}", truncate(token)));
            }
            set.insert(token.to_string());
        }
        if set.len() > 100 {
            return Err("too many scopes".into());
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }
    pub fn is_subset(&self, of: &ScopeSet) -> bool {
        self.0.is_subset(&of.0)
    }
    /// Members of `self` not in `of`.
    pub fn difference(&self, of: &ScopeSet) -> Vec<String> {
        self.0.difference(&of.0).cloned().collect()
    }
    /// Members of either set.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(self.0.union(&other.0).cloned().collect())
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// The members for which `keep` holds.
    pub fn retain(mut self, keep: impl Fn(&str) -> bool) -> ScopeSet {
        self.0.retain(|s| keep(s));
        self
    }
    pub fn to_scope_string(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

/// The order scopes are shown to people: the standard OpenID ones first (as the seed catalog
/// lists them), then the tenant's own, alphabetically.
pub fn display_order<T: AsRef<str>>(scopes: &mut [T]) {
    let rank = |s: &str| {
        crate::tenant::SEED_SCOPES
            .iter()
            .position(|(n, _)| *n == s)
            .unwrap_or(usize::MAX)
    };
    scopes.sort_by(|a, b| {
        let (a, b) = (a.as_ref(), b.as_ref());
        rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
    });
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The scope a token gets: the requested set if it lies inside the registered set; the whole
/// registered set if nothing was requested.
pub fn grant_scope(requested: Option<&str>, registered: &ScopeSet) -> Result<ScopeSet, String> {
    match requested {
        None => Ok(registered.clone()),
        Some(r) => {
            let req = ScopeSet::parse(r)?;
            let extra = req.difference(registered);
            if extra.is_empty() {
                Ok(req)
            } else {
                Err(format!("scope not allowed for this client: {}", extra.join(" ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_scopes_are_shown_first() {
        let mut v = vec!["api:read", "email", "openid", "zeta", "offline_access", "profile"];
        display_order(&mut v);
        assert_eq!(
            v,
            ["openid", "profile", "email", "offline_access", "api:read", "zeta"]
        );
    }

    #[test]
    fn parse_cases() {
        for (input, expected) in [
            ("a b", Some("a b")),
            ("b a a", Some("a b")),
            ("  a   b ", Some("a b")),
            ("", Some("")),
            ("api:read agent:act", Some("agent:act api:read")),
            ("a\"b", None),
            ("a\\b", None),
            ("a\tb", None),
            ("é", None),
        ] {
            let got = ScopeSet::parse(input).ok().map(|s| s.to_scope_string());
            assert_eq!(got.as_deref(), expected, "{input:?}");
        }
    }

    #[test]
    fn grant_cases() {
        let registered = ScopeSet::parse("a b c").unwrap();
        for (req, expected) in [
            (None, Ok("a b c")),
            (Some("a"), Ok("a")),
            (Some("c a"), Ok("a c")),
            (Some("a d"), Err(())),
            (Some("d"), Err(())),
        ] {
            let got = grant_scope(req, &registered)
                .map(|s| s.to_scope_string())
                .map_err(|_| ());
            assert_eq!(got, expected.map(String::from), "{req:?}");
        }
    }
}
