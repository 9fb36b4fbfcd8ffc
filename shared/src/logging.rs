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

/// Install a JSON subscriber, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init(target: LogTarget) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
