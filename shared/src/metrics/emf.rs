//! CloudWatch Embedded Metric Format: the metrics a Lambda invocation recorded, as JSON log
//! lines that CloudWatch Logs turns into metrics (no API call, no agent). The Lambda adapter
//! (`lambda.rs`) drains this sink after every invocation and writes the lines to stdout.
//!
//! One line per set of dimension values: `{"_aws": {"Timestamp", "CloudWatchMetrics":
//! [{"Namespace", "Dimensions", "Metrics"}]}, <dimension>: <value>, <metric>: <value>}`. Counts
//! are summed; latencies are arrays of values (at most [`MAX_VALUES`] per metric and line, as
//! the format allows), so CloudWatch computes the percentiles.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Dims, Event, Metric, Metrics, Unit};

/// The most values one metric may carry in one EMF document.
pub const MAX_VALUES: usize = 100;

/// Accumulates one invocation's samples until [`Emf::drain`].
pub struct Emf {
    namespace: String,
    function: String,
    per_tenant: bool,
    pending: Mutex<BTreeMap<Dims, BTreeMap<Metric, Vec<f64>>>>,
}

impl Emf {
    /// A sink publishing in `namespace`, naming `function` where a metric is per function; with
    /// a `Tenant` dimension only if `per_tenant`.
    pub fn new(namespace: &str, function: &str, per_tenant: bool) -> Self {
        Self {
            namespace: namespace.to_string(),
            function: function.to_string(),
            per_tenant,
            pending: Mutex::default(),
        }
    }

    /// The EMF lines for everything recorded since the last drain (none if nothing was), at
    /// `timestamp_ms` (milliseconds since the epoch). `properties` are added to every line as
    /// plain fields (not metrics), e.g. the invocation's request id.
    pub fn drain(&self, timestamp_ms: i64, properties: &[(&str, &str)]) -> Vec<String> {
        let pending = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Vec::new(),
        };
        let mut lines = Vec::new();
        for (dims, metrics) in pending {
            let chunks = metrics
                .iter()
                .map(|(m, v)| match m.unit() {
                    Unit::Count => 1,
                    Unit::Latency => v.len().div_ceil(MAX_VALUES),
                })
                .max()
                .unwrap_or(0);
            for chunk in 0..chunks {
                let mut doc = Map::new();
                let mut names = Vec::new();
                for (m, values) in &metrics {
                    let value = match m.unit() {
                        Unit::Count if chunk == 0 => json!(values.iter().sum::<f64>()),
                        Unit::Count => continue,
                        Unit::Latency => {
                            let part: Vec<f64> = values
                                .iter()
                                .skip(chunk * MAX_VALUES)
                                .take(MAX_VALUES)
                                .copied()
                                .collect();
                            if part.is_empty() {
                                continue;
                            }
                            json!(part)
                        }
                    };
                    doc.insert(m.name().to_string(), value);
                    let unit = match m.unit() {
                        Unit::Count => "Count",
                        Unit::Latency => "Milliseconds",
                    };
                    names.push(json!({"Name": m.name(), "Unit": unit}));
                }
                let mut keys: Vec<&str> = Vec::new();
                if dims.function {
                    keys.push("Function");
                    doc.insert("Function".into(), json!(self.function));
                }
                if let Some(g) = dims.grant {
                    keys.push("Grant");
                    doc.insert("Grant".into(), json!(g));
                }
                // The tenant is an extra set beside the one without it, so that the stack-wide
                // metric (what the alarms watch) exists either way.
                let mut sets = vec![json!(keys)];
                if let Some(t) = &dims.tenant {
                    let mut with = keys.clone();
                    with.push("Tenant");
                    sets.push(json!(with));
                    doc.insert("Tenant".into(), json!(t));
                }
                for (k, v) in properties {
                    doc.entry(k.to_string()).or_insert_with(|| json!(v));
                }
                doc.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": sets,
                            "Metrics": names,
                        }],
                    }),
                );
                lines.push(Value::Object(doc).to_string());
            }
        }
        lines
    }
}

impl Metrics for Emf {
    fn record(&self, event: Event<'_>) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        for (metric, dims, value) in event.samples(self.per_tenant) {
            pending
                .entry(dims)
                .or_default()
                .entry(metric)
                .or_default()
                .push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(lines: &[String]) -> Vec<Value> {
        lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn one_line_per_dimension_values_with_counts_summed() {
        let emf = Emf::new("Bulwark/test", "token-fn", false);
        for _ in 0..3 {
            emf.record(Event::TokenIssued {
                grant: "client_credentials",
                tenant: "acme",
            });
        }
        emf.record(Event::TokenIssued {
            grant: "refresh_token",
            tenant: "acme",
        });
        emf.record(Event::ClientAuthFailed { tenant: Some("acme") });
        emf.record(Event::ColdStart);
        let lines = parse(&emf.drain(1_700_000_000_000, &[("requestId", "r-1")]));
        assert_eq!(lines.len(), 4, "{lines:?}");
        let cc = lines.iter().find(|l| l["Grant"] == "client_credentials").unwrap();
        assert_eq!(cc["TokensIssued"], 3.0);
        assert_eq!(cc["requestId"], "r-1");
        assert_eq!(
            cc["_aws"],
            json!({"Timestamp": 1_700_000_000_000i64, "CloudWatchMetrics": [{
                "Namespace": "Bulwark/test",
                "Dimensions": [["Grant"]],
                "Metrics": [{"Name": "TokensIssued", "Unit": "Count"}],
            }]})
        );
        assert!(cc.get("Tenant").is_none(), "no tenant unless turned on: {cc}");
        let plain = lines
            .iter()
            .find(|l| l.get("ClientAuthFailures").is_some())
            .unwrap();
        assert_eq!(plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        let cold = lines.iter().find(|l| l.get("ColdStarts").is_some()).unwrap();
        assert_eq!(cold["Function"], "token-fn");
        assert_eq!(
            cold["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"]])
        );
        assert!(emf.drain(0, &[]).is_empty(), "drained");
    }

    #[test]
    fn the_tenant_is_a_second_dimension_set_only_when_turned_on() {
        let emf = Emf::new("B", "f", true);
        emf.record(Event::TokenRefused {
            grant: "authorization_code",
            tenant: "acme",
        });
        let l = &parse(&emf.drain(0, &[]))[0];
        assert_eq!(l["Tenant"], "acme");
        assert_eq!(
            l["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Grant"], ["Grant", "Tenant"]])
        );
    }

    #[test]
    fn latencies_are_value_arrays_of_at_most_a_hundred_and_errors_count() {
        let emf = Emf::new("B", "f", false);
        for i in 0..250 {
            emf.record(Event::StoreCall {
                ok: i != 7,
                latency: Duration::from_millis(2),
            });
        }
        emf.record(Event::KmsCall {
            ok: false,
            latency: Duration::from_millis(30),
        });
        let lines = parse(&emf.drain(0, &[]));
        assert_eq!(lines.len(), 3, "{lines:?}");
        let values: usize = lines
            .iter()
            .map(|l| l["StoreLatency"].as_array().unwrap().len())
            .sum();
        assert_eq!(values, 250);
        assert!(
            lines
                .iter()
                .all(|l| l["StoreLatency"].as_array().unwrap().len() <= MAX_VALUES)
        );
        assert_eq!(lines[0]["StoreErrors"], 1.0);
        assert_eq!(lines[0]["KmsErrors"], 1.0);
        assert_eq!(lines[0]["KmsLatency"], json!([30.0]));
        assert!(
            lines[1].get("StoreErrors").is_none(),
            "a count is in one line only"
        );
        let units: Vec<&Value> = lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["Name"] == "StoreLatency")
            .map(|m| &m["Unit"])
            .collect();
        assert_eq!(units, vec!["Milliseconds"]);
    }
}
