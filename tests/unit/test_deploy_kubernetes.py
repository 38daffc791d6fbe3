"""The Kubernetes manifests, parsed and compared with what the code expects:
the config loader, the port, the uid, and the IAM policy `tarhold init` prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry.config import DEFAULT_PORT, load_config, parse_config
from storage.dynamodb import DEFAULT_TABLE
from storage.options import ENV_NAME
from storage.provision import (
    iam_policy,
)
from tests.support.deploy_files import (
    KUBERNETES,
    configmap_config,
    container,
    deployment,
    env_configmap,
    manifests,
    one,
)


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
