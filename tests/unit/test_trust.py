"""Trusted publishing without HTTP: the config section, trust configurations, claim matching."""

from __future__ import annotations

from typing import Any

import pytest

from registry.config import load_config
from registry.domain.errors import BadRequest
from registry.domain.trust_config import parse_trusted_publishing
from registry.domain.trust_configs import matches, parse_config
from storage.base import ConfigError
from tests.support.fake_oidc import (
    circleci_claims,
    github_claims,
    gitlab_claims,
    kubernetes_claims,
)

SETTINGS = parse_trusted_publishing({"issuers": [
    {"type": "github", "issuer": "https://gh.example.com"},
    {"name": "gitlab-corp", "type": "gitlab", "issuer": "https://gitlab.example.com"},
    {"type": "circleci", "issuer": "https://circleci.example.com/org/1"},
    {"name": "k8s", "issuer": "https://k8s.example.com", "claims_map": {"namespace": "ns"}},
]})
GITHUB, GITLAB, CIRCLECI, K8S = SETTINGS.issuers


@pytest.mark.parametrize("raw, key", [
    ({"issuers": [{"type": "jenkins", "issuer": "https://ci.example.com"}]}, "issuers[0].type"),
    ({"issuers": [{"type": "github"}]}, "issuers[0].issuer"),
    ({"issuers": [{"type": "generic", "name": "github", "issuer": "https://a.example.com"}]}, "issuers[0].name"),
    ({"issuers": [{"issuer": "https://a.example.com"}, {"issuer": "https://a.example.com", "name": "b"}]}, "issuers"),
    ({"token_ttl": "2h"}, "token_ttl"),
    ({"issuers": [{"issuer": "ftp://a.example.com"}]}, "issuers[0].issuer"),
    ({"issuers": [{"issuer": "https://a.example.com", "audience": [3]}]}, "issuers[0].audience"),
    ({"surprise": 1}, "trusted_publishing"),
])
def test_bad_sections_name_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_trusted_publishing(raw)
    assert key in str(error.value)


def config(kind: str, claims: dict[str, Any], permissions: tuple[str, ...] = ("createPackage",)) -> Any:
    return parse_config({"type": kind, "claims": claims, "permissions": list(permissions)}, SETTINGS, user="alice")


def test_a_github_configuration_matches_its_repository_workflow_file_and_environment() -> None:
    trust = config("github", {"repository": "Acme/Widget", "workflow_ref": {"file": "publish.yml"}, "environment": "prod"})
    assert matches(trust, GITHUB, github_claims(environment="prod"))  # GitHub names ignore case
    assert not matches(trust, GITHUB, github_claims())  # no environment
    assert not matches(trust, GITHUB, github_claims(workflow="ci.yml", environment="prod"))
    assert not matches(trust, GITHUB, github_claims(repository="acme/widget-fork", environment="prod"))
    forged = github_claims(environment="prod", workflow_ref="other/repo/.github/workflows/publish.yml@refs/heads/main")
    assert not matches(trust, GITHUB, forged)  # the workflow must live in the trusted repository
    assert not matches(trust, GITLAB, github_claims(environment="prod"))  # another issuer
    exact = config("github", {"repository": "acme/widget", "workflow_ref": "acme/widget/.github/workflows/publish.yml@refs/tags/v1"})
    assert matches(exact, GITHUB, github_claims(ref="refs/tags/v1"))
    assert not matches(exact, GITHUB, github_claims())


def test_gitlab_circleci_and_generic_configurations() -> None:
    gitlab = config("gitlab", {"project_path": "acme/widget", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}})
    assert matches(gitlab, GITLAB, gitlab_claims())
    assert not matches(gitlab, GITLAB, gitlab_claims(config_file="other.yml"))
    assert config("gitlab-corp", {"project_path": "acme/widget"}).type == "gitlab-corp"
    ids = {"org_id": "o", "project_id": "p", "pipeline_definition_id": "d", "vcs_origin": "git.example.com/acme/w"}
    circle = config("circleci", {
        "oidc.circleci.com/org-id": "o", "oidc.circleci.com/project-id": "p",
        "oidc.circleci.com/pipeline-definition-id": "d", "oidc.circleci.com/vcs-origin": "git.example.com/acme/w",
        "oidc.circleci.com/context-ids": ["c1"],
    })
    assert matches(circle, CIRCLECI, circleci_claims(**ids, context_ids=("c0", "c1")))
    assert not matches(circle, CIRCLECI, circleci_claims(**ids, context_ids=("c0",)))
    k8s = config("k8s", {"sub": "system:serviceaccount:ci:publisher", "namespace": "ci"})
    assert matches(k8s, K8S, {**kubernetes_claims(), "ns": "ci"})  # claims_map: namespace is the token's ns
    assert not matches(k8s, K8S, {**kubernetes_claims(service_account="other"), "ns": "ci"})
    assert not matches(k8s, GITHUB, {**kubernetes_claims(), "ns": "ci"})


@pytest.mark.parametrize("raw", [
    {"type": "jenkins", "claims": {"sub": "x"}, "permissions": ["createPackage"]},
    {"type": "github", "claims": {"workflow_ref": {"file": "a.yml"}}, "permissions": ["createPackage"]},
    {"type": "github", "claims": {"repository": "a/b", "actor": "me"}, "permissions": ["createPackage"]},
    {"type": "github", "claims": {"repository": "a/b"}, "permissions": []},
    {"type": "github", "claims": {"repository": "a/b", "workflow_ref": {"file": "../x.yml"}}, "permissions": ["createPackage"]},
    {"type": "k8s", "claims": {}, "permissions": ["createPackage"]},
    {"type": "k8s", "claims": {"sub": "x" * 600}, "permissions": ["createPackage"]},
    {"type": "k8s", "claims": {"sub": "x"}, "permissions": ["createPackage"], "extra": 1},
])
def test_malformed_configurations_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        parse_config(raw, SETTINGS, user="alice")


def test_an_issuer_url_may_come_from_the_environment_as_the_examples_write_it() -> None:
    raw = {"trusted_publishing": {"issuers": [{"name": "gitlab-corp", "type": "gitlab", "issuer": "GITLAB_URL"}]}}
    config = load_config(overrides=raw, environ={"GITLAB_URL": "http://127.0.0.1:9/gitlab"})
    assert config.trusted_publishing.issuers[0].issuer == "http://127.0.0.1:9/gitlab"
    with pytest.raises(ConfigError, match="issuer"):  # the variable is not set: the name is not a URL
        load_config(overrides=raw, environ={})
