"""A team membership removed on one `tarhold serve` stops the member's publish on another within 5 s.

Two instances on one S3 + DynamoDB storage (moto), the multi-instance
deployment. `tarhold org create` makes the org; with the real npm CLI the
owner adds a developer (who joins the `developers` team) and publishes a
private package on instance A, and the developer publishes its next version
on instance B (the team's read-write). The owner then runs `npm team rm
@ORG:developers USER` on A. B learns of it only through the database's org
stamp (registry/http/org_directory.py), and must refuse the developer's
publish within 5 seconds of the removal; A refuses at once.

The refusal is watched with a side-effect free publish: the developer PUTs
the version they already published, which the registry answers with 403
(a version is never published over) while they may write, and with the 404
of a private package once they may not even read it. The real `npm publish`
of a new version then confirms it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.e2e.fixtures import (
    NewNpm,
    TarholdServer,
    TarholdStorage,
    http_json,
    path_of,
)
from tests.e2e.test_npm_orgs import create_org, lines, publish_dir, refused
from tests.http.packages import publish_body

pytestmark = pytest.mark.npm

PROPAGATION_LIMIT = 5.0  # seconds: what the issue promises
POLL_LIMIT = 15.0  # how long we keep looking, so a miss reports how late it was
POLL_INTERVAL = 0.1


def republish_status(server: TarholdServer, token: str, name: str, version: str) -> tuple[int, str]:
    """PUT an already published `version` of `name` again: (status, error)."""
    body = publish_body(name, version, base=server.url.rstrip("/"))
    status, answer = http_json("PUT", server.url + path_of(name).lstrip("/"), body, token=token)
    return status, str(answer.get("error", "") if isinstance(answer, dict) else answer)


def wait_for(what: str, check: Callable[[], bool], since: float, logs: Callable[[], str]) -> float:
    """Poll `check` until it holds; the seconds since `since` when it did (a failure after POLL_LIMIT)."""
    while not check():
        if time.monotonic() - since > POLL_LIMIT:
            pytest.fail(f"{what}: still not so {POLL_LIMIT:.0f}s later{logs()}")
        time.sleep(POLL_INTERVAL)
    return time.monotonic() - since


@pytest.mark.parametrize("tarhold_storage", ["aws"], indirect=True)
def test_removing_a_member_from_a_team_on_one_instance_stops_their_publish_on_the_other_within_5_seconds(
    tarhold_storage: TarholdStorage,
    start_tarhold_on: Callable[[TarholdStorage], TarholdServer],
    new_npm: NewNpm,
) -> None:
    a, b = start_tarhold_on(tarhold_storage), start_tarhold_on(tarhold_storage)
    alice, bob = new_npm(a, "alice"), new_npm(a, "bob")
    assert bob.token is not None
    bob_on_b = new_npm(b, None, token=bob.token)  # one database: the token works on both

    def logs() -> str:
        return "".join(f"\n--- server {i}\n{s.log()[-4000:]}" for i, s in (("A", a), ("B", b)))

    org = create_org(a, alice)
    added = alice.ok("org", "set", org, str(bob.user))
    assert lines(added) == [f"Added {bob.user} as developer to {org}. You now have 2 members in this org."]
    pkg = f"@{org}/pkg"
    published = time.monotonic()
    alice.publish(publish_dir(alice, pkg, "1.0.0"))  # private: B hides it once it knows the org
    packument = b.url + path_of(pkg).lstrip("/")
    # Both of adopting's items, which one stamp announces: hidden from anyone, readable by a developer.
    known = wait_for(f"B does not yet know {pkg} as private, and readable by {org}'s developers",
                     lambda: http_json("GET", packument)[0] == 404
                     and http_json("GET", packument, token=bob.token)[0] == 200, published, logs)

    bob_on_b.publish(publish_dir(bob_on_b, pkg, "1.0.1"))  # the developers team's read-write, on B
    assert republish_status(b, bob.token, pkg, "1.0.1") == (
        403, f"cannot publish over the previously published version 1.0.1 of {pkg}"
    ), logs()

    started = time.monotonic()
    removed = alice.ok("team", "rm", f"@{org}:developers", str(bob.user))
    done = time.monotonic()
    assert lines(removed) == [f"{bob.user} removed from @{org}:developers"]
    status, error = republish_status(a, bob.token, pkg, "1.0.1")  # a private package's 404, at once
    assert status == 404 and pkg in error, f"{status} {error}{logs()}"
    took = wait_for(f"B still takes {bob.user}'s publish of {pkg}",
                    lambda: republish_status(b, bob.token, pkg, "1.0.1")[0] == 404, done, logs)
    assert took <= PROPAGATION_LIMIT, f"B refused {took:.2f}s after the removal{logs()}"

    refused(bob_on_b.fails("publish", cwd=publish_dir(bob_on_b, pkg, "1.0.2")), "E404", pkg)
    status, doc = http_json("GET", a.url + path_of(pkg).lstrip("/"), token=alice.token)
    assert status == 200 and sorted(doc["versions"]) == ["1.0.0", "1.0.1"], f"{status} {doc}"
    print(f"\n[orgs, {tarhold_storage.backend}] B hid the new org's package {known:.2f}s after the publish began;"
          f" B refused the removed member {took:.2f}s after `npm team rm` returned"
          f" ({took + done - started:.2f}s after it began)")
