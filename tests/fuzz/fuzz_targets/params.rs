//! `Params::parse` on arbitrary bytes, checked against a plain re-reading of the same body with
//! `form_urlencoded`: it succeeds exactly when the body is UTF-8, no name or value decodes to
//! U+FFFD and no non-repeatable parameter has two non-empty values; and then every parameter
//! reads back as its non-empty values, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::domain::params::Params;

/// The parameters `Params` lets repeat (RFC 8707 `resource`, and `audience`).
const REPEATABLE: &[&str] = &["resource", "audience"];

fuzz_target!(|data: &[u8]| {
    let parsed = Params::parse(data);

    let pairs: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let values = |name: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let utf8 = std::str::from_utf8(data).is_ok();
    let replacement = pairs
        .iter()
        .any(|(k, v)| k.contains('\u{FFFD}') || v.contains('\u{FFFD}'));
    let repeated = pairs
        .iter()
        .any(|(k, _)| !REPEATABLE.contains(&k.as_str()) && values(k).len() > 1);
    let expect_ok = utf8 && !replacement && !repeated;

    match parsed {
        Err(why) => {
            assert!(!expect_ok, "refused a well-formed body: {why}");
            assert!(!why.is_empty());
        }
        Ok(p) => {
            assert!(expect_ok, "accepted a body it should refuse");
            for (k, _) in &pairs {
                let want = values(k);
                assert_eq!(p.all(k), want.as_slice(), "values of {k:?}");
                assert_eq!(p.get(k), want.first().copied(), "value of {k:?}");
                if let Some(v) = p.get(k) {
                    assert!(!v.is_empty(), "an empty value counts as omitted");
                    assert_eq!(p.require(k), Ok(v));
                } else {
                    assert!(p.require(k).is_err());
                }
                if !REPEATABLE.contains(&k.as_str()) {
                    assert!(p.all(k).len() <= 1, "{k:?} is not repeatable");
                }
            }
        }
    }
});
