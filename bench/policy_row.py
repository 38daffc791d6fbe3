"""The policy rows' pure parts: the `policy:` section the second tarhold runs
with, and the check that it really changes the document served.

The policy hides a few of `bench-full`'s versions two ways, so both paths of
`registry.domain.policy.visible` run: a block rule on a range (10 of 385
versions, `>=1.0.0 <1.1.0`) and a quarantine (`min_age`) holding back the
newest few. The corpus publishes its versions a minute apart in 2023
(`tests.support.fake_upstream_docs.CLOCK_START`), so a quarantine that hides
only the newest needs a `min_age` of years, computed from the clock when the
row starts: its boundary falls halfway between two publish times, so the
newest `QUARANTINED` versions are hidden for the first 30 seconds, then one
leaves the quarantine each minute (a re-render each time, as a real
quarantine's expiry causes) and the newest stays hidden for 9.5 minutes,
longer than the rows take. Few versions are hidden so the policed
document stays nearly as large as the plain one: the row measures what the
policy costs, not a smaller body.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bench.corpus import FULL
from registry.domain.policy_ranges import parse_range

BLOCKED = ">=1.0.0 <1.1.0"
QUARANTINED = 10
NOT_VERSIONS = ("created", "modified")


def publish_times(times: Mapping[str, Any]) -> dict[str, datetime]:
    """A packument's `time` as {version: moment}, without `created` and `modified`."""
    found = {}
    for version, stamp in times.items():
        if version in NOT_VERSIONS or not isinstance(stamp, str):
            continue
        found[version] = datetime.fromisoformat(stamp)
    return found


def policy_section(
    times: Mapping[str, Any], now: datetime, *, blocked: str = BLOCKED, quarantined: int = QUARANTINED,
    package: str = FULL,
) -> dict[str, Any]:
    """`policy:` for the policed instance: block `blocked` of `package`, and a
    `min_age` that, at `now`, quarantines the `quarantined` newest versions of
    the packument whose `time` is `times`.
    """
    published = sorted(publish_times(times).values())
    if len(published) <= quarantined:
        raise ValueError(f"{package} has {len(published)} publish times: too few to quarantine {quarantined}")
    newest_shown, oldest_held = published[-quarantined - 1], published[-quarantined]
    if oldest_held <= newest_shown:
        raise ValueError(f"{package}'s versions share publish times: no boundary to quarantine at")
    boundary = newest_shown + (oldest_held - newest_shown) / 2
    min_age = math.ceil((now - boundary).total_seconds())
    if min_age <= 0:
        raise ValueError(f"{package}'s newest versions are not yet published at {now.isoformat()}")
    rule = {"package": package, "versions": blocked, "reason": "bench: a blocked range"}
    return {"**": {"min_age": f"{min_age}s", "block": [rule]}}


def check_policy_applied(plain: Mapping[str, Any], policed: Mapping[str, Any], *, blocked: str = BLOCKED) -> list[str]:
    """The versions the policy hid from the full packument `plain`, as `policed`
    shows it; RuntimeError when the policy did not do what the row relies on:
    fewer versions, none that `plain` lacks, every blocked version gone and
    the newest (by publish time) quarantined (it stays so longest).
    """
    shown, served = set(plain.get("versions") or {}), set(policed.get("versions") or {})
    if not shown:
        raise RuntimeError("the policy-free document lists no versions")
    if served - shown:
        raise RuntimeError(f"the policed document lists versions the plain one lacks: {sorted(served - shown)[:5]}")
    hidden = sorted(shown - served)
    if not hidden:
        raise RuntimeError(f"the policy hid nothing: {len(served)} versions served with it and without")
    in_range = parse_range(blocked)
    still_blocked = sorted(version for version in served if in_range.contains(version))
    if still_blocked or not any(in_range.contains(version) for version in hidden):
        raise RuntimeError(f"the block on {blocked!r} did not apply: still served {still_blocked[:5]}")
    times = publish_times(plain.get("time") or {})
    newest = max(times, key=times.__getitem__, default=None)
    if newest is None or newest in served:
        raise RuntimeError(f"min_age did not quarantine the newest version ({newest}): it is served")
    return hidden


def count_versions(document: Mapping[str, Any]) -> int:
    versions = document.get("versions")
    return len(versions) if isinstance(versions, dict) else 0
