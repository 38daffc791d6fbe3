"""Create what the S3 + DynamoDB backends need (`tarhold init`).

Both functions are idempotent: run them against existing resources and they
leave them as they are. `iam_policy` prints the least privilege the running
registry needs, so the instances do not run with the rights `init` used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .aws import client_error_code, client_error_status, translate
from .base import PackageStore, RegistryDatabase, StorageError
from .dynamodb import DynamoRegistryDatabase
from .s3 import S3PackageStore

LOG = logging.getLogger(__name__)

TABLE_ACTIVE_TIMEOUT = 60.0
# The table and bucket `init` creates; deploy/terraform declares the same
# (tests/unit/test_deploy_terraform.py compares the two).
TTL_ATTRIBUTE = "expires"
KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]
BILLING_MODE = "PAY_PER_REQUEST"
LIFECYCLE_RULE_ID = "tarhold-abort-incomplete-uploads"
ABORT_INCOMPLETE_UPLOAD_DAYS = 1


async def ensure_bucket(store: S3PackageStore) -> bool:
    """Create the store's bucket unless it exists; True when this call created it."""
    client, bucket = store.client, store.bucket
    with translate(f"s3 HeadBucket {bucket}"):
        try:
            await client.head_bucket(Bucket=bucket)
            return False
        except Exception as exc:
            if client_error_status(exc) == 403:
                raise StorageError(
                    f"s3 bucket {bucket} exists but these credentials may not use it"
                ) from None
            if client_error_status(exc) != 404:
                raise
    region = client.meta.region_name
    args: dict[str, Any] = {"Bucket": bucket}
    if region and region not in ("us-east-1", "aws-global"):
        args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with translate(f"s3 CreateBucket {bucket}"):
        try:
            await client.create_bucket(**args)
        except Exception as exc:
            code = client_error_code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return False
            if code == "BucketAlreadyExists":
                raise StorageError(f"s3 bucket name {bucket} is taken by another account") from None
            raise
    LOG.info("created s3 bucket %s", bucket)
    await _expire_abandoned_uploads(store)
    return True


async def _expire_abandoned_uploads(store: S3PackageStore) -> None:
    """On a bucket we just created, drop the parts of uploads a crash left behind.

    Only then: putting a lifecycle configuration replaces any existing one.
    """
    prefix = f"{store.key_prefix}/" if store.key_prefix else ""
    rule = {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_INCOMPLETE_UPLOAD_DAYS},
    }
    try:
        await store.client.put_bucket_lifecycle_configuration(
            Bucket=store.bucket, LifecycleConfiguration={"Rules": [rule]}
        )
    except Exception as exc:  # noqa: BLE001 - optional; some S3-compatible stores lack it
        LOG.debug("no lifecycle rule on %s: %s", store.bucket, exc)


async def ensure_table(db: DynamoRegistryDatabase) -> bool:
    """Create the table unless it exists, wait until ACTIVE, enable TTL; True when created."""
    client, table = db.client, db.table
    created = False
    with translate(f"dynamodb DescribeTable {table}"):
        try:
            description = (await client.describe_table(TableName=table))["Table"]
        except Exception as exc:
            if client_error_code(exc) != "ResourceNotFoundException":
                raise
            description = None
    if description is None:
        with translate(f"dynamodb CreateTable {table}"):
            try:
                await client.create_table(
                    TableName=table,
                    KeySchema=KEY_SCHEMA,
                    AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
                    BillingMode=BILLING_MODE,
                )
                created = True
                LOG.info("created dynamodb table %s", table)
            except Exception as exc:
                # Another `init` won the race; wait for its table like ours.
                if client_error_code(exc) != "ResourceInUseException":
                    raise
    else:
        schema = sorted((k["AttributeName"], k["KeyType"]) for k in description["KeySchema"])
        if schema != sorted((k["AttributeName"], k["KeyType"]) for k in KEY_SCHEMA):
            raise StorageError(f"dynamodb table {table} exists with another key schema: {schema}")
    await _wait_active(db)
    await _enable_ttl(db)
    return created


async def _wait_active(db: DynamoRegistryDatabase, timeout: float = TABLE_ACTIVE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with translate(f"dynamodb DescribeTable {db.table}"):
            status = (await db.client.describe_table(TableName=db.table))["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() >= deadline:
            raise StorageError(f"dynamodb table {db.table} is still {status} after {timeout:.0f}s")
        await asyncio.sleep(1)


async def _enable_ttl(db: DynamoRegistryDatabase) -> None:
    """Let DynamoDB delete expired items; reads ignore them anyway, so best effort."""
    try:
        described = await db.client.describe_time_to_live(TableName=db.table)
        status = described.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
        if status in ("ENABLED", "ENABLING"):
            return
        await db.client.update_time_to_live(
            TableName=db.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        LOG.info("enabled TTL on %s.%s", db.table, TTL_ATTRIBUTE)
    except Exception as exc:  # noqa: BLE001 - DynamoDB Local and others may not support it
        LOG.debug("could not enable TTL on %s: %s", db.table, exc)


def iam_policy(
    bucket: str,
    key_prefix: str,
    table_name: str,
    region: str | None,
    *,
    tarball_acl: bool = False,
) -> dict[str, Any]:
    """The minimal IAM policy for `tarhold serve` on this bucket, prefix and table."""
    prefix = key_prefix.strip("/")
    object_prefix = f"{prefix}/" if prefix else ""
    object_actions = [
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
    ]
    if tarball_acl:
        object_actions.append("s3:PutObjectAcl")
    list_bucket: dict[str, Any] = {
        "Sid": "TarholdListPackages",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    if prefix:
        list_bucket["Condition"] = {"StringLike": {"s3:prefix": [f"{object_prefix}*"]}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TarholdPackageFiles",
                "Effect": "Allow",
                "Action": object_actions,
                "Resource": f"arn:aws:s3:::{bucket}/{object_prefix}*",
            },
            list_bucket,
            {
                # Each start aborts its prefix's abandoned multipart uploads (s3_upkeep);
                # s3:prefix does not narrow this listing, so it is a statement of its own.
                "Sid": "TarholdAbandonedUploads",
                "Effect": "Allow",
                "Action": ["s3:ListBucketMultipartUploads"],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Sid": "TarholdRegistryDatabase",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                    "dynamodb:DescribeTable",
                ],
                "Resource": f"arn:aws:dynamodb:{region or '*'}:*:table/{table_name}",
            },
        ],
    }


@dataclass
class Provisioned:
    """What `provision` did, in lines a person reads, and the policy the instances need."""

    lines: list[str] = field(default_factory=list)
    policy: dict[str, Any] | None = None


async def provision(store: PackageStore, database: RegistryDatabase) -> Provisioned:
    """Create what the opened backends need; idempotent.

    The embedded default needs nothing beyond opening; S3 + DynamoDB get
    their bucket and table, and the least-privilege policy is returned.
    """
    report = Provisioned()
    if not isinstance(store, S3PackageStore) or not isinstance(database, DynamoRegistryDatabase):
        return report
    created = await ensure_bucket(store)
    report.lines.append(f"bucket {store.bucket}: {'created' if created else 'already there'}")
    created = await ensure_table(database)
    report.lines.append(f"table {database.table}: {'created' if created else 'already there'}")
    report.policy = iam_policy(
        bucket=store.bucket,
        key_prefix=store.key_prefix,
        table_name=database.table,
        region=database.region,
        tarball_acl=bool(store.tarball_acl),
    )
    return report


__all__ = ["Provisioned", "ensure_bucket", "ensure_table", "iam_policy", "provision"]
