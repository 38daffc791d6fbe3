"""`tarhold init`: create the S3 bucket and DynamoDB table a config names, print the IAM policy."""

from __future__ import annotations

import argparse
import asyncio
import json

from registry.config import Config
from registry.domain.rules import storage_folder
from registry.http.logs import configure_logging
from registry.ops.settings import config_from_args
from storage.backends import build_backends
from storage.dynamodb import DynamoRegistryDatabase
from storage.provision import ensure_bucket, ensure_table, iam_policy
from storage.s3 import S3PackageStore


async def _init(config: Config) -> int:
    store, database = build_backends(
        config.store.backend,
        path=config.store.path,
        section=config.store.section,
        folder=storage_folder(config.packages),
    )
    if config.store.backend == "fs":
        await store.open()
        await database.open()
        await database.close()
        print(f"embedded storage ready in {config.store.path} (nothing else to create)")
        return 0
    assert isinstance(store, S3PackageStore) and isinstance(database, DynamoRegistryDatabase)
    await store.open()
    await database.open()
    try:
        created = await ensure_bucket(store)
        print(f"bucket {store.bucket}: {'created' if created else 'already there'}")
        created = await ensure_table(database)
        print(f"table {database.table}: {'created' if created else 'already there'}")
    finally:
        await database.close()
        await store.close()
    policy = iam_policy(
        bucket=store.bucket,
        key_prefix=store.key_prefix,
        table_name=database.table,
        region=database.region,
        tarball_acl=bool(store.tarball_acl),
    )
    print("minimal IAM policy for the instances that run `tarhold serve`:")
    print(json.dumps(policy, indent=2))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log)
    return asyncio.run(_init(config))
