//! JSON logs through `tracing`. Nothing logs bodies, headers, query strings, codes, tokens or
//! secrets: handlers are instrumented with `skip_all` and record only ids; the access log
//! records the route template, never the raw path.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines go.
#[derive(Clone, Copy, Debug)]
pub enum LogTarget {
    /// Lambda: stdout, which CloudWatch collects.
    Stdout,
    /// `bulwark serve`: stderr, so that stdout stays for what the command prints.
    Stderr,
}

/// Crates whose debug/trace output may carry request or response bodies (a KMS signature, an
/// item's attributes): capped at `info` whatever `RUST_LOG` says.
const CAPPED: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_http_client",
    "aws_smithy_runtime_api",
    "aws_sdk_dynamodb",
    "aws_sdk_kms",
    "aws_config",
    "aws_sigv4",
    "lambda_runtime",
    "lambda_http",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

/// The filter: `RUST_LOG` (default `info`) as comma-separated `level` / `target=level`
/// directives (the most specific target wins), with the `CAPPED` crates held at `info`
/// whatever it says. Targets it does not name are at its bare level, else `info` (so that
/// naming one crate never silences the others, `audit` among them); a `RUST_LOG` that does not
/// parse means `info`. `Targets` rather than `EnvFilter`: no span or field directives, and no
/// regex engine in every function binary (ARCHITECTURE "Small, fast functions").
pub fn filter(rust_log: Option<&str>) -> Targets {
    let well_formed = |s: &str| {
        s.split(',').all(|d| {
            let target = d.split_once('=').map_or("", |(t, _)| t);
            !d.trim().is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        })
    };
    let mut directives = rust_log
        .map(str::trim)
        .filter(|s| !s.is_empty() && well_formed(s))
        .unwrap_or("info")
        .to_string();
    for c in CAPPED {
        // A later directive for the same target replaces an earlier one.
        directives.push_str(&format!(",{c}=info"));
    }
    let asked: Targets = directives
        .parse()
        .unwrap_or_else(|_| Targets::new().with_targets(CAPPED.iter().map(|c| (*c, LevelFilter::INFO))));
    match asked.default_level() {
        Some(_) => asked,
        None => asked.with_default(LevelFilter::INFO),
    }
}

/// Install a JSON subscriber, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init(target: LogTarget) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .json()
        .with_max_level(LevelFilter::TRACE)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true);
    let _ = match target {
        LogTarget::Stdout => builder
            .with_writer(std::io::stdout)
            .finish()
            .with(filter)
            .try_init(),
        LogTarget::Stderr => builder
            .with_writer(std::io::stderr)
            .finish()
            .with(filter)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_crates_stay_at_info_under_debug() {
        use tracing::Level;
        let f = filter(Some("debug"));
        assert!(f.would_enable("shared::service", &Level::DEBUG));
        assert!(!f.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(f.would_enable("aws_sdk_kms", &Level::INFO));
        // Asking for a capped crate by name does not lift the cap.
        let f = filter(Some("info,aws_sdk_kms=trace,hyper=debug"));
        assert!(!f.would_enable("aws_sdk_kms::operation", &Level::DEBUG));
        assert!(!f.would_enable("hyper::proto", &Level::DEBUG));
        // Naming one crate keeps the others at info.
        let f = filter(Some("shared=debug"));
        assert!(f.would_enable("shared::http", &Level::DEBUG));
        assert!(f.would_enable("audit", &Level::INFO));
        assert!(!f.would_enable("audit", &Level::DEBUG));
        for unset in [
            None,
            Some(""),
            Some("not a [valid filter"),
            Some("shared=loud"),
            Some("debug,"),
        ] {
            let f = filter(unset);
            assert!(f.would_enable("shared", &Level::INFO), "{unset:?}");
            assert!(!f.would_enable("shared", &Level::DEBUG), "{unset:?}");
            assert!(!f.would_enable("rustls", &Level::DEBUG), "{unset:?}");
        }
    }
}
