"""A publish changes the packument: a new package, a new version, and every
publish body or tarball the registry refuses.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest

from registry.domain.packument import (
    AttachmentInfo,
    apply_publish,
    new_packument,
)
from registry.domain.packument_changes import (
    apply_update,
    unpublish_all,
)
from tests.unit.packuments import (
    BASE,
    T0,
    T1,
    T2,
    as_served,
    attachment_for,
    publish,
    publish_body,
    refused,
    tarball_url,
)

# -- new_packument ----------------------------------------------------------


def test_a_new_packument_has_the_couchdb_shape() -> None:
    doc = new_packument("@acme/ui", now=T0)
    assert doc == {
        "_id": "@acme/ui", "name": "@acme/ui", "dist-tags": {}, "versions": {},
        "time": {"created": T0, "modified": T0}, "maintainers": [], "users": {}, "readme": "",
    }


def test_a_new_packument_without_a_time_is_stamped_now() -> None:
    created = new_packument("x")["time"]["created"]
    assert created.endswith("Z") and len(created) == len(T0)


# -- apply_publish ----------------------------------------------------------


def test_the_first_publish_creates_the_package() -> None:
    doc = publish(None, "left-pad", "1.0.0")
    manifest = doc["versions"]["1.0.0"]
    assert doc["_id"] == doc["name"] == "left-pad"
    assert doc["dist-tags"] == {"latest": "1.0.0"}
    assert doc["time"] == {"created": T0, "modified": T0, "1.0.0": T0}
    assert doc["maintainers"] == [{"name": "alice", "email": "alice@example.com"}]
    assert doc["readme"] == "# left-pad 1.0.0"
    assert doc["description"] == "left-pad at 1.0.0"
    assert "_attachments" not in doc and "access" not in doc
    assert manifest["_id"] == "left-pad@1.0.0"
    assert manifest["_npmUser"] == {"name": "alice", "email": "alice@example.com"}
    assert manifest["maintainers"] == doc["maintainers"]
    data = b"left-pad@1.0.0"
    info = attachment_for("left-pad", "1.0.0", data)
    assert manifest["dist"] == {
        "shasum": info.sha1, "integrity": info.integrity,
        "tarball": f"{BASE}/left-pad/-/left-pad-1.0.0.tgz", "fileCount": 2, "unpackedSize": 300,
    }


def test_the_publish_body_is_not_mutated() -> None:
    data = b"x"
    body = publish_body("left-pad", "1.0.0", data)
    before = copy.deepcopy(body)
    apply_publish(None, body, name="left-pad", user="alice", now=T0, tarball_url=tarball_url,
                  attachment=attachment_for("left-pad", "1.0.0", data))
    assert body == before


def test_a_second_publish_adds_a_version_and_keeps_the_first() -> None:
    first = publish(None, "left-pad", "1.0.0")
    snapshot = copy.deepcopy(first)
    doc = publish(first, "left-pad", "1.1.0", now=T1)
    assert first == snapshot
    assert set(doc["versions"]) == {"1.0.0", "1.1.0"}
    assert doc["dist-tags"]["latest"] == "1.1.0"
    assert doc["time"] == {"created": T0, "modified": T1, "1.0.0": T0, "1.1.0": T1}
    assert doc["readme"] == "# left-pad 1.1.0"
    assert doc["maintainers"] == first["maintainers"]


def test_a_publish_by_another_maintainer_does_not_change_the_maintainers() -> None:
    first = publish(None, "left-pad", "1.0.0")
    doc = publish(first, "left-pad", "1.1.0", user="bob")
    assert doc["maintainers"] == [{"name": "alice", "email": "alice@example.com"}]
    assert doc["versions"]["1.1.0"]["_npmUser"] == {"name": "bob"}


def test_a_client_cannot_choose_the_publisher_or_the_dist() -> None:
    data = b"payload"
    body = publish_body("left-pad", "1.0.0", data, _npmUser={"name": "mallory"})
    body["versions"]["1.0.0"]["dist"]["signatures"] = [{"keyid": "x", "sig": "y"}]
    doc, _ = apply_publish(None, body, name="left-pad", user="alice", now=T0, tarball_url=tarball_url,
                           attachment=attachment_for("left-pad", "1.0.0", data))
    manifest = doc["versions"]["1.0.0"]
    assert manifest["_npmUser"]["name"] == "alice"
    assert "signatures" not in manifest["dist"]
    assert manifest["dist"]["tarball"] == f"{BASE}/left-pad/-/left-pad-1.0.0.tgz"


def test_a_scoped_publish_names_the_tarball_without_the_scope() -> None:
    doc = publish(None, "@acme/ui", "1.0.0")
    assert doc["versions"]["1.0.0"]["dist"]["tarball"] == f"{BASE}/@acme/ui/-/ui-1.0.0.tgz"


def test_the_attachment_may_be_keyed_by_the_scoped_or_the_plain_file_name() -> None:
    data = b"ui"
    body = publish_body("@acme/ui", "1.0.0", data)
    body["_attachments"] = {"ui-1.0.0.tgz": {"length": len(data)}}
    doc, _ = apply_publish(None, body, name="@acme/ui", user="alice", now=T0, tarball_url=tarball_url,
                           attachment=attachment_for("@acme/ui", "1.0.0", data))
    assert "1.0.0" in doc["versions"]


def test_a_publish_with_a_tag_sets_that_tag_and_latest_only_when_missing() -> None:
    doc = publish(None, "left-pad", "1.0.0-beta.1", tags={"beta": "1.0.0-beta.1"})
    assert doc["dist-tags"] == {"beta": "1.0.0-beta.1", "latest": "1.0.0-beta.1"}
    doc = publish(doc, "left-pad", "1.0.0")
    doc = publish(doc, "left-pad", "1.1.0-beta.1", tags={"beta": "1.1.0-beta.1"})
    assert doc["dist-tags"] == {"beta": "1.1.0-beta.1", "latest": "1.0.0"}


def test_without_dist_tags_the_version_becomes_latest() -> None:
    assert publish(None, "left-pad", "1.0.0", tags={})["dist-tags"] == {"latest": "1.0.0"}


def test_top_level_fields_follow_the_latest_version_but_readme_the_newest_publish() -> None:
    doc = publish(None, "left-pad", "1.0.0", keywords=["pad"], license="MIT")
    doc = publish(doc, "left-pad", "2.0.0-beta.1", tags={"beta": "2.0.0-beta.1"}, license="ISC")
    assert doc["description"] == "left-pad at 1.0.0"
    assert doc["license"] == "MIT" and doc["keywords"] == ["pad"]
    assert doc["readme"] == "# left-pad 2.0.0-beta.1"
    doc = publish(doc, "left-pad", "2.0.0", license="ISC")
    assert doc["license"] == "ISC" and "keywords" not in doc


def test_the_readme_is_kept_at_the_top_level_only() -> None:
    doc = publish(None, "left-pad", "1.0.0", readme="# from manifest")
    assert "readme" not in doc["versions"]["1.0.0"]


def test_has_shrinkwrap_is_recorded_when_the_tarball_was_inspected() -> None:
    data = b"x"
    doc, _ = apply_publish(
        None, publish_body("left-pad", "1.0.0", data), name="left-pad", user="alice", now=T0,
        tarball_url=tarball_url, attachment=attachment_for("left-pad", "1.0.0", data, has_shrinkwrap=False),
    )
    assert doc["versions"]["1.0.0"]["_hasShrinkwrap"] is False


def test_republishing_an_existing_version_is_refused() -> None:
    doc = publish(None, "left-pad", "1.0.0")
    message = refused(403, publish, doc, "left-pad", "1.0.0")
    assert message == "You cannot publish over the previously published version 1.0.0."


def test_republish_of_an_unpublished_version_is_refused() -> None:
    doc = publish(publish(None, "left-pad", "1.0.0"), "left-pad", "1.1.0")
    body = as_served(doc)
    del body["versions"]["1.1.0"]
    doc = apply_update(doc, body, now=T1).packument
    assert "1.1.0" not in doc["versions"] and "1.1.0" in doc["time"]
    refused(403, publish, doc, "left-pad", "1.1.0")


def test_a_version_differing_only_in_build_metadata_counts_as_published() -> None:
    doc = publish(None, "left-pad", "1.0.0")
    refused(403, publish, doc, "left-pad", "1.0.0+rebuild")


def test_a_fully_unpublished_package_can_take_new_versions_but_not_old_ones() -> None:
    doc = publish(None, "left-pad", "1.0.0")
    tombstone = unpublish_all(doc, now=T1, user="alice").packument
    refused(403, publish, tombstone, "left-pad", "1.0.0")
    revived = publish(tombstone, "left-pad", "1.0.1", user="bob", now=T2)
    assert "unpublished" not in revived["time"]
    assert revived["maintainers"] == [{"name": "bob"}]
    assert revived["dist-tags"] == {"latest": "1.0.1"}
    assert revived["time"]["created"] == T0 and revived["time"]["1.0.0"] == T0


@pytest.mark.parametrize("version", ["v1.0.0", "1.0", "01.0.0", "latest", "1.0.0 ", ""])
def test_a_version_that_is_not_strict_semver_is_refused(version: str) -> None:
    data = b"x"
    body = publish_body("left-pad", version, data)
    refused(400, apply_publish, None, body, name="left-pad", user="alice", now=T0, tarball_url=tarball_url,
            attachment=attachment_for("left-pad", version, data))


def publish_refused(status: int, body: dict[str, Any], data: bytes = b"x", *,
                    name: str = "left-pad", current: dict[str, Any] | None = None,
                    attachment: AttachmentInfo | None = None) -> str:
    return refused(
        status, apply_publish, current, body, name=name, user="alice", now=T0, tarball_url=tarball_url,
        attachment=attachment or attachment_for(name, "1.0.0", data),
    )


def test_a_body_for_another_package_is_refused() -> None:
    publish_refused(400, publish_body("other", "1.0.0", b"x"))
    body = publish_body("left-pad", "1.0.0", b"x")
    body["_id"] = "other"
    publish_refused(400, body)


def test_a_manifest_that_disagrees_with_its_version_key_is_refused() -> None:
    body = publish_body("left-pad", "1.0.0", b"x")
    body["versions"]["1.0.0"]["version"] = "1.0.1"
    publish_refused(400, body)
    body = publish_body("left-pad", "1.0.0", b"x")
    body["versions"]["1.0.0"]["name"] = "right-pad"
    publish_refused(400, body)


def test_a_publish_without_exactly_one_version_is_refused() -> None:
    body = publish_body("left-pad", "1.0.0", b"x")
    body["versions"]["1.0.1"] = dict(body["versions"]["1.0.0"], version="1.0.1")
    publish_refused(400, body)
    body["versions"] = {}
    publish_refused(400, body)
    del body["versions"]
    publish_refused(400, body)


def test_a_publish_without_exactly_one_attachment_is_refused() -> None:
    body = publish_body("left-pad", "1.0.0", b"x")
    body["_attachments"]["extra.tgz"] = {"length": 1}
    publish_refused(400, body)
    body["_attachments"] = {}
    publish_refused(400, body)


def test_an_attachment_named_for_another_version_is_refused() -> None:
    body = publish_body("left-pad", "1.0.0", b"x")
    body["_attachments"] = {"left-pad-9.9.9.tgz": {"length": 1}}
    publish_refused(400, body)


def test_dist_tags_pointing_elsewhere_are_refused() -> None:
    publish_refused(400, publish_body("left-pad", "1.0.0", b"x", tags={"latest": "0.9.0"}))


def test_a_dist_tag_that_is_a_semver_range_is_refused_on_publish() -> None:
    publish_refused(400, publish_body("left-pad", "1.0.0", b"x", tags={"1.x": "1.0.0"}))


def test_a_declared_length_that_differs_from_the_received_bytes_is_refused() -> None:
    body = publish_body("left-pad", "1.0.0", b"x")
    body["_attachments"]["left-pad-1.0.0.tgz"]["length"] = 999
    assert "length" in publish_refused(422, body)


def test_a_shasum_that_differs_from_the_received_tarball_is_refused() -> None:
    body = publish_body("left-pad", "1.0.0", b"x")
    body["versions"]["1.0.0"]["dist"]["shasum"] = hashlib.sha1(b"other").hexdigest()
    assert "shasum" in publish_refused(422, body)


def test_an_integrity_that_differs_from_the_received_tarball_is_refused() -> None:
    body = publish_body("left-pad", "1.0.0", b"x")
    other = "sha512-" + base64.b64encode(hashlib.sha512(b"other").digest()).decode()
    body["versions"]["1.0.0"]["dist"]["integrity"] = other
    assert "integrity" in publish_refused(422, body)
    sha1 = "sha1-" + base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    body["versions"]["1.0.0"]["dist"]["integrity"] = sha1
    publish_refused(422, body)


def test_a_matching_integrity_list_and_a_missing_shasum_are_accepted() -> None:
    data = b"x"
    info = attachment_for("left-pad", "1.0.0", data)
    body = publish_body("left-pad", "1.0.0", data)
    sha1 = "sha1-" + base64.b64encode(hashlib.sha1(data).digest()).decode()
    body["versions"]["1.0.0"]["dist"] = {"integrity": f"{info.integrity} {sha1} sha256-ignored"}
    doc, _ = apply_publish(
        None, body, name="left-pad", user="alice", now=T0, tarball_url=tarball_url, attachment=info
    )
    assert doc["versions"]["1.0.0"]["dist"]["shasum"] == info.sha1
