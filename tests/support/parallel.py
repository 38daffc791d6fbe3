"""How the suite splits over pytest-xdist workers (`make test`: `-n 3 --dist loadfile`).

Each worker is its own pytest session with its own session-scoped servers,
so the split decides which servers start where. `ServerGroupScheduling`
refines `--dist loadfile`:

- a module's tests stay on one worker, so its module-scoped servers (the
  e2e `tarhold`, Verdaccio in the import test) start once;
- the cases that need SeaweedFS or DynamoDB Local (the heavy servers, a JVM
  for DynamoDB Local) form one group per server across modules, so one
  worker alone starts each; moto is cheap and starts on each worker that
  needs it;
- groups are handed out in collection order, which puts the slow tiers
  first (`pytest_collection_modifyitems`), so the quick unit tests fill in
  at the end instead of one long e2e module starting last and running alone.

Grouping is by node id on the controller, where markers are not known: the
backend ids below are those of conftest.py's backend params. (xdist's own
`xdist_group` marks do nothing under pytest 9, whose node ids are no longer
the `_nodeid` xdist rewrites.) Without xdist nothing is regrouped or reordered.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

# A backend param id (PACKAGE_STORE_BACKENDS, REGISTRY_DATABASE_BACKENDS) → its group.
SERVER_GROUPS = {"s3-seaweedfs": "server: SeaweedFS", "dynamodb-local": "server: DynamoDB Local"}
# Tiers by how long their modules take, longest first; unknown places go first
# (the top-level modules still waiting to move are end-to-end tests).
TIER_ORDER = ("e2e", "contract", "http", "unit")


class ServerGroupScheduling(LoadScopeScheduling):
    """`--dist loadfile`, except that each heavy server's cases are one group."""

    def _split_scope(self, nodeid: str) -> str:
        ids = "-" + nodeid.partition("[")[2].removesuffix("]") + "-"
        for backend, group in SERVER_GROUPS.items():
            if f"-{backend}-" in ids:
                return group
        return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)  # a hook of xdist, absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """The scheduler for `--dist loadfile`; xdist's own for every other mode."""
    if config.getvalue("dist") != "loadfile":
        return None
    # The collection order is the one wanted; xdist would sort groups by size.
    config.option.loadscopereorder = False
    return ServerGroupScheduling(config, log)


def _tier_rank(item: pytest.Item) -> int:
    parts = item.nodeid.split("::", 1)[0].split("/")
    tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    return TIER_ORDER.index(tier) if tier in TIER_ORDER else -1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, the slow tiers first (see the module docstring)."""
    if not hasattr(config, "workerinput"):
        return
    # Stable: each module keeps its order, so module-scoped fixtures still
    # set up once per module and parameter.
    items.sort(key=_tier_rank)
