//! Bad input gets a clear, standard error: never a 500, never a panic.

use crate::support::*;

async fn raw_post(url: &str, content_type: Option<&str>, body: Vec<u8>, basic: Option<(&str, &str)>) -> Resp {
    let mut req = http().post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some((id, s)) = basic {
        req = req.basic_auth(id, Some(s));
    }
    Resp::from(req.send().await.unwrap()).await
}

#[tokio::test]
async fn malformed_bodies_wrong_content_types_huge_bodies_and_duplicate_parameters() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let auth = Some((c.id.as_str(), c.secret.as_str()));
    let form = Some("application/x-www-form-urlencoded");
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        let url = server.url(path);
        // Wrong content types.
        raw_post(
            &url,
            Some("application/json"),
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            auth,
        )
        .await
        .assert_error(400, "invalid_request");
        raw_post(&url, None, b"grant_type=client_credentials".to_vec(), auth)
            .await
            .assert_error(400, "invalid_request");
        raw_post(
            &url,
            Some("text/plain"),
            b"grant_type=client_credentials".to_vec(),
            auth,
        )
        .await
        .assert_error(400, "invalid_request");
        // Duplicate parameters.
        raw_post(
            &url,
            form,
            b"grant_type=client_credentials&grant_type=client_credentials&token=a&token=b".to_vec(),
            auth,
        )
        .await
        .assert_error(400, "invalid_request");
        // Not UTF-8, broken percent-encoding.
        raw_post(&url, form, b"grant_type=\xff\xfe&token=\xff".to_vec(), auth)
            .await
            .assert_error(400, "invalid_request");
        raw_post(&url, form, b"grant_type=%zz%ff&token=%ff".to_vec(), auth)
            .await
            .assert_error(400, "invalid_request");
        // 1 MiB body.
        let mut big = b"grant_type=client_credentials&token=x&pad=".to_vec();
        big.extend(std::iter::repeat_n(b'a', 1024 * 1024));
        let r = raw_post(&url, form, big, auth).await;
        assert_eq!(r.status, 413, "{path}: {}", r.body);
        assert_eq!(r.body["error"], "invalid_request");
    }
    let reg = server.url("/oauth2/register");
    let json_ct = Some("application/json");
    let r = Resp::from(
        http()
            .post(&reg)
            .header("x-bulwark-tenant", "acme")
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "invalid_client_metadata");
    let r = Resp::from(
        http()
            .post(&reg)
            .header("x-bulwark-tenant", "acme")
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "invalid_request");
    let mut big = br#"{"client_name":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    big.extend(br#""}"#);
    let r = raw_post(&reg, json_ct, big, None).await;
    assert_eq!(r.status, 413);
    // A huge body sent chunked (no Content-Length) is cut off too.
    assert_eq!(chunked_post_status(&server, 2 * 1024 * 1024).await, 413);
    // The server is still healthy afterwards.
    token(&server, &c, &[]).await;
}

/// POST `size` bytes with `Transfer-Encoding: chunked` over a raw socket; the status code.
async fn chunked_post_status(server: &Server, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..size / chunk.len() {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        // The server may answer 413 and close before we finish sending.
        if s.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn wrong_methods_are_405_and_unknown_paths_404_as_json() {
    let data = DataDir::new();
    let server = Server::start(&data);
    for path in [
        "/oauth2/token",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/oauth2/register",
    ] {
        let r = Resp::from(http().get(server.url(path)).send().await.unwrap()).await;
        r.assert_error(405, "method_not_allowed");
        assert!(r.header("allow").is_some_and(|a| a.contains("POST")), "{path}");
        let r = Resp::from(http().put(server.url(path)).send().await.unwrap()).await;
        assert_eq!(r.status, 405, "{path}");
    }
    let r = Resp::from(
        http()
            .post(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(405, "method_not_allowed");
    let r = Resp::from(http().get(server.url("/nope")).send().await.unwrap()).await;
    r.assert_error(404, "not_found");
}

#[tokio::test]
async fn hostile_inputs_never_cause_a_server_error() {
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start(&data);
    let url = server.url("/oauth2/token");
    let long = "a".repeat(60_000);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("grant_type", "client_credentials"), ("scope", &long)],
        vec![("grant_type", &long)],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", &long),
            ("client_secret", "x"),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("scope", "\u{0000}\u{0001}"),
        ],
        vec![("grant_type", "client_credentials"), ("resource", "not a uri")],
    ];
    for form in cases {
        let r = post_form(&url, Some((&c.id, &c.secret)), &form).await;
        assert!(r.status == 400 || r.status == 401, "{} {}", r.status, r.body);
        let r = post_form(&url, None, &form).await;
        assert!(r.status == 400 || r.status == 401, "{} {}", r.status, r.body);
    }
    for header in [
        "Basic",
        "Basic Og==",
        "Basic OmE=",
        "Bearer x",
        &format!("Basic {long}"),
        "Basic \u{00e9}",
    ] {
        let r = http()
            .post(&url)
            .header("authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        if let Ok(r) = r {
            let r = Resp::from(r).await;
            assert!(
                r.status == 400 || r.status == 401,
                "{header}: {} {}",
                r.status,
                r.body
            );
        }
    }
    token(&server, &c, &[]).await;
}

#[tokio::test]
async fn the_browser_endpoints_answer_garbage_with_error_pages_never_500() {
    let data = DataDir::new();
    let w = crate::flow::world(&data);
    let server = Server::start(&data);
    let form = Some("application/x-www-form-urlencoded");
    let huge = vec![b'a'; 200 * 1024];
    for path in [
        "/oauth2/authorize",
        "/account/login",
        "/account/logout",
        "/account/apps/x/revoke",
    ] {
        let url = server.url(path);
        for (ct, body) in [
            (Some("application/json"), b"{}".to_vec()),
            (None, b"a=b".to_vec()),
            (form, b"a=\xff\xfe".to_vec()),
            (form, b"a=%zz&a=%ff".to_vec()),
            (form, b"tenant=x&tenant=y".to_vec()),
            (form, huge.clone()),
            (
                form,
                format!("tenant={}&csrf=x&username=alice&password=x", w.tenant).into_bytes(),
            ),
            (form, b"action=login&interaction=nope&csrf=x".to_vec()),
            (
                form,
                b"action=consent&interaction=nope&csrf=x&decision=approve".to_vec(),
            ),
        ] {
            let r = raw_post(&url, ct, body.clone(), None).await;
            assert!(
                (400..500).contains(&r.status),
                "{path} {ct:?} {} bytes: {}",
                body.len(),
                r.status
            );
            assert!(
                r.header("location").is_none(),
                "{path}: never a redirect on garbage"
            );
        }
    }
    for q in [
        "?client_id=%ff",
        "?client_id=a&client_id=b",
        &format!("?client_id={}&redirect_uri=%zz", w.client.id),
        &format!("?client_id={}", "x".repeat(5000)),
    ] {
        let r = http()
            .get(server.url(&format!("/oauth2/authorize{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
        assert!(r.headers().get("location").is_none());
    }
    for q in [
        "",
        "?tenant=",
        "?tenant=UPPER",
        "?tenant=%ff",
        "?tenant=a&tenant=b",
    ] {
        // (At a tenant's own issuer the path names the tenant: these are the shared issuer's.)
        let r = http()
            .get(server.shared_url(&format!("/account{q}")))
            .send()
            .await
            .unwrap();
        assert!((400..500).contains(&r.status().as_u16()), "{q}: {}", r.status());
    }
    for auth in ["Bearer", "Basic abc", "Bearer a.b.c", "Bearer \u{7f}"] {
        let r = http()
            .get(server.url("/oauth2/userinfo"))
            .header("authorization", auth)
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 401, "{auth}");
        }
    }
}
