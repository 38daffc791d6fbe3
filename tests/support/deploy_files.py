"""The deployment files and how the tests read them: paths, and the Dockerfile parsed.

`dockerfile()` gives the Dockerfile as (INSTRUCTION, arguments) pairs;
`stages()`, `global_args()`, `copy_parts()` and `dockerfile_healthcheck()`
read what the image build and the running container depend on;
`manifests()`, `deployment()`, `container()`, `env_configmap()` and
`configmap_config()` read the Kubernetes manifests. Shared by
the entrypoint tests (tests/e2e) and the Dockerfile, Kubernetes and
Terraform checks (tests/unit).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
KUBERNETES = ROOT / "deploy" / "kubernetes"
TERRAFORM = ROOT / "deploy" / "terraform"
IMAGE_ENTRYPOINT = "/usr/local/bin/tarhold-entrypoint"
DATA_DIR = "/var/lib/tarhold"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
    return args


def copy_parts(rest: str) -> tuple[dict[str, str], list[str], str]:
    """A COPY's --flags, sources and destination."""
    words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return flags, words[:-1], words[-1]


def dockerfile_healthcheck() -> list[str]:
    (rest,) = [rest for word, rest in stages()[-1] if word == "HEALTHCHECK"]
    command = rest[rest.index("CMD ") + 4:]
    argv = json.loads(command)
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found[(document["kind"], document["metadata"]["name"])] = document
    return found


def one(kind: str) -> dict[str, Any]:
    (document,) = [doc for (k, _), doc in manifests().items() if k == kind]
    return document


def deployment() -> dict[str, Any]:
    return one("Deployment")


def container() -> dict[str, Any]:
    (main,) = deployment()["spec"]["template"]["spec"]["containers"]
    return main


def env_configmap() -> dict[str, str]:
    """The ConfigMap the Deployment takes its environment from."""
    (ref,) = [e["configMapRef"]["name"] for e in container()["envFrom"] if "configMapRef" in e]
    return dict(manifests()[("ConfigMap", ref)]["data"])


def configmap_config() -> tuple[str, dict[str, Any]]:
    env = {e["name"]: e.get("value") for e in container()["env"]}
    text = next(
        doc["data"][Path(env["TARHOLD_CONFIG"]).name]
        for (kind, _), doc in manifests().items()
        if kind == "ConfigMap" and Path(env["TARHOLD_CONFIG"]).name in doc.get("data", {})
    )
    return text, yaml.safe_load(text)
