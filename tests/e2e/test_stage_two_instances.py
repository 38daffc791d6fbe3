"""A version staged on one `tarhold serve` is held, listed and approved on another.

Two instances on one S3 + DynamoDB storage (moto), the multi-instance
deployment, driven by the real npm CLI. A maintainer with two-factor auth
on (turned on over HTTP, as `npm profile enable-2fa` does) runs `npm stage
publish` of a new package against instance A. Against instance B: `npm
stage list` shows the stage; a plain `npm publish` of the same version, even
with a valid one-time password, is refused with 409 naming the stage (the
reservation lives in the shared database, not in A's memory); `npm stage
approve --otp` publishes it. A's packument then lists the version within
its packument cache's lifetime, and both instances serve the staged bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

import pytest

from registry.domain.caches import CacheConfig
from tests.e2e.fixtures import (
    NewNpm,
    TarholdServer,
    TarholdStorage,
    http_bytes,
    unique_name,
    write_package,
)
from tests.e2e.test_npm_two_factor import stage_id
from tests.e2e.test_stage_clients import enable_2fa_over_http, packument_status

pytestmark = pytest.mark.npm

POLL_INTERVAL = 0.1
VISIBLE_WITHIN = CacheConfig().packument_ttl + 1.0  # A may hold its 404 that long


@pytest.mark.parametrize("tarhold_storage", ["aws"], indirect=True)
def test_a_stage_made_on_one_instance_holds_its_version_and_is_approved_on_the_other(
    tarhold_storage: TarholdStorage,
    start_tarhold_on: Callable[[TarholdStorage], TarholdServer],
    new_npm: NewNpm,
) -> None:
    a, b = start_tarhold_on(tarhold_storage), start_tarhold_on(tarhold_storage)
    on_a = new_npm(a, "maint")
    assert on_a.token is not None
    app = enable_2fa_over_http(a, on_a.token)
    on_b = new_npm(b, None, token=on_a.token)  # one database: the token works on both

    def logs() -> str:
        return "".join(f"\n--- server {i}\n{s.log()[-4000:]}" for i, s in (("A", a), ("B", b)))

    name = unique_name("two-staged")
    package = write_package(on_a.workdir("package"), name, "1.0.0")
    staged = stage_id(on_a.ok("stage", "publish", cwd=package).output)
    assert packument_status(a, name)[0] == 404  # A looked: it may keep that 404 a moment

    listed = json.loads(on_b.ok("stage", "list", name, "--json").stdout)
    assert [(item["id"], item["packageName"], item["version"]) for item in listed] == [
        (staged, name, "1.0.0")
    ], f"{listed}{logs()}"

    refused = on_b.fails("publish", f"--otp={app.code()}", cwd=package)
    # npm prints the stage id the message names as "***": it redacts anything shaped like a UUID.
    assert "409 Conflict" in refused.output and f"version 1.0.0 of {name} is staged" in refused.output, (
        f"{refused.explain()}{logs()}"
    )
    assert packument_status(b, name)[0] == 404

    approved = time.monotonic()
    on_b.ok("stage", "approve", staged, f"--otp={app.code()}")
    status, doc = packument_status(b, name)
    assert status == 200 and doc["dist-tags"]["latest"] == "1.0.0", f"{status} {doc}{logs()}"
    shasum = listed[0]["shasum"]  # what was staged is what is published
    assert doc["versions"]["1.0.0"]["dist"]["shasum"] == shasum, doc

    while "1.0.0" not in (doc_on_a := packument_status(a, name)[1]).get("versions", {}):
        if time.monotonic() - approved > VISIBLE_WITHIN:
            pytest.fail(f"A's packument still lacks {name}@1.0.0 {VISIBLE_WITHIN:.0f}s after the approval{logs()}")
        time.sleep(POLL_INTERVAL)
    took = time.monotonic() - approved
    assert doc_on_a["dist-tags"]["latest"] == "1.0.0" and doc_on_a["versions"]["1.0.0"]["dist"]["shasum"] == shasum
    for server in (a, b):
        status, tarball = http_bytes(f"{server.url}{name}/-/{name}-1.0.0.tgz")
        assert status == 200 and hashlib.sha1(tarball).hexdigest() == shasum, server.url
    assert json.loads(on_a.ok("stage", "list", name, "--json").stdout) == []
    print(f"\n[stage, {tarhold_storage.backend}] approved on B, in A's packument {took:.2f}s after the approve began")
