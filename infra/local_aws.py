#!/usr/bin/env python3
"""Local AWS for tests: create the DynamoDB tables of template.yaml in a DynamoDB-compatible API
(moto's server on loopback).

    python infra/local_aws.py tables ENDPOINT PREFIX [template.yaml]
    python infra/local_aws.py setup ENDPOINT PREFIX [template.yaml]   # tables + a KMS key; prints its id
    python infra/local_aws.py key ENDPOINT [template.yaml]            # another KMS key; prints its id
    python infra/local_aws.py wrapping-key ENDPOINT [template.yaml]   # a symmetric key like WrappingKey; prints its id
    python infra/local_aws.py policies [template.yaml] [MODE]         # each function's IAM statements, as JSON
    python infra/local_aws.py functions [template.yaml] [MODE]        # each function's properties, as JSON
    python infra/local_aws.py template [template.yaml]                # the whole template, as JSON

MODE is a `SigningMode` value (kms, kms-wrapped): with it, `!If` on the conditions that follow
from it (KmsSigning, WrappedSigning) is resolved as a deployment with that mode would see it, and
`!Ref AWS::NoValue` dropped; other conditions are left as they are.

Table names are PREFIX + the logical id, lower-cased, without "Table" (ClientsTable ->
PREFIX + "clients"), which is what `shared::store::dynamodb::TableNames::with_prefix` expects.
The schema is read from template.yaml only: there is no second copy of it.
"""
import sys

import boto3
import yaml


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that accepts CloudFormation's short-form tags (!Ref, !Sub, ...)."""


def _any_tag(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {tag_suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {tag_suffix: loader.construct_sequence(node)}
    return {tag_suffix: loader.construct_mapping(node)}


CfnLoader.add_multi_constructor("!", _any_tag)


def session_client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def setup(endpoint, prefix, template="template.yaml"):
    """The tables, quietly, and one signing key like the template's; prints the key id."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        tables(endpoint, prefix, template)
    key(endpoint, template)


def _kms_key(endpoint, template, usage):
    doc = yaml.load(open(template, encoding="utf-8"), Loader=CfnLoader)
    spec = [r["Properties"] for r in doc["Resources"].values()
            if r.get("Type") == "AWS::KMS::Key" and r["Properties"]["KeyUsage"] == usage][0]
    key = session_client("kms", endpoint).create_key(KeySpec=spec["KeySpec"], KeyUsage=spec["KeyUsage"])
    print(key["KeyMetadata"]["KeyId"])


def key(endpoint, template="template.yaml"):
    """A new signing key like the template's SigningKey (for rotation); prints its id."""
    _kms_key(endpoint, template, "SIGN_VERIFY")


def wrapping_key(endpoint, template="template.yaml"):
    """A new key-encryption key like the template's WrappingKey; prints its id."""
    _kms_key(endpoint, template, "ENCRYPT_DECRYPT")


_NO_VALUE = object()


def resolve(node, conditions):
    """`If` on a known condition replaced by its branch; `Ref AWS::NoValue` dropped."""
    if isinstance(node, dict):
        if set(node) == {"If"}:
            name, yes, no = node["If"]
            if name in conditions:
                return resolve(yes if conditions[name] else no, conditions)
            branches = [resolve(b, conditions) for b in (yes, no)]
            return {"If": [name] + [{"Ref": "AWS::NoValue"} if b is _NO_VALUE else b for b in branches]}
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        out = {}
        for k, v in node.items():
            v = resolve(v, conditions)
            if v is not _NO_VALUE:
                out[k] = v
        return out
    if isinstance(node, list):
        return [v for v in (resolve(v, conditions) for v in node) if v is not _NO_VALUE]
    return node


def _conditions(mode):
    if mode is None:
        return {}
    if mode not in ("kms", "kms-wrapped"):
        sys.exit(f"unknown SigningMode {mode}")
    return {"KmsSigning": mode == "kms", "WrappedSigning": mode == "kms-wrapped"}


def tables(endpoint, prefix, template="template.yaml"):
    doc = yaml.load(open(template, encoding="utf-8"), Loader=CfnLoader)
    ddb = session_client("dynamodb", endpoint)
    existing = set(ddb.list_tables().get("TableNames", []))
    made = []
    for logical, res in doc["Resources"].items():
        if res.get("Type") != "AWS::DynamoDB::Table":
            continue
        p = res["Properties"]
        name = prefix + logical.removesuffix("Table").lower()
        if name in existing:
            ddb.delete_table(TableName=name)
        args = {
            "TableName": name,
            "AttributeDefinitions": p["AttributeDefinitions"],
            "KeySchema": p["KeySchema"],
            "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if p.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = p["GlobalSecondaryIndexes"]
        ddb.create_table(**args)
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": True})
        made.append(name)
    if not made:
        sys.exit("template.yaml has no AWS::DynamoDB::Table resources")
    print(" ".join(made))


def policies(template="template.yaml", mode=None):
    """Each function's IAM policy statements as JSON (short-form tags as {"Ref": ...} etc.), so
    that a test can hold the template to least privilege; with MODE, as that SigningMode deploys."""
    import json
    doc = yaml.load(open(template, encoding="utf-8"), Loader=CfnLoader)
    conditions = _conditions(mode)
    out = {}
    for logical, res in doc["Resources"].items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        statements = []
        for policy in resolve(res["Properties"].get("Policies", []) or [], conditions):
            if "Statement" not in policy:
                sys.exit(f"{logical}: a policy this script cannot read (give a SigningMode?): {policy}")
            statements.extend(policy["Statement"])
        out[logical] = statements
    print(json.dumps(out))


def functions(template="template.yaml", mode=None):
    """Each function's properties (CodeUri, Timeout, Events, ...) as JSON."""
    import json
    doc = yaml.load(open(template, encoding="utf-8"), Loader=CfnLoader)
    conditions = _conditions(mode)
    print(json.dumps({logical: resolve(res["Properties"], conditions)
                      for logical, res in doc["Resources"].items()
                      if res.get("Type") == "AWS::Serverless::Function"}))


def template_json(template="template.yaml"):
    """The whole template as JSON."""
    import json
    print(json.dumps(yaml.load(open(template, encoding="utf-8"), Loader=CfnLoader)))


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "tables":
        tables(*rest)
    elif cmd == "setup":
        setup(*rest)
    elif cmd == "key":
        key(*rest)
    elif cmd == "wrapping-key":
        wrapping_key(*rest)
    elif cmd == "template":
        template_json(*rest)
    elif cmd == "policies":
        policies(*rest)
    elif cmd == "functions":
        functions(*rest)
    else:
        sys.exit(f"unknown command {cmd}")
