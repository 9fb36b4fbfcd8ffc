//! `template.yaml` held to least privilege: what each function's IAM policy allows on KMS and
//! on the key ring, in each `SigningMode`.

use serde_json::{Value, json};
use std::path::Path;

/// Every function's policy statements as a stack in `mode` (a `SigningMode`) deploys them,
/// read from the template by `infra/local_aws.py` (the same YAML reading that creates the test
/// tables).
fn policies(mode: &str) -> serde_json::Map<String, Value> {
    local_aws(&["policies", "template.yaml", mode])
}

fn local_aws(args: &[&str]) -> serde_json::Map<String, Value> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::process::Command::new(repo.join(".venv/bin/python"))
        .arg(repo.join("infra/local_aws.py"))
        .args(args)
        .current_dir(repo)
        .output()
        .expect("run infra/local_aws.py (the venv comes from infra/venv.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        other => panic!("Action {other}"),
    }
}

#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the project venv (PyYAML): run `bash infra/test.sh` (it provides it and enables feature test-services)"
)]
#[test]
fn only_the_token_function_signs_and_only_with_the_active_key() {
    let all = policies("kms");
    assert!(all.len() >= 9, "every function is listed: {:?}", all.keys());
    let mut signers = Vec::new();
    let mut kms_publishers = Vec::new();
    let mut ring_readers = Vec::new();
    for (function, statements) in &all {
        for s in statements.as_array().unwrap() {
            for a in actions(s) {
                assert!(!a.ends_with(":*"), "{function}: wildcard action {a}");
                if a.starts_with("kms:") {
                    assert!(a == "kms:Sign" || a == "kms:GetPublicKey", "{function}: {a}");
                }
                if a == "kms:GetPublicKey" {
                    kms_publishers.push(function.clone());
                }
                // The ring's public part is published in kms mode too (before a switch to
                // kms-wrapped), by the same functions, read only.
                if s["Resource"].to_string().contains("KeysTable") {
                    assert_eq!(
                        (a.as_str(), &s["Resource"]),
                        ("dynamodb:GetItem", &json!({"GetAtt": "KeysTable.Arn"})),
                        "{function}: the ring is read, never written"
                    );
                    ring_readers.push(function.clone());
                }
                if a == "kms:Sign" {
                    signers.push(function.clone());
                    assert_eq!(
                        actions(s),
                        vec!["kms:Sign"],
                        "{function}: Sign in a statement of its own"
                    );
                    assert_eq!(
                        s["Resource"],
                        json!({"If": ["HasActiveKey", {"Ref": "ActiveSigningKeyArn"}, {"GetAtt": "SigningKey.Arn"}]}),
                        "{function}: only the active key signs"
                    );
                }
            }
        }
    }
    assert_eq!(signers, vec!["TokenFunction"]);
    assert_eq!(
        ring_readers, kms_publishers,
        "whoever publishes KMS keys publishes the ring"
    );
    assert!(ring_readers.len() >= 7, "{ring_readers:?}");
    // The previous key appears only where keys are published.
    for (function, statements) in &all {
        for s in statements.as_array().unwrap() {
            if s["Resource"].to_string().contains("PreviousSigningKeyArn") {
                assert_eq!(actions(s), vec!["kms:GetPublicKey"], "{function}");
            }
        }
    }
}

/// SigningMode=kms-wrapped (the default): no function may Sign or read public keys from KMS;
/// only the token function may Decrypt, only the wrapping key, only under its own stack's
/// encryption context; no function may Encrypt (the operator CLI wraps keys with the operator's
/// credentials); exactly the functions that verify tokens read the key ring, and none writes it;
/// only the token function is told the wrapping key.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the project venv (PyYAML): run `bash infra/test.sh` (it provides it and enables feature test-services)"
)]
#[test]
fn in_kms_wrapped_mode_only_the_token_function_decrypts_and_only_its_own_stacks_keys() {
    let template = local_aws(&["template", "template.yaml"]);
    assert_eq!(
        template["Parameters"]["SigningMode"]["Default"], "kms-wrapped",
        "the default mode"
    );
    // The ring and its wrapping key exist in both modes (a kms stack makes its first wrapped
    // key before it switches); the KMS signing key only in kms mode.
    for (resource, condition) in [
        ("KeysTable", Value::Null),
        ("WrappingKey", Value::Null),
        ("WrappingKeyAlias", Value::Null),
        ("SigningKey", json!("KmsSigning")),
        ("SigningKeyAlias", json!("KmsSigning")),
    ] {
        assert_eq!(
            template["Resources"][resource]["Condition"], condition,
            "{resource}"
        );
    }
    // Key parameters are ARNs (they are IAM policy resources); the former key's ARN is an
    // output; the active-key parameter is refused in kms-wrapped mode.
    for p in ["ActiveSigningKeyArn", "PreviousSigningKeyArn"] {
        assert_eq!(
            template["Parameters"][p]["AllowedPattern"],
            "^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$",
            "{p}"
        );
    }
    assert_eq!(
        template["Outputs"]["SigningKeyArn"]["Value"],
        json!({"GetAtt": "SigningKey.Arn"})
    );
    assert_eq!(
        template["Rules"]["ActiveKeyOnlyInKmsMode"]["Assertions"][0]["Assert"],
        json!({"Equals": [{"Ref": "ActiveSigningKeyArn"}, ""]})
    );
    let kek = &template["Resources"]["WrappingKey"]["Properties"];
    assert_eq!(kek["KeySpec"], "SYMMETRIC_DEFAULT");
    assert_eq!(kek["KeyUsage"], "ENCRYPT_DECRYPT");

    let all = policies("kms-wrapped");
    assert!(all.len() >= 9, "every function is listed: {:?}", all.keys());
    let mut decrypters = Vec::new();
    let mut ring_readers = Vec::new();
    let mut previous_key_readers = Vec::new();
    for (function, statements) in &all {
        for s in statements.as_array().unwrap() {
            // After a switch from kms, the former KMS key (PreviousSigningKeyArn): its public
            // key where the ring is read; and `Sign`, for the moments while CloudFormation has
            // updated the token function's role but not yet its configuration, in the token
            // function only (which holds the wrapped key anyway).
            if let Some(cond) = s.get("If") {
                let [name, yes, no] = cond.as_array().unwrap().as_slice() else {
                    panic!("{function}: {cond}")
                };
                assert_eq!(
                    (name, no),
                    (&json!("HasPreviousKey"), &json!({"Ref": "AWS::NoValue"})),
                    "{function}"
                );
                assert_eq!(
                    yes["Resource"],
                    json!({"Ref": "PreviousSigningKeyArn"}),
                    "{function}"
                );
                match yes["Action"].as_str() {
                    Some("kms:GetPublicKey") => previous_key_readers.push(function.clone()),
                    Some("kms:Sign") => assert_eq!(function, "TokenFunction"),
                    other => panic!("{function}: {other:?}"),
                }
                continue;
            }
            let resource = s["Resource"].to_string();
            for a in actions(s) {
                assert!(!a.ends_with(":*"), "{function}: wildcard action {a}");
                if a.starts_with("kms:") {
                    assert_eq!(
                        a, "kms:Decrypt",
                        "{function}: kms-wrapped needs no other KMS action"
                    );
                    decrypters.push(function.clone());
                    assert_eq!(
                        actions(s),
                        vec!["kms:Decrypt"],
                        "{function}: a statement of its own"
                    );
                    assert_eq!(s["Resource"], json!({"GetAtt": "WrappingKey.Arn"}), "{function}");
                    assert_eq!(
                        s["Condition"],
                        json!({"StringEquals": {"kms:EncryptionContext:stack": {"Ref": "AWS::StackName"}}}),
                        "{function}: Decrypt pinned to this stack's encryption context"
                    );
                }
                if resource.contains("KeysTable") {
                    assert_eq!(
                        (a.as_str(), &s["Resource"]),
                        ("dynamodb:GetItem", &json!({"GetAtt": "KeysTable.Arn"})),
                        "{function}: the key ring is read, never written, and only it"
                    );
                    ring_readers.push(function.clone());
                }
            }
            assert!(!resource.contains("SigningKey"), "{function}: {resource}");
        }
    }
    assert_eq!(decrypters, vec!["TokenFunction"]);
    ring_readers.sort();
    previous_key_readers.sort();
    assert_eq!(previous_key_readers, ring_readers);
    assert_eq!(
        ring_readers,
        [
            "AdminFunction",
            "ConsoleFunction",
            "IntrospectFunction",
            "JwksFunction",
            "RevokeFunction",
            "TokenFunction",
            "UserinfoFunction"
        ]
    );
    for (function, p) in functions("kms-wrapped") {
        let told = p["Environment"]["Variables"]
            .get("BULWARK_WRAPPING_KEY_ID")
            .is_some();
        assert_eq!(told, function == "TokenFunction", "{function}");
    }
    for (function, p) in functions("kms") {
        assert!(
            p["Environment"]["Variables"]
                .get("BULWARK_WRAPPING_KEY_ID")
                .is_none(),
            "{function}"
        );
    }
}

/// Each function's properties, read from the template the same way.
fn functions(mode: &str) -> serde_json::Map<String, Value> {
    local_aws(&["functions", "template.yaml", mode])
}

/// Which actions a function's statements allow on each resource (`GetAtt` names).
fn grants_of(statements: &Value) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for s in statements.as_array().unwrap() {
        assert_eq!(s["Effect"], "Allow");
        let resources: Vec<String> = match &s["Resource"] {
            Value::Array(a) => a
                .iter()
                .map(|r| r["GetAtt"].as_str().unwrap_or("?").to_string())
                .collect(),
            r => vec![r["GetAtt"].as_str().unwrap_or("?").to_string()],
        };
        for r in resources {
            out.entry(r).or_default().extend(actions(s));
        }
    }
    out
}

/// Names line up (`functions/<name>` → `<Name>Function`, `CodeUri: functions/<name>`), and the
/// sweeper — the one function no HTTP route reaches — runs daily on a schedule with exactly
/// what its ports use: the open-registration list and the clients in `clients`, last use in
/// `tokens`, the delete cascade in `grants`, audit events; no KMS, no tenants or users.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the project venv (PyYAML): run `bash infra/test.sh` (it provides it and enables feature test-services)"
)]
#[test]
fn every_function_crate_is_a_function_and_the_sweeper_runs_daily_with_least_privilege() {
    let all = functions("kms-wrapped");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut crates: Vec<String> = std::fs::read_dir(repo.join("functions"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    let mut declared: Vec<String> = all
        .iter()
        .map(|(logical, p)| {
            let name = p["CodeUri"]
                .as_str()
                .unwrap()
                .strip_prefix("functions/")
                .unwrap()
                .to_string();
            let mut expected = name[..1].to_uppercase();
            expected.push_str(&name[1..]);
            assert_eq!(logical, &format!("{expected}Function"));
            name
        })
        .collect();
    declared.sort();
    assert_eq!(declared, crates);

    let sweeper = &all["SweeperFunction"];
    assert_eq!(
        sweeper["Events"],
        json!({"Daily": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 day)"}}})
    );
    assert!(sweeper["Timeout"].as_u64().unwrap() >= 60, "{sweeper}");
    let got = grants_of(&policies("kms-wrapped")["SweeperFunction"]);
    assert_eq!(got, grants_of(&policies("kms")["SweeperFunction"]));
    let set = |a: &[&str]| {
        a.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let expected: std::collections::BTreeMap<String, _> = [
        (
            "ClientsTable.Arn",
            set(&[
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
            ]),
        ),
        ("TokensTable.Arn", set(&["dynamodb:GetItem"])),
        ("GrantsTable.Arn", set(&["dynamodb:Query", "dynamodb:DeleteItem"])),
        ("AuditTable.Arn", set(&["dynamodb:PutItem"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, expected);
    // Only the sweeper has a schedule; the others are reached through the HTTP API only.
    for (logical, p) in &all {
        if logical != "SweeperFunction" {
            assert!(p.get("Events").is_none(), "{logical}");
        }
    }
}

/// The observability resources, for every function there is (a function added without them
/// fails here): its log group, named as Lambda names it, kept `LogRetentionDays`, and wired as
/// the function's; an error-rate alarm (5xx answers, from the function's EMF metric, plus
/// failed invocations, over its invocations) and a throttles alarm on it. Every alarm exists
/// only with `Alarms=on` and notifies `AlarmTopicArn` only when one is given. Stack-wide: the
/// KMS, store, refresh-reuse and login-failure alarms on the functions' EMF metrics (names the
/// code emits), DynamoDB system errors and throttles per table, the HTTP API's 4xx/5xx/p99
/// alarms, its access log, tracing and retention parameters, one dashboard showing every metric.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the project venv (PyYAML): run `bash infra/test.sh` (it provides it and enables feature test-services)"
)]
#[test]
fn every_function_has_its_log_group_and_alarms_and_the_stack_its_dashboard() {
    let t = local_aws(&["template", "template.yaml"]);
    let resources = t["Resources"].as_object().unwrap();
    let of_type = |ty: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r["Type"] == ty)
            .collect::<Vec<_>>()
    };
    let alarms = of_type("AWS::CloudWatch::Alarm");
    let namespace = json!({"Sub": "Bulwark/${AWS::StackName}"});
    let emitted: Vec<&str> = shared::metrics::Metric::ALL.iter().map(|m| m.name()).collect();
    let actions = json!({"If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]});
    for (name, a) in &alarms {
        assert_eq!(a["Condition"], "AlarmsOn", "{name}");
        assert_eq!(a["Properties"]["AlarmActions"], actions, "{name}");
        assert_eq!(a["Properties"]["OKActions"], actions, "{name}");
        assert!(
            a["Properties"]["AlarmDescription"].is_string()
                || a["Properties"]["AlarmDescription"]["Sub"].is_string(),
            "{name}"
        );
        // An alarm on our own metrics names one the code emits.
        let p = &a["Properties"];
        let stats = p["Metrics"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| m.get("MetricStat"))
                    .map(|s| s["Metric"].clone())
                    .collect()
            })
            .unwrap_or_else(|| vec![p.clone()]);
        for m in stats {
            if m["Namespace"] == namespace {
                let metric = m["MetricName"].as_str().unwrap();
                assert!(
                    emitted.contains(&metric),
                    "{name}: {metric} is not a metric the functions write"
                );
            }
        }
    }
    // Whether some alarm watches `metric` with exactly `dims` (alone, or in its metric math).
    let on = |metric: &str, dims: &Value| -> bool {
        let m = |s: &Value| s["MetricName"] == metric && &s["Dimensions"] == dims;
        alarms.iter().any(|(_, a)| {
            let p = &a["Properties"];
            m(p) || p["Metrics"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|x| m(&x["MetricStat"]["Metric"])))
        })
    };

    let functions = of_type("AWS::Serverless::Function");
    assert!(functions.len() >= 12, "{}", functions.len());
    for (name, f) in &functions {
        let fname = f["Properties"]["FunctionName"]["Sub"]
            .as_str()
            .expect("a fixed function name");
        let Some(group) = f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"].as_str() else {
            panic!("{name}: LoggingConfig.LogGroup is not its own log group");
        };
        let g = &resources[group];
        assert_eq!(g["Type"], "AWS::Logs::LogGroup", "{name}");
        assert_eq!(
            g["Properties"]["LogGroupName"],
            json!({"Sub": format!("/aws/lambda/{fname}")}),
            "{name}: the log group Lambda writes to"
        );
        assert_eq!(
            g["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"}),
            "{name}"
        );
        let by_name = json!([{"Name": "FunctionName", "Value": {"Ref": name}}]);
        let by_function = json!([{"Name": "Function", "Value": {"Ref": name}}]);
        assert!(on("Throttles", &by_name), "{name}: no throttles alarm");
        // The error-rate alarm: 5xx answers and failed invocations over invocations, one alarm.
        let rate = alarms.iter().find(|(_, a)| {
            let ms = a["Properties"]["Metrics"].as_array();
            let has = |metric: &str, dims: &Value| {
                ms.is_some_and(|ms| {
                    ms.iter().any(|x| {
                        x["MetricStat"]["Metric"]["MetricName"] == metric
                            && &x["MetricStat"]["Metric"]["Dimensions"] == dims
                    })
                })
            };
            has("ServerErrors", &by_function) && has("Errors", &by_name) && has("Invocations", &by_name)
        });
        let Some((_, rate)) = rate else {
            panic!("{name}: no error-rate alarm")
        };
        let expression = rate["Properties"]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m.get("Expression").is_some())
            .unwrap();
        assert!(
            expression["Expression"]
                .as_str()
                .unwrap()
                .contains("/ invocations"),
            "{name}"
        );
        assert_eq!(
            rate["Properties"]["Threshold"],
            json!({"Ref": "FunctionErrorRatePercent"})
        );
    }

    // Stack-wide alarms on the functions' metrics.
    for metric in ["KmsErrors", "StoreErrors", "RefreshReuse", "LoginFailures"] {
        assert!(
            alarms.iter().any(|(_, a)| a["Properties"]["MetricName"] == metric
                && a["Properties"]["Namespace"] == namespace
                && a["Properties"]["Dimensions"] == json!([])),
            "no alarm on {metric}"
        );
    }
    // DynamoDB, per table: system errors and throttles.
    for (table, _) in of_type("AWS::DynamoDB::Table") {
        let dims = json!([{"Name": "TableName", "Value": {"Ref": table}}]);
        for metric in ["ReadThrottleEvents", "WriteThrottleEvents"] {
            assert!(on(metric, &dims), "{table}: no {metric} alarm");
        }
        for op in ["GetItem", "PutItem", "DeleteItem", "Query", "TransactWriteItems"] {
            let dims =
                json!([{"Name": "TableName", "Value": {"Ref": table}}, {"Name": "Operation", "Value": op}]);
            assert!(
                on("SystemErrors", &dims),
                "{table}: no SystemErrors alarm for {op}"
            );
        }
    }
    // The HTTP API: 4xx and 5xx rates, p99 latency; its access log, by route template.
    let api = json!([{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}]);
    for metric in ["4xx", "5xx", "Latency"] {
        assert!(on(metric, &api), "no API {metric} alarm");
    }
    assert!(
        alarms
            .iter()
            .any(|(_, a)| a["Properties"]["MetricName"] == "Latency"
                && a["Properties"]["ExtendedStatistic"] == "p99")
    );
    let log = &resources["HttpApi"]["Properties"]["AccessLogSettings"];
    assert_eq!(log["DestinationArn"], json!({"GetAtt": "ApiAccessLogGroup.Arn"}));
    let format: Value = serde_json::from_str(log["Format"].as_str().unwrap()).unwrap();
    assert_eq!(format["routeKey"], "$context.routeKey");
    assert!(
        !log["Format"].as_str().unwrap().contains("$context.path"),
        "never the raw path"
    );
    assert_eq!(
        resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"],
        json!({"Ref": "LogRetentionDays"})
    );

    // Parameters: alarms on by default, tracing and the per-tenant dimension off, 30 days.
    let p = &t["Parameters"];
    assert_eq!(p["Alarms"]["Default"], "on");
    assert_eq!(p["AlarmTopicArn"]["Default"], "");
    assert_eq!(p["Tracing"]["Default"], "PassThrough");
    assert_eq!(p["LogRetentionDays"]["Default"], 30);
    assert_eq!(p["MetricsPerTenant"]["Default"], "off");
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Tracing"], json!({"Ref": "Tracing"}));
    let env = &globals["Environment"]["Variables"];
    assert_eq!(env["BULWARK_METRICS_NAMESPACE"], namespace);
    assert_eq!(
        env["BULWARK_METRICS_PER_TENANT"],
        json!({"Ref": "MetricsPerTenant"})
    );

    // One dashboard, showing every metric the functions write.
    let dashboards = of_type("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let body = dashboards[0].1["Properties"]["DashboardBody"]["Sub"]
        .as_str()
        .unwrap();
    serde_json::from_str::<Value>(body).expect("the dashboard body is JSON");
    for metric in &emitted {
        assert!(body.contains(metric), "the dashboard does not show {metric}");
    }
}

/// The pushed authorization request function (RFC 9126): both issuers' routes (POST, and the
/// CORS preflight it answers itself) reach it, API Gateway may invoke it, and its role allows
/// exactly what it calls — the client and its tenant read, the pushed request and the spent
/// `jti`s of DPoP proofs and client assertions put — and no KMS or key ring (it verifies no
/// token of ours). The authorize function may take a pushed request (a conditional delete).
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the project venv (PyYAML): run `bash infra/test.sh` (it provides it and enables feature test-services)"
)]
#[test]
fn the_par_function_has_both_issuers_routes_and_only_what_it_calls() {
    let template = local_aws(&["template", "template.yaml"]);
    let paths = &template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"];
    for path in ["/oauth2/par", "/t/{tenant}/oauth2/par"] {
        for method in ["post", "options"] {
            let uri = paths[path][method]["x-amazon-apigateway-integration"]["uri"]["Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("{path} {method}: {}", paths[path]));
            assert!(
                uri.ends_with(":function:${AWS::StackName}-par/invocations"),
                "{path} {method}: {uri}"
            );
        }
    }
    assert_eq!(
        template["Resources"]["ParInvoke"]["Properties"]["FunctionName"],
        json!({"Ref": "ParFunction"})
    );
    let set = |a: &[&str]| {
        a.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let expected: std::collections::BTreeMap<String, _> = [
        ("TenantsTable.Arn", set(&["dynamodb:GetItem"])),
        ("ClientsTable.Arn", set(&["dynamodb:GetItem"])),
        ("TokensTable.Arn", set(&["dynamodb:PutItem"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for mode in ["kms", "kms-wrapped"] {
        let all = policies(mode);
        assert_eq!(grants_of(&all["ParFunction"]), expected, "{mode}");
        let authorize = grants_of(&all["AuthorizeFunction"]);
        assert!(
            authorize["TokensTable.Arn"].contains("dynamodb:DeleteItem"),
            "{mode}: {authorize:?}"
        );
    }
}

/// The device function (RFC 8628): both issuers' routes (the endpoint with its CORS preflight,
/// the verification page) reach it, API Gateway may invoke it, and its role allows exactly
/// what it calls — the client, tenant and user read, the user's groups queried, device codes,
/// sessions and counters in tokens, the consent an approval records, audit events — and no KMS
/// or key ring. The token function, which polls and redeems, may put and delete on tokens.
#[cfg_attr(
    not(feature = "test-services"),
    ignore = "needs the project venv (PyYAML): run `bash infra/test.sh` (it provides it and enables feature test-services)"
)]
#[test]
fn the_device_function_has_both_issuers_routes_and_only_what_it_calls() {
    let template = local_aws(&["template", "template.yaml"]);
    let paths = &template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"];
    for (path, methods) in [
        ("/oauth2/device_authorization", ["post", "options"]),
        ("/t/{tenant}/oauth2/device_authorization", ["post", "options"]),
        ("/device", ["get", "post"]),
        ("/t/{tenant}/device", ["get", "post"]),
    ] {
        for method in methods {
            let uri = paths[path][method]["x-amazon-apigateway-integration"]["uri"]["Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("{path} {method}: {}", paths[path]));
            assert!(
                uri.ends_with(":function:${AWS::StackName}-device/invocations"),
                "{path} {method}: {uri}"
            );
        }
    }
    assert_eq!(
        template["Resources"]["DeviceInvoke"]["Properties"]["FunctionName"],
        json!({"Ref": "DeviceFunction"})
    );
    let set = |a: &[&str]| {
        a.iter()
            .map(|s| s.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let expected: std::collections::BTreeMap<String, _> = [
        ("TenantsTable.Arn", set(&["dynamodb:GetItem"])),
        ("ClientsTable.Arn", set(&["dynamodb:GetItem"])),
        ("UsersTable.Arn", set(&["dynamodb:GetItem", "dynamodb:Query"])),
        (
            "TokensTable.Arn",
            set(&["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]),
        ),
        ("GrantsTable.Arn", set(&["dynamodb:GetItem", "dynamodb:PutItem"])),
        ("AuditTable.Arn", set(&["dynamodb:PutItem"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for mode in ["kms", "kms-wrapped"] {
        let all = policies(mode);
        assert_eq!(grants_of(&all["DeviceFunction"]), expected, "{mode}");
        // The token function's statements on the tokens table (its KMS ones are conditional).
        let on_tokens: Vec<String> = all["TokenFunction"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|st| st["Effect"] == "Allow" && st["Resource"].to_string().contains("TokensTable.Arn"))
            .flat_map(actions)
            .collect();
        for action in ["dynamodb:PutItem", "dynamodb:DeleteItem"] {
            assert!(on_tokens.iter().any(|a| a == action), "{mode}: {on_tokens:?}");
        }
    }
}
