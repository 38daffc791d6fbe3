"""Changes to a published packument: deprecate, unpublish, owners, stars and
dist-tags, through an update (`npm` sends the whole document back) or the
dist-tag endpoints.
"""

from __future__ import annotations

import copy

import pytest

from registry.domain.packument_changes import (
    apply_update,
    remove_dist_tag,
    set_dist_tag,
    unpublish_all,
)
from tests.unit.packuments import (
    BASE,
    T0,
    T1,
    T2,
    as_served,
    refused,
    three_versions,
)

# -- apply_update -----------------------------------------------------------


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


def test_a_version_published_after_the_client_read_is_not_unpublished_unseen() -> None:
    """npm unpublish reads, deletes one version and PUTs the rest back; a publish
    between its read and its PUT must not vanish with the one it meant to remove."""
    read = three_versions()
    body = as_served(read)
    del body["versions"]["1.0.0"]
    current = copy.deepcopy(read)  # meanwhile 1.2.0 was published
    current["versions"]["1.2.0"] = dict(current["versions"]["1.1.0"], version="1.2.0")
    current["time"]["1.2.0"] = current["time"]["modified"] = "2024-01-02T12:00:00.000Z"
    assert read["time"]["modified"] < current["time"]["1.2.0"]
    assert "1.2.0 was published meanwhile" in refused(409, apply_update, current, body, now=T2)
    # A client that also drops the time entry of the version it removes is fine.
    del body["time"]["1.0.0"]
    del current["versions"]["1.2.0"]
    assert apply_update(current, body, now=T2).removed_versions == ["1.0.0"]


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
