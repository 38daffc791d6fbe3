"""The Terraform, parsed and compared with what `tarhold init` (storage/provision.py)
creates and prints: the table, the bucket rule and the IAM policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import hcl2

from storage.dynamodb import DEFAULT_TABLE
from storage.provision import (
    ABORT_INCOMPLETE_UPLOAD_DAYS,
    ATTRIBUTE_DEFINITIONS,
    BILLING_MODE,
    KEY_SCHEMA,
    LIFECYCLE_RULE_ID,
    TTL_ATTRIBUTE,
    iam_policy,
)
from tests.support.deploy_files import (
    TERRAFORM,
    configmap_config,
    deployment,
)


def unquote(value: Any) -> Any:
    """python-hcl2 >= 7 keeps string quotes and adds `__is_block__`; older versions do neither."""
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def terraform() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            for key, blocks in unquote(hcl2.load(handle)).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def tf_blocks(kind: str, type_name: str) -> dict[str, dict[str, Any]]:
    """Every `kind "type_name" "name" {}` block (resource or data), by name."""
    found: dict[str, dict[str, Any]] = {}
    for block in terraform().get(kind, []):
        for name, body in block.get(type_name, {}).items():
            found[name] = body
    return found


def tf_one(kind: str, type_name: str) -> dict[str, Any]:
    (body,) = tf_blocks(kind, type_name).values()
    return body


def tf_variables() -> dict[str, dict[str, Any]]:
    return {name: body for block in terraform()["variable"] for name, body in block.items()}


def tf_true_by_default(value: Any) -> bool:
    """A literal true, or `!var.x` where x defaults to false."""
    if value is True:
        return True
    match = re.fullmatch(r"\$\{!var\.(\w+)\}", str(value))
    return bool(match) and tf_variables()[match.group(1)]["default"] is False


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_terraform_declares_provider_aws_and_no_backend() -> None:
    config = terraform()
    assert any("aws" in block for block in config["provider"])
    for block in config["terraform"]:
        assert "backend" not in block and "cloud" not in block
    variables = tf_variables()
    assert "default" not in variables["bucket_name"] and "default" not in variables["region"]
    assert variables["table_name"]["default"] == DEFAULT_TABLE
    _, raw = configmap_config()
    assert variables["key_prefix"]["default"] == raw["store"]["aws-s3-storage"]["keyPrefix"]


def test_terraform_bucket_is_private_and_aborts_abandoned_uploads() -> None:
    bucket = "${aws_s3_bucket.packages.id}"
    assert "packages" in tf_blocks("resource", "aws_s3_bucket")
    block = tf_one("resource", "aws_s3_bucket_public_access_block")
    assert block["bucket"] == bucket
    assert block["block_public_policy"] is True and block["restrict_public_buckets"] is True
    assert tf_true_by_default(block["block_public_acls"]) and tf_true_by_default(block["ignore_public_acls"])
    lifecycle = tf_one("resource", "aws_s3_bucket_lifecycle_configuration")
    assert lifecycle["bucket"] == bucket
    rules = {rule["id"]: rule for rule in lifecycle["rule"]}
    abort = rules[LIFECYCLE_RULE_ID]
    assert abort["status"] == "Enabled"
    (days,) = abort["abort_incomplete_multipart_upload"]
    assert days["days_after_initiation"] == ABORT_INCOMPLETE_UPLOAD_DAYS
    (prefix_filter,) = abort["filter"]
    assert prefix_filter["prefix"] == "${local.object_prefix}"


def test_terraform_table_is_the_table_tarhold_init_creates() -> None:
    table = tf_one("resource", "aws_dynamodb_table")
    assert table["billing_mode"] == BILLING_MODE
    keys = {k["KeyType"]: k["AttributeName"] for k in KEY_SCHEMA}
    assert (table["hash_key"], table.get("range_key")) == (keys["HASH"], keys.get("RANGE"))
    attributes = sorted((a["name"], a["type"]) for a in table["attribute"])
    assert attributes == sorted((a["AttributeName"], a["AttributeType"]) for a in ATTRIBUTE_DEFINITIONS)
    (ttl,) = table["ttl"]
    assert ttl == {"attribute_name": TTL_ATTRIBUTE, "enabled": True}


def policy_statements(document: Mapping[str, Any]) -> dict[str, set[str]]:
    return {s["Sid"]: set(as_list(s["Action"])) for s in document["Statement"] if s["Effect"] == "Allow"}


def test_terraform_iam_policy_grants_what_tarhold_init_prints() -> None:
    document = tf_blocks("data", "aws_iam_policy_document")["tarhold"]
    static = {s["sid"]: s for s in document["statement"]}
    assert all(s.get("effect", "Allow") == "Allow" for s in static.values())
    private = policy_statements(iam_policy("b", "tarhold/", "t", None, tarball_acl=False))
    assert {sid: set(s["actions"]) for sid, s in static.items()} == private
    # tarballACL: public-read adds s3:PutObjectAcl on the same objects, as iam_policy does.
    (acl,) = [d["statement"] for d in document["dynamic"] if "statement" in d]
    assert "var.public_read_acl" in acl["for_each"]
    (content,) = acl["content"]
    public = policy_statements(iam_policy("b", "tarhold/", "t", None, tarball_acl=True))
    files = "TarholdPackageFiles"
    assert set(static[files]["actions"]) | set(content["actions"]) == public[files]
    objects = ["${aws_s3_bucket.packages.arn}/${local.object_prefix}*"]
    assert content["resources"] == static[files]["resources"] == objects
    assert static["TarholdListPackages"]["resources"] == ["${aws_s3_bucket.packages.arn}"]
    (condition,) = static["TarholdListPackages"]["dynamic"][0]["condition"]["content"]
    assert (condition["test"], condition["variable"]) == ("StringLike", "s3:prefix")
    assert static["TarholdRegistryDatabase"]["resources"] == ["${aws_dynamodb_table.registry.arn}"]
    policy = tf_one("resource", "aws_iam_policy")
    assert policy["policy"] == "${data.aws_iam_policy_document.tarhold.json}"


def test_terraform_irsa_role_trusts_the_deployment_service_account() -> None:
    trust = tf_blocks("data", "aws_iam_policy_document")["irsa_trust"]
    (statement,) = trust["statement"]
    assert statement["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    (principal,) = statement["principals"]
    assert principal["type"] == "Federated"
    conditions = {c["variable"]: c["values"] for c in statement["condition"]}
    assert conditions["${var.eks_oidc_issuer}:sub"] == [
        "system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"
    ]
    assert conditions["${var.eks_oidc_issuer}:aud"] == ["sts.amazonaws.com"]
    account = deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    assert tf_variables()["kubernetes_service_account"]["default"] == account
    attachment = tf_one("resource", "aws_iam_role_policy_attachment")
    assert attachment["policy_arn"] == "${aws_iam_policy.tarhold.arn}"
