//! Our own load scenarios, which the peer bench has none of: authorization-code redemption and
//! refresh-token rotation against a running `bulwark serve`, at a given concurrency. Codes are
//! minted first (one sign-in, then one authorize request each: the consent is remembered), not
//! timed, and redeemed within their 60 s life; refresh tokens rotate in `concurrency` chains.
//! Every answer must be 200: an error is counted, never throughput. Run by `infra/bench.sh`.
//!
//! With a client-credentials client (`CC_ID CC_SECRET`), also client_credentials as a bearer and
//! as a DPoP-bound token (RFC 9449) side by side, interleaved in rounds; each DPoP request has a
//! fresh proof, made beforehand (untimed), since the load generator shares the 2 cores.
//!
//!   cargo run --release -p bulwark --example bench_flows -- BASE CLIENT_ID SECRET USER PASSWORD [N] [CONCURRENCY] [CC_ID CC_SECRET]

// A measuring tool, not a request path: it stops at the first surprise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{DpopKey, hidden, pkce, query_param};

const CALLBACK: &str = "http://127.0.0.1/callback";

struct Run {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn line(&self, name: &str, concurrency: usize) -> String {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        format!(
            "{:<45} {:>6} {:>9.1} {:>8.2} {:>8.2} {:>6}",
            format!("{name} c={concurrency}"),
            self.ok + self.errors,
            self.ok as f64 / self.elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            self.errors
        )
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    let (base, id, secret, user, password) = (&args[1], &args[2], &args[3], &args[4], &args[5]);
    let n: usize = args.get(6).and_then(|v| v.parse().ok()).unwrap_or(4000);
    let c: usize = args.get(7).and_then(|v| v.parse().ok()).unwrap_or(16);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = format!("{base}/oauth2/token");

    // Sign in once (and consent), keeping the session cookie.
    let (_, challenge) = pkce();
    let authorize = move |challenge: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", id.as_str()),
                ("redirect_uri", CALLBACK),
                ("scope", "api:read offline_access"),
                ("state", "s"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        format!("{base}/oauth2/authorize?{q}")
    };
    let page = http.get(authorize(&challenge)).send().await.unwrap();
    let mut cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect();
    let html = page.text().await.unwrap();
    let form = [
        ("action", "login".to_string()),
        ("interaction", hidden(&html, "interaction")),
        ("csrf", hidden(&html, "csrf")),
        ("username", user.clone()),
        ("password", password.clone()),
    ];
    let r = http
        .post(format!("{base}/oauth2/authorize"))
        .header("cookie", cookies.join("; "))
        .form(&form)
        .send()
        .await
        .unwrap();
    cookies.extend(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string)),
    );
    if r.headers().get("location").is_none() {
        let html = r.text().await.unwrap();
        let form = [
            ("action", "consent".to_string()),
            ("interaction", hidden(&html, "interaction")),
            ("csrf", hidden(&html, "csrf")),
            ("decision", "approve".to_string()),
        ];
        let r = http
            .post(format!("{base}/oauth2/authorize"))
            .header("cookie", cookies.join("; "))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("location").is_some(), "consent gave no redirect");
    }
    let cookie = Arc::new(cookies.join("; "));

    // Mint the codes (not timed): one authorize request each, `c` at a time.
    let mut codes = Vec::with_capacity(n);
    let minted = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(c) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|_| {
                let (http, cookie) = (http.clone(), cookie.clone());
                let (verifier, challenge) = pkce();
                let url = authorize(&challenge);
                tokio::spawn(async move {
                    let r = http
                        .get(url)
                        .header("cookie", cookie.as_str())
                        .send()
                        .await
                        .unwrap();
                    let loc = r
                        .headers()
                        .get("location")
                        .expect("a code")
                        .to_str()
                        .unwrap()
                        .to_string();
                    (query_param(&loc, "code"), verifier)
                })
            })
            .collect();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
    }
    let mint_secs = minted.elapsed().as_secs_f64();
    assert!(
        mint_secs < 45.0,
        "minting {n} codes took {mint_secs:.0} s: fewer, or they expire"
    );

    // Redeem them, `c` at a time.
    let queue = Arc::new(std::sync::Mutex::new(codes));
    let errors = Arc::new(AtomicUsize::new(0));
    let refresh_tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Instant::now();
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let (http, queue, errors, rts) = (
                http.clone(),
                queue.clone(),
                errors.clone(),
                refresh_tokens.clone(),
            );
            let (token, id, secret) = (token.clone(), id.clone(), secret.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let Some((code, verifier)) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let t = Instant::now();
                    let r = http
                        .post(&token)
                        .basic_auth(&id, Some(&secret))
                        .form(&[
                            ("grant_type", "authorization_code"),
                            ("code", &code),
                            ("redirect_uri", CALLBACK),
                            ("code_verifier", &verifier),
                        ])
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            lat.push(t.elapsed());
                            let v: Value = r.json().await.unwrap();
                            let mut rts = rts.lock().unwrap();
                            if rts.len() < 64 {
                                rts.push(v["refresh_token"].as_str().unwrap().to_string());
                            }
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let redeem = Run {
        ok: latencies.len(),
        errors: errors.load(Ordering::SeqCst),
        elapsed: start.elapsed(),
        latencies,
    };

    // Rotate refresh tokens: `c` chains, each its own family, n / c rotations each.
    let chains: Vec<String> = refresh_tokens.lock().unwrap().drain(..).take(c).collect();
    assert_eq!(chains.len(), c, "fewer refresh tokens than chains");
    let errors = Arc::new(AtomicUsize::new(0));
    let per_chain = n / c;
    let start = Instant::now();
    let workers: Vec<_> = chains
        .into_iter()
        .map(|mut rt| {
            let (http, errors) = (http.clone(), errors.clone());
            let (token, id, secret) = (token.clone(), id.clone(), secret.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                for _ in 0..per_chain {
                    let t = Instant::now();
                    let r = http
                        .post(&token)
                        .basic_auth(&id, Some(&secret))
                        .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            lat.push(t.elapsed());
                            let v: Value = r.json().await.unwrap();
                            rt = v["refresh_token"].as_str().unwrap().to_string();
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let rotate = Run {
        ok: latencies.len(),
        errors: errors.load(Ordering::SeqCst),
        elapsed: start.elapsed(),
        latencies,
    };
    println!(
        "{:<45} {:>6} {:>9} {:>8} {:>8} {:>6}",
        "scenario (our own)", "reqs", "200/s", "p50 ms", "p99 ms", "errors"
    );
    println!("{}", redeem.line("authorization_code redemption", c));
    println!("{}", rotate.line("refresh_token rotation", c));
    println!("(codes minted beforehand, untimed: {n} in {mint_secs:.1} s)");
    let mut errors = redeem.errors + rotate.errors;
    if let (Some(cc_id), Some(cc_secret)) = (args.get(8), args.get(9)) {
        errors += dpop_side_by_side(&http, &token, cc_id, cc_secret, n, c).await;
    }
    if errors > 0 {
        std::process::exit(1);
    }
}

/// client_credentials as bearer and as DPoP-bound tokens, `ROUNDS` interleaved rounds of
/// `n / ROUNDS` requests each, `c` at a time; prints both and the ratio. The errors.
async fn dpop_side_by_side(
    http: &reqwest::Client,
    token: &str,
    id: &str,
    secret: &str,
    n: usize,
    c: usize,
) -> usize {
    const ROUNDS: usize = 4;
    let key = Arc::new(DpopKey::new());
    let (mut bearer, mut bound) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bearer.push(cc_run(http, token, id, secret, None, n / ROUNDS, c).await);
        let proofs: Vec<String> = (0..n / ROUNDS).map(|_| key.proof(token)).collect();
        bound.push(cc_run(http, token, id, secret, Some(proofs), n / ROUNDS, c).await);
    }
    let merge = |runs: Vec<Run>| Run {
        ok: runs.iter().map(|r| r.ok).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
        elapsed: runs.iter().map(|r| r.elapsed).sum(),
        latencies: runs.into_iter().flat_map(|r| r.latencies).collect(),
    };
    let (bearer, bound) = (merge(bearer), merge(bound));
    let rate = |r: &Run| r.ok as f64 / r.elapsed.as_secs_f64();
    println!("{}", bearer.line("client_credentials, bearer", c));
    println!("{}", bound.line("client_credentials, DPoP-bound", c));
    println!(
        "(DPoP / bearer: {:.2}, {ROUNDS} interleaved rounds; proofs made beforehand, untimed)",
        rate(&bound) / rate(&bearer)
    );
    bearer.errors + bound.errors
}

async fn cc_run(
    http: &reqwest::Client,
    token: &str,
    id: &str,
    secret: &str,
    proofs: Option<Vec<String>>,
    n: usize,
    c: usize,
) -> Run {
    let dpop = proofs.is_some();
    let queue = Arc::new(std::sync::Mutex::new(
        proofs.unwrap_or_else(|| vec![String::new(); n]),
    ));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..c)
        .map(|_| {
            let (http, queue, errors) = (http.clone(), queue.clone(), errors.clone());
            let (token, id, secret) = (token.to_string(), id.to_string(), secret.to_string());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let Some(proof) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let t = Instant::now();
                    let mut req = http
                        .post(&token)
                        .basic_auth(&id, Some(&secret))
                        .form(&[("grant_type", "client_credentials")]);
                    if dpop {
                        req = req.header("DPoP", proof);
                    }
                    match req.send().await {
                        Ok(r) if r.status() == 200 => {
                            let v: Value = r.json().await.unwrap();
                            let want = if dpop { "DPoP" } else { "Bearer" };
                            if v["token_type"] == want {
                                lat.push(t.elapsed());
                            } else {
                                errors.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    Run {
        ok: latencies.len(),
        errors: errors.load(Ordering::SeqCst),
        elapsed: start.elapsed(),
        latencies,
    }
}
