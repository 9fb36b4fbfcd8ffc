//! `template.yaml` held to least privilege: what each function's IAM policy allows on KMS.

use serde_json::{Value, json};
use std::path::Path;

/// Every function's policy statements, read from the template by `infra/local_aws.py` (the
/// same YAML reading that creates the test tables).
fn policies() -> serde_json::Map<String, Value> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::process::Command::new(repo.join(".venv/bin/python"))
        .arg(repo.join("infra/local_aws.py"))
        .args(["policies", "template.yaml"])
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
    let all = policies();
    assert!(all.len() >= 9, "every function is listed: {:?}", all.keys());
    let mut signers = Vec::new();
    for (function, statements) in &all {
        for s in statements.as_array().unwrap() {
            for a in actions(s) {
                assert!(!a.ends_with(":*"), "{function}: wildcard action {a}");
                if a.starts_with("kms:") {
                    assert!(a == "kms:Sign" || a == "kms:GetPublicKey", "{function}: {a}");
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
    // The previous key appears only where keys are published.
    for (function, statements) in &all {
        for s in statements.as_array().unwrap() {
            if s["Resource"].to_string().contains("PreviousSigningKeyArn") {
                assert_eq!(actions(s), vec!["kms:GetPublicKey"], "{function}");
            }
        }
    }
}

/// Each function's properties, read from the template the same way.
fn functions() -> serde_json::Map<String, Value> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::process::Command::new(repo.join(".venv/bin/python"))
        .arg(repo.join("infra/local_aws.py"))
        .args(["functions", "template.yaml"])
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
    let all = functions();
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
    let got = grants_of(&policies()["SweeperFunction"]);
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
