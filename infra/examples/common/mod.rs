//! What the examples that drive the browser flow over HTTP share (`bench_flows`, `cost_model`).
//! Not an example itself: Cargo takes `examples/*.rs` and `examples/*/main.rs` only.

use base64::Engine;
use sha2::Digest;

/// A PKCE pair (RFC 7636, S256): the verifier and its challenge.
pub fn pkce() -> (String, String) {
    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = enc.encode(rand::random::<[u8; 32]>());
    let challenge = enc.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The value of the hidden form field `name` on a page (the CSRF token, the flow id).
pub fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

/// The query parameter `name` of a URL (the code in a redirect).
pub fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}
