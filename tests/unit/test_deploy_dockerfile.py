"""The Dockerfile and .dockerignore, parsed and compared with what the code expects:
the packages the wheel holds, the uid, the entrypoint, the port and the health check.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import stat
import tomllib
from pathlib import Path

from registry.config import DEFAULT_PORT
from tests.support.deploy_files import (
    ENTRYPOINT,
    IMAGE_ENTRYPOINT,
    ROOT,
    copy_parts,
    deployment,
    dockerfile,
    dockerfile_healthcheck,
    global_args,
    stages,
)


def test_dockerfile_builds_a_wheel_then_installs_only_it() -> None:
    build, *_, runtime = stages()
    assert len(stages()) >= 2
    assert " AS " in build[0][1].upper()
    image = runtime[0][1].split()[0]
    image = re.sub(r"\$\{(\w+)\}", lambda m: global_args()[m.group(1)], image)
    assert image == "python:3.11-slim"
    assert any(word == "RUN" and "pip wheel" in rest for word, rest in build)
    installs = [rest for word, rest in runtime if word == "RUN" and "pip install" in rest]
    assert installs and all("--no-index" in rest for rest in installs)
    copied = {source for word, rest in runtime if word == "COPY" for source in copy_parts(rest)[1]}
    assert not copied & {"registry", "storage", "uplinks", "pyproject.toml", "."}


def test_dockerfile_build_stage_copies_every_package_the_wheel_holds() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # A package's folder brings its subpackages (registry/domain, ...) along.
    folders = {package.split(".")[0] for package in pyproject["tool"]["setuptools"]["packages"]}
    needed = {"pyproject.toml", pyproject["project"]["readme"], *folders}
    copied = {
        source.rstrip("/")
        for word, rest in stages()[0]
        if word == "COPY"
        for source in copy_parts(rest)[1]
    }
    assert needed <= copied


def test_dockerfile_runs_as_a_fixed_non_root_uid() -> None:
    runtime = stages()[-1]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric uid so runAsNonRoot can verify it"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    useradd = " ".join(rest for word, rest in runtime if word == "RUN" and "useradd" in rest)
    assert f"--uid {uid}" in useradd
    assert deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_dockerfile_entrypoint_is_the_script_it_copies() -> None:
    runtime = stages()[-1]
    (entrypoint,) = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == [IMAGE_ENTRYPOINT]
    copies = [copy_parts(rest) for word, rest in runtime if word == "COPY"]
    flags, sources, target = next(c for c in copies if c[2] == IMAGE_ENTRYPOINT)
    assert sources == [str(ENTRYPOINT.relative_to(ROOT))]
    assert "from" not in flags
    assert int(flags["chmod"], 8) & stat.S_IXOTH, "the entrypoint must be executable by the tarhold user"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert not [rest for word, rest in runtime if word == "CMD"], "a CMD would be passed to the entrypoint"


def test_dockerfile_exposes_the_default_port_and_checks_ping() -> None:
    runtime = stages()[-1]
    assert ("EXPOSE", str(DEFAULT_PORT)) in runtime
    assert "/-/ping" in " ".join(dockerfile_healthcheck())


def dockerignore() -> list[tuple[bool, str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, os.path.normpath(line.lstrip("!"))))
    return patterns


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern decides; a matched directory covers its contents."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in dockerignore():
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            result = not negated
    return result


def test_dockerignore_keeps_what_the_dockerfile_copies_and_drops_the_rest() -> None:
    for word, rest in dockerfile():
        if word != "COPY":
            continue
        flags, sources, _ = copy_parts(rest)
        if "from" in flags:
            continue
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: not in the repository"
            files = [path] if path.is_file() else [
                p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            ]
            for file in files:
                relative = str(file.relative_to(ROOT))
                assert not ignored(relative), f"{relative} is copied but .dockerignore drops it"
    dropped = (".venv/bin/x", "tests/test_deploy.py", ".git/HEAD", "data/x", "registry/__pycache__/x.pyc")
    for path_name in dropped:
        assert ignored(path_name), f"{path_name} would be sent to the docker build"
