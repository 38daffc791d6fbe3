"""Packument changes (publish, update, dist-tags) and views (abbreviated, search)."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest

from registry.domain.names import tarball_filename
from registry.domain.errors import PublishError
from registry.domain.packument import (
    AttachmentInfo,
    apply_publish,
    max_version,
    new_packument,
    preferred_latest,
)
from registry.domain.packument_changes import (
    apply_update,
    remove_dist_tag,
    set_dist_tag,
    unpublish_all,
)
from registry.domain.packument_views import (
    abbreviate,
    manifest_for,
    rewrite_tarball_urls,
)

BASE = "http://registry.test"
T0 = "2024-01-01T00:00:00.000Z"
T1 = "2024-01-02T00:00:00.000Z"
T2 = "2024-01-03T00:00:00.000Z"


def tarball_url(name: str, filename: str) -> str:
    return f"{BASE}/{name}/-/{filename}"


def attachment_for(name: str, version: str, data: bytes, **extra: Any) -> AttachmentInfo:
    return AttachmentInfo(
        filename=tarball_filename(name, version),
        length=len(data),
        sha1=hashlib.sha1(data).hexdigest(),
        integrity="sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        **extra,
    )


def publish_body(
    name: str, version: str, data: bytes, *, tags: dict[str, str] | None = None, **manifest: Any
) -> dict[str, Any]:
    """What `npm publish` PUTs (after the caller decoded the attachment's data)."""
    info = attachment_for(name, version, data)
    full = {
        "name": name,
        "version": version,
        "description": f"{name} at {version}",
        "dist": {
            "shasum": info.sha1,
            "integrity": info.integrity,
            "tarball": f"http://elsewhere.example.com/{name}-{version}.tgz",
        },
        **manifest,
    }
    return {
        "_id": name,
        "name": name,
        "description": full["description"],
        "dist-tags": {"latest": version} if tags is None else tags,
        "versions": {version: full},
        "readme": f"# {name} {version}",
        "access": None,
        "maintainers": [{"name": "alice", "email": "alice@example.com"}],
        "_attachments": {
            f"{name}-{version}.tgz": {"content_type": "application/octet-stream", "length": len(data)},
        },
    }


def publish(
    current: dict[str, Any] | None, name: str, version: str, *, now: str = T0, user: str = "alice", **kw: Any
) -> dict[str, Any]:
    data = f"{name}@{version}".encode()
    body = publish_body(name, version, data, **kw)
    doc, published = apply_publish(
        current, body, name=name, user=user, now=now, tarball_url=tarball_url,
        attachment=attachment_for(name, version, data, file_count=2, unpacked_size=300),
    )
    assert published == version
    return doc


def refused(status: int, fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(PublishError) as caught:
        fn(*args, **kwargs)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def as_served(doc: dict[str, Any]) -> dict[str, Any]:
    """What `npm` gets from GET ?write=true and sends back, tarball URLs rewritten."""
    return copy.deepcopy(rewrite_tarball_urls(doc, "https://public.example.com"))


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


# -- apply_update -----------------------------------------------------------


def three_versions() -> dict[str, Any]:
    doc = publish(None, "left-pad", "1.0.0")
    doc = publish(doc, "left-pad", "1.1.0", now=T1)
    doc = publish(doc, "left-pad", "2.0.0-beta.1", now=T1, tags={"beta": "2.0.0-beta.1"})
    return doc


def test_deprecating_a_version_changes_only_its_deprecated_field() -> None:
    doc = three_versions()
    before = copy.deepcopy(doc)
    body = as_served(doc)
    body["versions"]["1.0.0"]["deprecated"] = "use 1.1.0"
    result = apply_update(doc, body, now=T2)
    assert doc == before
    assert result.changed and result.removed_versions == [] and result.removed_tarballs == []
    new = result.packument
    assert new["versions"]["1.0.0"]["deprecated"] == "use 1.1.0"
    assert new["versions"]["1.0.0"]["dist"] == doc["versions"]["1.0.0"]["dist"]
    assert new["time"]["modified"] == T2


def test_an_empty_deprecation_message_undeprecates() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["versions"]["1.0.0"]["deprecated"] = "old"
    doc = apply_update(doc, body, now=T1).packument
    body = as_served(doc)
    body["versions"]["1.0.0"]["deprecated"] = ""
    doc = apply_update(doc, body, now=T2).packument
    assert "deprecated" not in doc["versions"]["1.0.0"]


def test_other_edits_to_a_published_manifest_are_ignored() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["versions"]["1.0.0"]["dependencies"] = {"evil": "*"}
    result = apply_update(doc, body, now=T2)
    assert "dependencies" not in result.packument["versions"]["1.0.0"]
    assert not result.changed
    assert result.packument["time"]["modified"] == doc["time"]["modified"]


def test_unpublishing_one_version_keeps_it_in_time_and_names_its_tarball() -> None:
    doc = three_versions()
    body = as_served(doc)
    del body["versions"]["1.0.0"]
    result = apply_update(doc, body, now=T2)
    assert result.removed_versions == ["1.0.0"]
    assert result.removed_tarballs == ["left-pad-1.0.0.tgz"]
    assert set(result.packument["versions"]) == {"1.1.0", "2.0.0-beta.1"}
    assert result.packument["time"]["1.0.0"] == T0


def test_unpublishing_latest_moves_latest_to_the_highest_remaining_release() -> None:
    doc = three_versions()
    body = as_served(doc)
    del body["versions"]["1.1.0"]
    result = apply_update(doc, body, now=T2)
    assert result.packument["dist-tags"] == {"latest": "1.0.0", "beta": "2.0.0-beta.1"}


def test_dist_tags_of_unpublished_versions_are_dropped() -> None:
    doc = three_versions()
    body = as_served(doc)
    del body["versions"]["2.0.0-beta.1"]
    assert apply_update(doc, body, now=T2).packument["dist-tags"] == {"latest": "1.1.0"}


def test_hoisted_fields_follow_a_new_latest_after_unpublish() -> None:
    doc = three_versions()
    body = as_served(doc)
    del body["versions"]["1.1.0"]
    assert apply_update(doc, body, now=T2).packument["description"] == "left-pad at 1.0.0"


def test_unpublishing_every_version_leaves_a_tombstone() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["versions"] = {}
    result = apply_update(doc, body, now=T2)
    tomb = result.packument
    assert tomb["versions"] == {} and tomb["dist-tags"] == {}
    assert tomb["time"]["unpublished"]["time"] == T2
    assert set(tomb["time"]["unpublished"]["versions"]) == {"1.0.0", "1.1.0", "2.0.0-beta.1"}
    assert set(result.removed_tarballs) == {
        "left-pad-1.0.0.tgz", "left-pad-1.1.0.tgz", "left-pad-2.0.0-beta.1.tgz",
    }


def test_adding_a_version_through_an_update_is_refused() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["versions"]["3.0.0"] = dict(body["versions"]["1.1.0"], version="3.0.0")
    assert "3.0.0" in refused(400, apply_update, doc, body, now=T2)


def test_restoring_an_unpublished_version_through_an_update_is_refused() -> None:
    doc = three_versions()
    served = as_served(doc)
    body = copy.deepcopy(served)
    del body["versions"]["1.0.0"]
    smaller = apply_update(doc, body, now=T1).packument
    refused(400, apply_update, smaller, served, now=T2)


def test_changing_a_dist_through_an_update_is_refused() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["versions"]["1.0.0"]["dist"]["tarball"] = "https://evil.example.com/left-pad/-/evil-1.0.0.tgz"
    refused(400, apply_update, doc, body, now=T2)
    body = as_served(doc)
    body["versions"]["1.0.0"]["dist"]["shasum"] = "0" * 40
    refused(400, apply_update, doc, body, now=T2)


def test_a_served_dist_with_another_host_is_not_a_change() -> None:
    doc = three_versions()
    body = as_served(doc)
    assert body["versions"]["1.0.0"]["dist"]["tarball"].startswith("https://public.example.com/")
    result = apply_update(doc, body, now=T2)
    assert not result.changed
    assert result.packument["versions"]["1.0.0"]["dist"]["tarball"].startswith(BASE)


def test_owner_add_sends_only_maintainers() -> None:
    doc = three_versions()
    maintainers = [*doc["maintainers"], {"name": "bob", "email": "b@x"}]
    body = {"_id": "left-pad", "_rev": "3-abc", "maintainers": maintainers}
    new = apply_update(doc, body, now=T2).packument
    assert [m["name"] for m in new["maintainers"]] == ["alice", "bob"]
    assert new["versions"] == doc["versions"] and new["dist-tags"] == doc["dist-tags"]


def test_removing_the_last_maintainer_is_refused() -> None:
    refused(400, apply_update, three_versions(), {"maintainers": []}, now=T2)
    refused(400, apply_update, three_versions(), {"maintainers": [{"email": "no-name@x"}]}, now=T2)


def test_a_star_changes_users_only() -> None:
    doc = three_versions()
    new = apply_update(doc, {"_id": "left-pad", "users": {"carol": True}}, now=T2).packument
    assert new["users"] == {"carol": True}
    assert new["versions"] == doc["versions"]


def test_dist_tags_may_be_changed_through_an_update() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["dist-tags"] = {"latest": "1.1.0", "stable": "1.0.0"}
    assert apply_update(doc, body, now=T2).packument["dist-tags"] == {"latest": "1.1.0", "stable": "1.0.0"}


def test_an_update_cannot_drop_latest() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["dist-tags"] = {"beta": "2.0.0-beta.1"}
    assert apply_update(doc, body, now=T2).packument["dist-tags"]["latest"] == "1.1.0"


def test_an_update_with_a_tag_for_an_unknown_version_or_a_range_tag_is_refused() -> None:
    doc = three_versions()
    body = as_served(doc)
    body["dist-tags"]["next"] = "9.9.9"
    refused(400, apply_update, doc, body, now=T2)
    body = as_served(doc)
    body["dist-tags"]["1.x"] = "1.1.0"
    refused(400, apply_update, doc, body, now=T2)


def test_an_update_for_another_package_is_refused() -> None:
    refused(400, apply_update, three_versions(), {"_id": "right-pad"}, now=T2)


def test_an_update_of_a_tombstone_is_not_found() -> None:
    tomb = unpublish_all(three_versions(), now=T2).packument
    refused(404, apply_update, tomb, {"maintainers": [{"name": "x"}]}, now=T2)


# -- dist-tags --------------------------------------------------------------


def test_set_dist_tag_points_a_tag_at_an_existing_version() -> None:
    doc = three_versions()
    new = set_dist_tag(doc, "stable", "1.0.0", now=T2)
    assert new["dist-tags"]["stable"] == "1.0.0"
    assert "stable" not in doc["dist-tags"]
    assert new["time"]["modified"] == T2


def test_moving_latest_with_set_dist_tag_hoists_that_version() -> None:
    new = set_dist_tag(three_versions(), "latest", "1.0.0")
    assert new["description"] == "left-pad at 1.0.0"


def test_set_dist_tag_for_an_unknown_version_is_not_found() -> None:
    refused(404, set_dist_tag, three_versions(), "stable", "9.9.9")


@pytest.mark.parametrize("tag", ["1", "v1", "^1.0.0", "1.x", ""])
def test_set_dist_tag_refuses_tags_that_are_semver_ranges(tag: str) -> None:
    refused(400, set_dist_tag, three_versions(), tag, "1.0.0")


def test_remove_dist_tag_removes_it() -> None:
    doc = three_versions()
    assert "beta" not in remove_dist_tag(doc, "beta")["dist-tags"]
    assert "beta" in doc["dist-tags"]


def test_latest_cannot_be_removed() -> None:
    refused(400, remove_dist_tag, three_versions(), "latest")


def test_removing_a_missing_tag_is_not_found() -> None:
    refused(404, remove_dist_tag, three_versions(), "nope")


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
