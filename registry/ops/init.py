"""`tarhold init`: create the S3 bucket and DynamoDB table a config names, the registry secret
and signing key in it, and print the IAM policy."""

from __future__ import annotations

import argparse
import asyncio
import json

from registry.config import Config
from registry.domain.rules import storage_folder
from registry.domain.secret import ensure_secret
from registry.domain.signing import current_key
from registry.http.logs import configure_logging
from registry.ops.settings import config_from_args
from storage.backends import build_backends
from storage.provision import provision


async def _init(config: Config) -> int:
    store, database = build_backends(
        config.store.backend,
        path=config.store.path,
        section=config.store.section,
        folder=storage_folder(config.packages),
    )
    await store.open()
    await database.open()
    try:
        done = await provision(store, database)
        # What the first start would make anyway; made here so `tarhold keys list` shows it now.
        key = await current_key(database, await ensure_secret(database))
    finally:
        await database.close()
        await store.close()
    print(f"registry signing key {key.keyid} (ECDSA P-256; `tarhold keys rotate` replaces it)")
    if done.policy is None:
        print(f"embedded storage ready in {config.store.path} (nothing else to create)")
        return 0
    for line in done.lines:
        print(line)
    print("minimal IAM policy for the instances that run `tarhold serve`:")
    print(json.dumps(done.policy, indent=2))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log)
    return asyncio.run(_init(config))
