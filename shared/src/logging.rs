//! JSON logs through `tracing`. Nothing logs bodies, headers, query strings, codes, tokens or
//! secrets: handlers are instrumented with `skip_all` and record only ids; the access log
//! records the route template, never the raw path.

use tracing_subscriber::EnvFilter;

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

/// The filter: `RUST_LOG` (default `info`), with the [`CAPPED`] crates held at `info`.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let mut directives = rust_log
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("info")
        .to_string();
    for c in CAPPED {
        directives.push_str(&format!(",{c}=info"));
    }
    EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Install a JSON subscriber, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init(target: LogTarget) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true);
    let _ = match target {
        LogTarget::Stdout => builder.with_writer(std::io::stdout).try_init(),
        LogTarget::Stderr => builder.with_writer(std::io::stderr).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_crates_stay_at_info_under_debug() {
        let f = filter(Some("debug")).to_string();
        assert!(
            f.contains("aws_smithy_runtime=info") && f.contains("aws_sdk_kms=info"),
            "{f}"
        );
        assert!(f.split(",").any(|d| d == "debug"), "{f}");
        assert!(filter(Some("not a [valid filter")).to_string().contains("info"));
    }
}
