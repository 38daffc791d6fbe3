"""The deployment files: image entrypoint, Dockerfile, Kubernetes manifests, Terraform.

No Docker engine or cluster runs here, so each file is checked where it can
be: the entrypoint script runs against a fake `tarhold` that prints what it
was given (and once against the real one); the Dockerfile, the manifests and
the Terraform are parsed and compared with what the code expects — the
config loader, the port, the uid, and the table, bucket rule and IAM policy
that `tarhold init` (storage/provision.py) creates and prints.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from registry.config import DEFAULT_PORT, load_config, parse_config
from registry.ops.cli import build_parser
from storage.dynamodb import DEFAULT_TABLE
from storage.options import ENV_NAME
from storage.provision import (
    ABORT_INCOMPLETE_UPLOAD_DAYS,
    ATTRIBUTE_DEFINITIONS,
    BILLING_MODE,
    KEY_SCHEMA,
    LIFECYCLE_RULE_ID,
    TTL_ATTRIBUTE,
    iam_policy,
)
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
KUBERNETES = ROOT / "deploy" / "kubernetes"
TERRAFORM = ROOT / "deploy" / "terraform"
IMAGE_ENTRYPOINT = "/usr/local/bin/tarhold-entrypoint"
DATA_DIR = "/var/lib/tarhold"

# --------------------------------------------------------------------------
# The entrypoint script, with a fake tarhold on PATH
# --------------------------------------------------------------------------

FAKE_TARHOLD = """#!/bin/sh
printf 'pid=%s\\n' "$$"
printf 'config=%s\\n' "${TARHOLD_CONFIG-<unset>}"
for arg in "$@"; do printf 'arg=%s\\n' "$arg"; done
"""


class Ran:
    """What the fake tarhold printed: its argv, TARHOLD_CONFIG, and whether it replaced the shell."""

    def __init__(self, stdout: str, entrypoint_pid: int) -> None:
        lines = stdout.splitlines()
        values = [line.partition("=") for line in lines]
        self.argv = [value for key, _, value in values if key == "arg"]
        self.config = next(value for key, _, value in values if key == "config")
        self.exec_replaced_shell = int(next(v for k, _, v in values if k == "pid")) == entrypoint_pid

    def options(self) -> Any:
        """The argv as `tarhold` itself would parse it."""
        return build_parser().parse_args(self.argv)


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Any]:
    """Run the entrypoint as the image would, with `tarhold` faked and the default config path in tmp."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tarhold"
    fake.write_text(FAKE_TARHOLD)
    fake.chmod(0o755)
    default_config = tmp_path / "etc" / "config.yaml"

    def run(*args: str, **env: str) -> Ran:
        environment = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "TARHOLD_CONFIG_DEFAULT": str(default_config),
            **env,
        }
        process = subprocess.Popen(
            ["/bin/sh", str(ENTRYPOINT), *args], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        return Ran(stdout, process.pid)

    run.default_config = default_config  # type: ignore[attr-defined]
    yield run


def write_default_config(image: Any) -> Path:
    path: Path = image.default_config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("listen: 0.0.0.0:4873\n")
    return path


def test_no_arguments_and_no_config_serve_the_embedded_default_on_all_interfaces(image: Any) -> None:
    ran = image()
    assert ran.argv[0] == "serve"
    options = ran.options()
    assert (options.config, options.listen, options.storage) == (None, f"0.0.0.0:{DEFAULT_PORT}", DATA_DIR)
    assert ran.config == "<unset>"
    assert ran.exec_replaced_shell


def test_options_alone_are_options_of_serve(image: Any) -> None:
    ran = image("--workers", "2")
    assert ran.argv[0] == "serve"
    assert ran.argv[-2:] == ["--workers", "2"]
    assert "--listen" in ran.argv and "--storage" in ran.argv


def test_listen_and_storage_come_from_the_environment_without_a_config(image: Any) -> None:
    options = image(TARHOLD_LISTEN="127.0.0.1:9000", TARHOLD_STORAGE="/data").options()
    assert (options.config, options.listen, options.storage) == (None, "127.0.0.1:9000", "/data")


def test_command_line_options_win_over_the_entrypoint_defaults(image: Any) -> None:
    options = image("--listen", "10.0.0.1:80", "--storage", "/elsewhere").options()
    assert (options.listen, options.storage) == ("10.0.0.1:80", "/elsewhere")


def test_config_at_the_default_path_is_used_and_exported(image: Any) -> None:
    path = write_default_config(image)
    ran = image()
    options = ran.options()
    assert (options.config, options.listen, options.storage) == (str(path), None, None)
    assert ran.config == str(path)


def test_tarhold_config_wins_over_the_default_path(image: Any) -> None:
    write_default_config(image)
    ran = image("serve", TARHOLD_CONFIG="/run/secrets/tarhold.yaml")
    options = ran.options()
    assert (options.config, options.listen, options.storage) == ("/run/secrets/tarhold.yaml", None, None)
    assert ran.config == "/run/secrets/tarhold.yaml"


def test_tarhold_listen_overrides_the_listen_of_a_config(image: Any) -> None:
    path = write_default_config(image)
    options = image(TARHOLD_LISTEN="0.0.0.0:8080").options()
    assert (options.config, options.listen, options.storage) == (str(path), "0.0.0.0:8080", None)


def test_explicit_serve_gets_the_same_config_logic(image: Any) -> None:
    options = image("serve", "--listen", "127.0.0.1:1234").options()
    assert (options.listen, options.storage) == ("127.0.0.1:1234", DATA_DIR)


def test_other_tarhold_commands_use_the_serve_storage_without_a_config(image: Any) -> None:
    ran = image("user", "add", "alice", "--admin")
    assert ran.argv == ["user", "add", "alice", "--admin", "--storage", DATA_DIR]
    assert ran.options().storage == DATA_DIR
    assert ran.exec_replaced_shell
    assert image("init", "-c", "/x.yaml").argv == ["init", "-c", "/x.yaml"]
    assert image("token", "list", "--storage=/d").argv == ["token", "list", "--storage=/d"]


def test_other_tarhold_commands_read_the_config_at_the_default_path(image: Any) -> None:
    path = write_default_config(image)
    ran = image("init")
    assert ran.argv == ["init"]
    assert ran.config == str(path)


def test_anything_else_runs_as_given(image: Any) -> None:
    path = write_default_config(image)
    ran = image("tarhold", "init")
    assert ran.argv == ["init"] and ran.config == str(path) and ran.exec_replaced_shell
    shell = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), "sh", "-c", 'echo "shell $TARHOLD_CONFIG"'],
        env={"PATH": "/usr/bin:/bin", "TARHOLD_CONFIG_DEFAULT": str(path)},
        capture_output=True, text=True, timeout=30,
    )
    assert shell.returncode == 0 and shell.stdout == f"shell {path}\n"


def ping(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ping", timeout=2) as response:
            return int(response.status)
    except OSError:
        return None


def test_entrypoint_serves_the_real_tarhold_and_passes_sigterm(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "TARHOLD_CONFIG": "",
        "TARHOLD_CONFIG_DEFAULT": str(tmp_path / "absent.yaml"),
        "TARHOLD_LISTEN": f"127.0.0.1:{port}",
        "TARHOLD_STORAGE": str(data),
    }
    env.pop("TARHOLD_ADMIN_PASSWORD", None)
    server = subprocess.Popen(
        ["/bin/sh", str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None and ping(port) != 200:
            time.sleep(0.2)
        assert ping(port) == 200, server.stdout.read() if server.poll() is not None else "no answer"
        assert any(data.iterdir()), "the embedded default did not use TARHOLD_STORAGE"
        # The image's HEALTHCHECK command, run as Docker would.
        check = subprocess.run(dockerfile_healthcheck(), env=env, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
    finally:
        server.send_signal(signal.SIGTERM)  # to the entrypoint's pid: tarhold, after exec
        try:
            code = server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise
    assert code == 0
    assert ping(port) is None


def test_healthcheck_fails_when_nothing_answers() -> None:
    env = {**os.environ, "TARHOLD_LISTEN": f"127.0.0.1:{free_port()}"}
    check = subprocess.run(dockerfile_healthcheck(), env=env, capture_output=True, text=True, timeout=30)
    assert check.returncode != 0


# --------------------------------------------------------------------------
# The Dockerfile and .dockerignore
# --------------------------------------------------------------------------


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
    needed = {"pyproject.toml", pyproject["project"]["readme"], *pyproject["tool"]["setuptools"]["packages"]}
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


def test_entrypoint_is_valid_posix_sh() -> None:
    dash = Path("/bin/dash") if Path("/bin/dash").exists() else Path("/bin/sh")
    result = subprocess.run([str(dash), "-n", str(ENTRYPOINT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


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


# --------------------------------------------------------------------------
# Kubernetes manifests
# --------------------------------------------------------------------------


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


def test_kustomization_lists_every_manifest_and_sets_no_namespace() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert "namespace" not in kustomization
    for (kind, name), document in manifests().items():
        assert "namespace" not in document["metadata"], f"{kind} {name} pins a namespace"


def test_deployment_runs_several_non_root_replicas_with_probes_and_resources() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    main = container()
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert DEFAULT_PORT in ports.values()
    for probe in ("readinessProbe", "livenessProbe"):
        get = main[probe]["httpGet"]
        assert get["path"] == "/-/ping"
        assert get["port"] in ports or get["port"] in ports.values()
    resources = main["resources"]
    for key in ("cpu", "memory"):
        assert key in resources["requests"] and key in resources["limits"]


def test_deployment_config_comes_from_the_configmap_and_secrets_from_a_secret() -> None:
    main = container()
    env = {e["name"]: e.get("value") for e in main["env"]}
    config_path = Path(env["TARHOLD_CONFIG"])
    (mount,) = [m for m in main["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    assert mount.get("readOnly") is True
    volumes = {v["name"]: v for v in deployment()["spec"]["template"]["spec"]["volumes"]}
    configmap = manifests()[("ConfigMap", volumes[mount["name"]]["configMap"]["name"])]
    assert config_path.name in configmap["data"]
    secrets = [e["secretRef"] for e in main["envFrom"] if "secretRef" in e]
    assert secrets and all(s.get("optional") is True for s in secrets)
    assert env_configmap()


def test_service_account_carries_the_irsa_role_annotation() -> None:
    name = deployment()["spec"]["template"]["spec"]["serviceAccountName"]
    account = manifests()[("ServiceAccount", name)]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role)


def test_service_targets_the_container_port() -> None:
    service = one("Service")
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert target in ports or target in ports.values()


def test_autoscaler_targets_the_deployment() -> None:
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment()["apiVersion"], "Deployment", deployment()["metadata"]["name"]
    )
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["minReplicas"] <= deployment()["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    assert any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"] if m["type"] == "Resource")


def configmap_config() -> tuple[str, dict[str, Any]]:
    env = {e["name"]: e.get("value") for e in container()["env"]}
    text = next(
        doc["data"][Path(env["TARHOLD_CONFIG"]).name]
        for (kind, _), doc in manifests().items()
        if kind == "ConfigMap" and Path(env["TARHOLD_CONFIG"]).name in doc.get("data", {})
    )
    return text, yaml.safe_load(text)


def env_references(value: Any) -> Iterator[str]:
    """Config values that name an environment variable (upper case, as the manifests write them)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from env_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from env_references(item)
    elif isinstance(value, str) and ENV_NAME.fullmatch(value) and value.isupper() and "_" in value:
        yield value


def test_configmap_config_loads_with_the_environment_the_deployment_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, raw = configmap_config()
    env = env_configmap()
    missing = set(env_references(raw)) - set(env)
    assert not missing, f"the config refers to variables the Deployment does not set: {missing}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.host == "0.0.0.0"
    assert config.port in {p["containerPort"] for p in container()["ports"]}
    assert config.store.backend == "aws-s3-storage"
    section = config.store.section
    assert section["bucket"] == env["TARHOLD_S3_BUCKET"]
    assert not {"accessKeyId", "secretAccessKey", "sessionToken"} & set(section), "IRSA, not keys"
    assert [u.url for u in config.uplinks.values()] == [env["TARHOLD_UPSTREAM_URL"].rstrip("/")]
    assert config.public_url == env["TARHOLD_PUBLIC_URL"].rstrip("/")


def test_kubernetes_iam_policy_is_what_tarhold_init_prints_for_that_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, raw = configmap_config()
    for name, value in env_configmap().items():
        monkeypatch.setenv(name, value)
    section = parse_config(raw).store.section
    expected = iam_policy(
        bucket=section["bucket"],
        key_prefix=section.get("keyPrefix", ""),
        table_name=section.get("dynamoTableName", DEFAULT_TABLE),
        region=section.get("dynamoRegion") or section.get("region"),
        tarball_acl=bool(section.get("tarballACL")),
    )
    assert json.loads((KUBERNETES / "iam-policy.json").read_text()) == expected


# --------------------------------------------------------------------------
# Terraform
# --------------------------------------------------------------------------


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
