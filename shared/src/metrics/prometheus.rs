//! The same metrics as Prometheus counters and histograms, for `bulwark serve --metrics-addr`
//! (`GET /metrics`, text exposition format 0.0.4). Cumulative since the process started.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use super::{Dims, Event, Metric, Metrics, Unit};

/// Histogram bucket bounds for latencies, seconds.
const BUCKETS: [f64; 11] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

#[derive(Clone, Default)]
struct Series {
    count: u64,
    /// Counts: the total; latencies: the sum of seconds.
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Prometheus counters, kept in process.
pub struct Registry {
    per_tenant: bool,
    series: Mutex<BTreeMap<(Metric, Dims), Series>>,
}

impl Registry {
    pub fn new(per_tenant: bool) -> Self {
        Self {
            per_tenant,
            series: Mutex::default(),
        }
    }

    /// The exposition: every metric's `# HELP`/`# TYPE`, its series (an unlabelled counter
    /// shows 0 before its first event).
    pub fn render(&self) -> String {
        let series = match self.series.lock() {
            Ok(s) => s.clone(),
            Err(_) => BTreeMap::new(),
        };
        let mut out = String::new();
        for metric in Metric::ALL {
            let name = prometheus_name(metric);
            let kind = match metric.unit() {
                Unit::Count => "counter",
                Unit::Latency => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}", metric.help());
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let mine: Vec<(&Dims, &Series)> = series
                .iter()
                .filter(|((m, _), _)| *m == metric)
                .map(|((_, d), s)| (d, s))
                .collect();
            if mine.is_empty()
                && metric.unit() == Unit::Count
                && !matches!(metric, Metric::TokensIssued | Metric::TokensRefused)
            {
                let _ = writeln!(out, "{name} 0");
            }
            for (dims, s) in mine {
                match metric.unit() {
                    Unit::Count => {
                        let _ = writeln!(out, "{name}{} {}", labels(dims, None), s.sum);
                    }
                    Unit::Latency => {
                        for (i, le) in BUCKETS.iter().enumerate() {
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {}",
                                labels(dims, Some(&le.to_string())),
                                s.buckets[i]
                            );
                        }
                        let _ = writeln!(out, "{name}_bucket{} {}", labels(dims, Some("+Inf")), s.count);
                        let _ = writeln!(out, "{name}_sum{} {}", labels(dims, None), s.sum);
                        let _ = writeln!(out, "{name}_count{} {}", labels(dims, None), s.count);
                    }
                }
            }
        }
        out
    }
}

/// `bulwark_<snake_case>`, `_total` for counters, `_seconds` for latencies.
pub fn prometheus_name(metric: Metric) -> String {
    let mut snake = String::from("bulwark_");
    for (i, c) in metric.name().chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake.push_str(match metric.unit() {
        Unit::Count => "_total",
        Unit::Latency => "_seconds",
    });
    snake
}

fn labels(dims: &Dims, le: Option<&str>) -> String {
    let mut l = Vec::new();
    if let Some(g) = dims.grant {
        l.push(format!("grant=\"{}\"", escape(g)));
    }
    if let Some(t) = &dims.tenant {
        l.push(format!("tenant=\"{}\"", escape(t)));
    }
    if let Some(le) = le {
        l.push(format!("le=\"{le}\""));
    }
    if l.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", l.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics for Registry {
    fn record(&self, event: Event<'_>) {
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        for (metric, dims, value) in event.samples(self.per_tenant) {
            // One process: the function dimension says nothing here.
            let dims = Dims {
                function: false,
                ..dims
            };
            let s = series.entry((metric, dims)).or_default();
            s.count += 1;
            match metric.unit() {
                Unit::Count => s.sum += value,
                Unit::Latency => {
                    let secs = value / 1000.0;
                    s.sum += secs;
                    for (i, le) in BUCKETS.iter().enumerate() {
                        if secs <= *le {
                            s.buckets[i] += 1;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counters_and_histograms_in_text_format() {
        let r = Registry::new(false);
        r.record(Event::TokenIssued {
            grant: "client_credentials",
            tenant: "acme",
        });
        r.record(Event::TokenIssued {
            grant: "client_credentials",
            tenant: "other",
        });
        r.record(Event::ClientAuthFailed { tenant: None });
        r.record(Event::StoreCall {
            ok: true,
            latency: Duration::from_millis(3),
        });
        let text = r.render();
        assert!(
            text.contains("# TYPE bulwark_tokens_issued_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("bulwark_tokens_issued_total{grant=\"client_credentials\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("bulwark_client_auth_failures_total 1\n"), "{text}");
        assert!(text.contains("bulwark_refresh_reuse_total 0\n"), "{text}");
        assert!(
            text.contains("# TYPE bulwark_store_latency_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("bulwark_store_latency_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("bulwark_store_latency_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("bulwark_store_latency_seconds_count 1\n"), "{text}");
        assert!(
            !text.contains("tenant="),
            "no tenant label unless turned on: {text}"
        );
        let r = Registry::new(true);
        r.record(Event::LoginFailed { tenant: "a\"b" });
        assert!(
            r.render()
                .contains("bulwark_login_failures_total{tenant=\"a\\\"b\"} 1\n")
        );
    }
}
