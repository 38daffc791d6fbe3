"""Views of a packument: tarball URLs rewritten, the abbreviated install
document, manifests by version or tag, version ordering.
"""

from __future__ import annotations

import copy
from typing import Any

from registry.domain.packument import (
    max_version,
    preferred_latest,
)
from registry.domain.packument_views import (
    abbreviate,
    manifest_for,
    rewrite_tarball_urls,
)
from tests.unit.packuments import (
    T0,
    publish,
    three_versions,
)

# -- views ------------------------------------------------------------------


def test_tarball_urls_are_rewritten_onto_the_base_url() -> None:
    doc = publish(None, "@acme/ui", "1.0.0")
    doc["versions"]["1.0.0"]["dist"]["tarball"] = "https://upstream.example.com/@acme/ui/-/ui-1.0.0.tgz?x=1"
    doc["versions"]["1.1.0"] = {"name": "@acme/ui", "version": "1.1.0"}
    before = copy.deepcopy(doc)
    new = rewrite_tarball_urls(doc, "https://npm.example.com/prefix/")
    assert doc == before
    assert new["versions"]["1.0.0"]["dist"]["tarball"] == "https://npm.example.com/prefix/@acme/ui/-/ui-1.0.0.tgz"
    assert new["versions"]["1.1.0"]["dist"]["tarball"] == "https://npm.example.com/prefix/@acme/ui/-/ui-1.1.0.tgz"
    assert new["versions"]["1.0.0"]["dist"]["shasum"] == doc["versions"]["1.0.0"]["dist"]["shasum"]


def test_attestations_urls_point_at_this_registry_whatever_base_they_were_stored_on() -> None:
    doc = publish(None, "@acme/ui", "1.0.0")
    doc = publish(doc, "@acme/ui", "1.1.0")
    provenance = {"predicateType": "https://slsa.dev/provenance/v1"}
    upstream = "https://upstream.example.com/-/npm/v1/attestations/@acme%2fui@1.0.0"
    doc["versions"]["1.0.0"]["dist"]["attestations"] = {"url": upstream, "provenance": provenance}
    doc["versions"]["1.1.0"]["dist"]["attestations"] = "not an object"  # left as it is
    new = rewrite_tarball_urls(doc, "https://npm.example.com/prefix/")
    assert new["versions"]["1.0.0"]["dist"]["attestations"] == {
        "url": "https://npm.example.com/prefix/-/npm/v1/attestations/@acme%2fui@1.0.0", "provenance": provenance,
    }
    assert new["versions"]["1.1.0"]["dist"]["attestations"] == "not an object"
    assert doc["versions"]["1.0.0"]["dist"]["attestations"]["url"] == upstream


def test_the_abbreviated_document_keeps_install_fields_and_time_only() -> None:
    doc = publish(
        None, "left-pad", "1.0.0",
        dependencies={"a": "^1"}, scripts={"test": "x", "postinstall": "node build"},
        bin={"pad": "bin.js"}, engines={"node": ">=18"}, os=["linux"], funding="https://fund.example.com",
        main="index.js", author={"name": "A"},
    )
    slim = abbreviate(doc)
    assert set(slim) == {"name", "dist-tags", "modified", "versions", "time"}
    assert slim["modified"] == T0 and slim["time"] == doc["time"]
    version = slim["versions"]["1.0.0"]
    assert set(version) == {"name", "version", "dependencies", "bin", "engines", "os", "funding",
                            "dist", "hasInstallScript"}
    assert version["hasInstallScript"] is True
    assert "readme" not in slim and "scripts" not in version


def test_an_explicit_has_install_script_is_kept_and_none_is_invented() -> None:
    doc = publish(None, "left-pad", "1.0.0", scripts={"test": "x"})
    doc = publish(doc, "left-pad", "1.1.0", hasInstallScript=False, scripts={"install": "x"})
    slim = abbreviate(doc)
    assert "hasInstallScript" not in slim["versions"]["1.0.0"]
    assert slim["versions"]["1.1.0"]["hasInstallScript"] is False


def test_deprecated_and_dependency_fields_are_abbreviated() -> None:
    fields: dict[str, Any] = {
        "optionalDependencies": {"o": "1"}, "devDependencies": {"d": "1"}, "peerDependencies": {"p": "1"},
        "peerDependenciesMeta": {"p": {"optional": True}}, "bundleDependencies": ["b"],
        "bundledDependencies": ["b"], "directories": {}, "cpu": ["x64"], "libc": ["glibc"],
        "acceptDependencies": {"a": "2"}, "deprecated": "old",
    }
    version = abbreviate(publish(None, "left-pad", "1.0.0", **fields))["versions"]["1.0.0"]
    for key, value in fields.items():
        assert version[key] == value


def test_manifest_for_finds_a_version_or_a_tag() -> None:
    doc = three_versions()
    expected = {"1.0.0": "1.0.0", "beta": "2.0.0-beta.1", "latest": "1.1.0", "v1.0.0": "1.0.0"}
    for spec, version in expected.items():
        manifest = manifest_for(doc, spec)
        assert manifest is not None and manifest["version"] == version
    assert manifest_for(doc, "9.9.9") is None
    assert manifest_for(doc, "nope") is None


def test_max_version_orders_by_semver_and_ignores_invalid() -> None:
    assert max_version(["1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1", "garbage"]) == "2.0.0-rc.1"
    assert max_version(["1.0.0-alpha", "1.0.0"]) == "1.0.0"
    assert max_version(["x", "created"]) is None
    assert max_version([]) is None


def test_preferred_latest_prefers_releases() -> None:
    assert preferred_latest(["1.0.0", "2.0.0-rc.1"]) == "1.0.0"
    assert preferred_latest(["2.0.0-rc.1", "2.0.0-rc.2"]) == "2.0.0-rc.2"
