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
