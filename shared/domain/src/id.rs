//! Identifiers as types: a client id, a user's subject. Services take these instead of `&str`,
//! so a subject cannot be passed where a client id is meant (both are strings on the wire and in
//! the store: serde keeps them transparent). A tenant id, which has a syntax, is
//! [`crate::tenant::TenantId`].
//!
//! Both read as `str` (`Deref`), so code that only looks at an id needs no conversion; making
//! one from a string is always explicit (`ClientId::from(..)`).

use serde::{Deserialize, Serialize};

/// Reading and comparing an id as a string: for every string-backed id, validated or not.
#[macro_export]
macro_rules! id_reads_as_str {
    ($name:ty) => {
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<&$name> for String {
            fn eq(&self, other: &&$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<&$name> for $name {
            fn eq(&self, other: &&$name) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.as_str()
            }
        }
    };
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        crate::id_reads_as_str!($name);
    };
}

string_id!(
    /// A client's `client_id` (RFC 6749 §2.2): ours are random; a metadata-document client's
    /// is its HTTPS URL.
    ClientId
);

string_id!(
    /// A user's `sub`: unique in its tenant, never reassigned.
    Subject
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_on_the_wire() {
        let c = ClientId::from("app-1");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"app-1\"");
        let s: Subject = serde_json::from_str("\"u-1\"").unwrap();
        assert_eq!(s, "u-1");
        assert_eq!(s.as_str(), "u-1");
    }

    #[test]
    fn ids_compare_with_strings_both_ways() {
        let c = ClientId::from("a".to_string());
        let owned = String::from("a");
        assert_eq!(c, "a");
        assert_eq!("a", c);
        assert_eq!(owned, c);
        assert_ne!(c, "b");
    }
}
