"""The real npm CLI with two-factor auth and staged publishing against `tarhold serve`.

A maintainer turns on 2FA with `npm profile enable-2fa` on a terminal (the
test reads the secret npm prints and computes the codes, as an
authenticator app would), publishes with and without `--otp`, and CI-style
`npm stage publish` puts a version up for review without any code; the
version is invisible until `npm stage approve --otp` and never appears
after `npm stage reject`. Another user cannot approve.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyotp
import pytest

from tests.e2e.fixtures import (
    PASSWORD,
    NewNpm,
    Npm,
    TarholdServer,
    embedded_tarhold,
    unique_name,
    write_package,
)
from tests.e2e.terminal import run_on_tty

pytestmark = pytest.mark.npm

STAGED = re.compile(r"staged with id ([0-9a-f-]{36})")


@dataclass
class Authenticator:
    """Codes from the secret npm showed, each step once (the registry refuses a reused code),
    oldest usable step first; once those are spent, the recovery codes npm printed."""

    secret: str = ""
    recovery: list[str] = field(default_factory=list)
    used: int | None = None

    def code(self) -> str:
        now = int(time.time() // 30)
        for step in (now - 1, now, now + 1):
            if self.used is None or step > self.used:
                self.used = step
                return pyotp.TOTP(self.secret).at(step * 30)
        return self.recovery.pop()


async def enable_2fa(npm: Npm, app: Authenticator) -> str:
    """`npm profile enable-2fa auth-and-writes` on a terminal; its output."""

    def first_code(output: str) -> str:
        app.secret = re.findall(r"Or enter code:\s*([A-Z2-7]{16,})", output)[-1]
        return app.code()

    code, output = await run_on_tty(
        npm.argv("profile", "enable-2fa", "auth-and-writes"),
        [("npm password:", PASSWORD), ("OTP code from your authenticator", first_code)],
        env=npm.env, cwd=npm.home, timeout=90,
    )
    assert code == 0, output
    app.recovery = re.findall(r"\b[0-9a-f]{64}\b", output)
    return output


def stage_id(output: str) -> str:
    match = STAGED.search(output)
    assert match, output
    return match.group(1)


@pytest.fixture(scope="module")
def tarhold(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TarholdServer]:
    """One embedded `tarhold serve` (the two-instance test runs staging on S3 + DynamoDB)."""
    with embedded_tarhold(tmp_path_factory.mktemp("tarhold-2fa")) as server:
        yield server


async def test_2fa_and_staged_publishing_with_the_npm_cli(tarhold: TarholdServer, new_npm: NewNpm) -> None:
    maintainer = new_npm(tarhold, "maint")
    app = Authenticator()
    output = await enable_2fa(maintainer, app)
    assert "2FA successfully enabled" in output and len(app.recovery) == 8
    assert "auth-and-writes" in maintainer.ok("profile", "get", "--json").stdout

    name = unique_name("staged")
    package = write_package(maintainer.workdir("pkg-1"), name, "1.0.0")
    refused = maintainer.fails("publish", cwd=package)
    assert "one-time password" in refused.output
    maintainer.ok("publish", f"--otp={app.code()}", cwd=package)

    # CI stages 1.1.0 without a code; nobody installs it until a maintainer approves.
    staged_dir = write_package(maintainer.workdir("pkg-2"), name, "1.1.0")
    staged = stage_id(maintainer.ok("stage", "publish", cwd=staged_dir).output)
    assert "1.1.0" not in tarhold.packument(name)["versions"]
    listed = json.loads(maintainer.ok("stage", "list", name, "--json").stdout)
    assert [(item["id"], item["version"]) for item in listed] == [(staged, "1.1.0")]
    view = json.loads(maintainer.ok("stage", "view", staged, "--json").stdout)
    assert view["packageName"] == name and view["tag"] == "latest"
    downloads = maintainer.workdir("downloads")
    maintainer.ok("stage", "download", staged, cwd=downloads)
    assert [p.name for p in downloads.iterdir()] == [f"{name}-1.1.0-{staged}.tgz"]
    consumer = new_npm(tarhold, None)
    consumer.fails("install", "--no-package-lock", f"{name}@1.1.0", cwd=consumer.workdir("before"))

    outsider = new_npm(tarhold, "outsider")
    assert outsider.fails("stage", "approve", staged).returncode != 0
    assert "one-time password" in maintainer.fails("stage", "approve", staged).output
    maintainer.ok("stage", "approve", staged, f"--otp={app.code()}")
    assert tarhold.packument(name)["dist-tags"]["latest"] == "1.1.0"
    project = consumer.install(f"{name}@1.1.0")
    assert (project / "node_modules" / name / "package.json").is_file()

    # A rejected stage frees nothing but its number's reservation, and never shows up.
    rejected_dir = write_package(maintainer.workdir("pkg-3"), name, "1.2.0")
    rejected = stage_id(maintainer.ok("stage", "publish", cwd=rejected_dir).output)
    maintainer.ok("stage", "reject", rejected, f"--otp={app.code()}")
    assert "1.2.0" not in tarhold.packument(name)["versions"]
    assert json.loads(maintainer.ok("stage", "list", name, "--json").stdout) == []

