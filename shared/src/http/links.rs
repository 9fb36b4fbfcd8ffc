//! The one way a page, a form or a redirect puts a value into a URL. An id is not a safe piece
//! of a URL: a metadata-document client's id is itself a URL (`https://app.example.com/c.json`),
//! whose `/` would split a path segment in two and whose `?` or `#` would end the path.
//!
//! So: templates build no URLs (each gets its links ready-made from here), query values are
//! form-urlencoded ([`url()`]), and an id that must sit in a path segment is percent-encoded
//! whole ([`segment`]); axum's `Path` decodes it back, `%2F` included, as one value.
//!
//! The pages name an app (and an agent) in the query string, never in the path: API Gateway's
//! HTTP API decodes the path before it routes it and hands the function a decoded `rawPath`,
//! so `%2F` in a path segment becomes a separator there; the query string reaches the function
//! as it was sent (ARCHITECTURE.md).

/// `value` as one path segment: every byte but the unreserved characters of RFC 3986
/// (`A-Z a-z 0-9 - . _ ~`) percent-encoded.
pub fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{base}{path}`, then `?` and the `query` pairs form-urlencoded (nothing when there are
/// none). `path` is one of our routes' fixed paths; an id in it goes through [`segment`].
pub fn url(base: &str, path: &str, query: &[(&str, &str)]) -> String {
    let mut u = format!("{base}{path}");
    if !query.is_empty() {
        u.push('?');
        u.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish(),
        );
    }
    u
}

/// A store's page cursor as a URL and API value (the admin API's `cursor`, the console's page
/// links): base64url, so that whatever the store puts in it survives a query string.
pub fn encode_cursor(c: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c)
}

/// The store cursor in a value [`encode_cursor`] made; `None` for anything else (too long, not
/// base64url, not UTF-8). Whether the store issued it is the store's to say.
pub fn decode_cursor(c: &str) -> Option<String> {
    use base64::Engine;
    if c.len() > 2048 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    String::from_utf8(bytes).ok()
}

/// The device verification page (RFC 8628 `verification_uri`) at `issuer`: `/device` at a
/// tenant's own issuer (`tenant` is `None`), `/device?tenant=…` at the shared one; with
/// `user_code`, the `verification_uri_complete` that fills it in.
pub fn device(issuer: &str, tenant: Option<&str>, user_code: Option<&str>) -> String {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = tenant {
        query.push(("tenant", t));
    }
    if let Some(c) = user_code {
        query.push(("user_code", c));
    }
    url(issuer, "/device", &query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Path;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    #[test]
    fn segments_and_query_values_are_encoded() {
        for (id, want) in [
            ("abc-123_x.y~z", "abc-123_x.y~z"),
            (
                "https://app.example.com/client.json",
                "https%3A%2F%2Fapp.example.com%2Fclient.json",
            ),
            (
                "http://127.0.0.1:8123/c.json?v=1#f",
                "http%3A%2F%2F127.0.0.1%3A8123%2Fc.json%3Fv%3D1%23f",
            ),
            ("a b+c%2F", "a%20b%2Bc%252F"),
            ("é", "%C3%A9"),
        ] {
            assert_eq!(segment(id), want, "{id}");
        }
        assert_eq!(
            url("https://as.example", "/account", &[]),
            "https://as.example/account"
        );
        assert_eq!(
            url(
                "https://as.example/t/acme",
                "/console/app",
                &[
                    ("tenant", "acme"),
                    ("client_id", "https://app.example.com/c.json?a=1&b=2 3")
                ]
            ),
            "https://as.example/t/acme/console/app?tenant=acme&client_id=https%3A%2F%2Fapp.example.com%2Fc.json%3Fa%3D1%26b%3D2+3"
        );
    }

    /// What `segment` makes reaches a handler's `Path` as the same value, in one segment: an
    /// encoded `/` is no separator. (Through a tenant's issuer too: `page_tests`.)
    #[tokio::test]
    async fn an_encoded_segment_reaches_the_handler_whole() {
        let router = Router::new().route(
            "/account/apps/{client_id}/revoke",
            get(|Path(id): Path<String>| async move { id }),
        );
        for id in [
            "https://app.example.com/client.json",
            "http://127.0.0.1:8123/c.json?v=1#f",
            "a b+c%2F/..",
            "plain-id",
        ] {
            let uri = format!("/account/apps/{}/revoke", segment(id));
            let resp = router
                .clone()
                .oneshot(Request::get(&uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{uri}");
            let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
            assert_eq!(body, id.as_bytes(), "{uri}");
        }
    }
}
