"""`tarhold check`: a good config passes; what a newcomer gets wrong fails, with the fix.

The real command runs against real things: a storage directory, S3 and
DynamoDB on the moto server, and a fake upstream registry in the test's
event loop (so the command runs in a thread while the loop answers it).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import unique
from tests.e2e.fixtures import TARHOLD
from tests.support.aws_servers import AwsEndpoint, provision_aws
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import free_port

STATUSES = {"ok", "warn", "fail"}


def write_config(tmp_path: Path, **config: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"listen": f"127.0.0.1:{free_port()}", **config}))
    return path


def check(config: Path) -> tuple[int, dict[str, list[str]], str]:
    """`tarhold check -c config`: exit code, each check's lines (status first, then its fix), the output."""
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    env.update({"TARHOLD_CONFIG": "", "TARHOLD_UPSTREAM_URL": ""})
    done = subprocess.run(
        [str(TARHOLD), "check", "-c", str(config)], capture_output=True, text=True, timeout=120, env=env,
    )
    found: dict[str, list[str]] = {}
    what = ""
    for line in done.stdout.splitlines():
        if line[:4].strip() in STATUSES:
            what = line[6:22].strip()
            found.setdefault(what, []).append(line)
        elif line.strip().startswith("fix:") and what:
            found[what].append(line.strip())
    return done.returncode, found, done.stdout + done.stderr


def status(found: dict[str, list[str]], what: str) -> str:
    return found[what][0][:4].strip()


async def test_a_good_config_passes_every_check(tmp_path: Path) -> None:
    async with FakeUpstream() as upstream:
        config = write_config(tmp_path, storage=str(tmp_path / "data"), uplinks={"up": {"url": upstream.url}})
        code, found, output = await asyncio.to_thread(check, config)
        assert upstream.requests, "the uplink was not asked"
    assert code == 0, output
    assert {what: status(found, what) for what in found} == {
        "config": "ok", "storage": "ok", "uplink up": "ok", "listen": "ok", "public URL": "ok",
    }, output


def test_an_unwritable_storage_directory_fails_with_the_fix(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes in any directory: a path below a file is what it cannot make
        (tmp_path / "a-file").write_text("")
        storage = tmp_path / "a-file" / "data"
    else:
        storage = tmp_path / "read-only"
        storage.mkdir(mode=0o500)
    code, found, output = check(write_config(tmp_path, storage=str(storage)))
    assert code == 1, output
    assert status(found, "storage") == "fail" and f"cannot write in {storage}" in found["storage"][0], output
    assert found["storage"][1].startswith(f"fix: make {storage} writable"), output


def test_an_unreachable_uplink_fails_with_the_fix(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    code, found, output = check(write_config(tmp_path, storage=str(tmp_path / "data"), uplinks={"up": {"url": dead}}))
    assert code == 1, output
    assert status(found, "uplink up") == "fail" and f"{dead} does not answer" in found["uplink up"][0], output
    assert found["uplink up"][1].startswith("fix: check uplinks.up.url"), output
    assert status(found, "storage") == "ok", output


def test_a_config_that_does_not_load_fails_naming_the_key(tmp_path: Path) -> None:
    code, found, output = check(write_config(tmp_path, uplinks={"up": {"url": "http://127.0.0.1:1", "maxage": "often"}}))
    assert code == 1, output
    assert status(found, "config") == "fail" and "uplinks.up.maxage" in found["config"][0], output


def test_s3_and_dynamodb_pass_when_provisioned_and_fail_with_init_when_missing(
    moto_server: AwsEndpoint, tmp_path: Path
) -> None:
    section = {**moto_server.s3_section(unique("tarhold-check"), "npm/"),
               **moto_server.dynamodb_section(unique("tarhold-check"))}
    missing = write_config(tmp_path, store={"aws-s3-storage": section})
    code, found, output = check(missing)
    assert code == 1, output
    assert status(found, "s3 bucket") == "fail" and "NoSuchBucket" in found["s3 bucket"][0], output
    fix = found["s3 bucket"][1]
    assert fix.startswith("fix: create the bucket and table: ") and fix.endswith(f"tarhold init -c {missing}"), output
    assert status(found, "dynamodb table") == "fail", output
    assert "ResourceNotFoundException" in found["dynamodb table"][0], output

    asyncio.run(provision_aws(section))
    code, found, output = check(missing)
    assert code == 0, output
    assert status(found, "s3 bucket") == "ok" and "s3:PutObject" in found["s3 bucket"][0], output
    assert status(found, "dynamodb table") == "ok" and "dynamodb:UpdateItem" in found["dynamodb table"][0], output
