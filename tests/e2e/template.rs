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
