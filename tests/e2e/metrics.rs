//! `bulwark serve --metrics-addr`: the counters at `GET /metrics` (Prometheus text format) on a
//! listener of their own, off by default. (The Lambda functions' EMF lines: `lambda.rs`.)

use crate::support::*;

/// The value of the sample `series` (name and labels, exactly as exposed), if exposed.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(url: &str) -> String {
    let r = http().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.unwrap()
}

#[tokio::test]
async fn serve_counts_tokens_and_failures_at_get_metrics_on_its_own_address() {
    const N: usize = 3;
    let data = DataDir::new();
    let c = data.tenant_with_client("acme");
    let server = Server::start_with(&data, &["--metrics-addr", "127.0.0.1:0"], &[]);
    let first: serde_json::Value = serde_json::from_str(&server.stdout_lines[0]).unwrap();
    let url = first["metrics"]
        .as_str()
        .expect("the metrics URL is printed")
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );
    assert_ne!(
        url.trim_end_matches("/metrics"),
        server.base,
        "a listener of its own"
    );

    let before = scrape(&url).await;
    assert_eq!(
        sample(&before, "bulwark_cold_starts_total"),
        Some(1.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "bulwark_client_auth_failures_total"),
        Some(0.0),
        "{before}"
    );

    let token = server.url("/oauth2/token");
    for _ in 0..N {
        let r = post_form(
            &token,
            Some((&c.id, &c.secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = post_form(
        &token,
        Some((&c.id, "wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = post_form(
        &token,
        Some((&c.id, &c.secret)),
        &[("grant_type", "urn:example:nonsense")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let text = scrape(&url).await;
    assert_eq!(
        sample(&text, "bulwark_tokens_issued_total{grant=\"client_credentials\"}"),
        Some(N as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "bulwark_client_auth_failures_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "bulwark_tokens_refused_total{grant=\"unsupported\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "bulwark_store_latency_seconds_count").is_some_and(|n| n >= N as f64),
        "every store call is timed: {text}"
    );
    assert!(
        text.contains("# TYPE bulwark_store_latency_seconds histogram\n"),
        "{text}"
    );
    for secret in [c.id.as_str(), c.secret.as_str(), "acme"] {
        assert!(!text.contains(secret), "{secret} in the metrics: {text}");
    }
    // Not on the public port.
    let public = http()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}

#[tokio::test]
async fn serve_has_no_metrics_listener_unless_asked() {
    let data = DataDir::new();
    let server = Server::start(&data);
    let first: serde_json::Value = serde_json::from_str(&server.stdout_lines[0]).unwrap();
    assert_eq!(first["metrics"], serde_json::Value::Null, "{first}");
}
