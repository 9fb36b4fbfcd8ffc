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

/// A client's DPoP key (RFC 9449): P-256, signing one fresh proof per request.
pub struct DpopKey {
    sk: p256::ecdsa::SigningKey,
    header: String,
}

impl DpopKey {
    pub fn new() -> Self {
        let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let jwk: serde_json::Value =
            serde_json::from_str(&p256::PublicKey::from(sk.verifying_key()).to_jwk_string()).unwrap();
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).to_string();
        Self {
            sk,
            header: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header),
        }
    }

    /// A proof for `POST htu`, made now.
    pub fn proof(&self, htu: &str) -> String {
        use p256::ecdsa::signature::Signer;
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jti = enc.encode(rand::random::<[u8; 16]>());
        let claims = serde_json::json!({"jti": jti, "htm": "POST", "htu": htu, "iat": now});
        let input = format!("{}.{}", self.header, enc.encode(claims.to_string()));
        let sig: p256::ecdsa::Signature = self.sk.sign(input.as_bytes());
        format!("{input}.{}", enc.encode(sig.to_bytes()))
    }
}
