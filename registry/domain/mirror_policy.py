"""The mirror policy of one process: config sections plus the database's run-time rules.

`MirrorPolicy` answers two questions, both from memory:
- `policy_for(name)`: the Policy a package is held to (its config section,
  plus the run-time rules that name it), cached per name until the rules change;
- `verdict(name, current)`: what `policy.visible` makes of a stored
  document, cached per (name, token) until the rules change (`generation`)
  or the verdict's own `next_change` passes (a quarantine ends, a rule expires).

The render cache keys its bytes by the verdict's `stamp` (a digest of what
is shown), so bytes are built once per document, policy change and
quarantine expiry, never per request. `watch` polls the database's policy
stamp and reloads the run-time rules when another process changed them.
It also counts what it refused and how many versions it hides, for metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache

from registry.domain.caches import put_bounded
from registry.domain.errors import Forbidden
from registry.domain.policy import Reason, Verdict, fingerprint, refusal, visible
from registry.domain.policy_rules import NO_POLICY, Policy, PolicyConfig, Rule
from registry.domain.policy_store import POLL_SECONDS, current_stamp, load_rules
from storage.base import RegistryDatabase, StorageError
from uplinks.documents import Current, is_mirrored

LOG = logging.getLogger(__name__)

POLICY_ENTRIES = 50_000
VERDICT_ENTRIES = 20_000
HIDDEN_ENTRIES = 100_000
# Documents this large are judged in a thread (like their rendering).
LARGE_DOCUMENT = 256 * 1024
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class View:
    """What a client is shown of a document: the verdict, and a stamp naming it ("" unchanged)."""

    verdict: Verdict
    stamp: str
    expires: datetime | None  # next_change


class RuleIndex:
    """Run-time rules by what they name: a package, a scope, or a glob (checked one by one)."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)
        self.by_name: dict[str, list[Rule]] = {}
        self.by_scope: dict[str, list[Rule]] = {}
        self.globs: list[Rule] = []
        for rule in self.rules:
            if rule.target.kind == "name":
                self.by_name.setdefault(rule.target.value, []).append(rule)
            elif rule.target.kind == "scope":
                self.by_scope.setdefault(rule.target.value, []).append(rule)
            else:
                self.globs.append(rule)

    def matching(self, name: str) -> list[Rule]:
        found = list(self.by_name.get(name, ()))
        if name.startswith("@") and "/" in name:
            found += self.by_scope.get(name.split("/", 1)[0], ())
        found += [rule for rule in self.globs if rule.target.matches(name)]
        return found


REASON_KINDS = ("block", "quarantine", "freeze", "unknown_age", "deprecated")


class PolicyEvents:
    """Hears what the policy does (the HTTP layer feeds metrics from it); by default nobody."""

    def refused(self, kind: str) -> None:
        """A version or tarball request was refused (403) for a reason of this kind."""

    def hidden(self, totals: dict[str, int]) -> None:
        """Versions hidden or replaced now, by reason kind, over the packages judged lately."""


class MirrorPolicy:
    """The policy this process applies: config (fixed) and run-time rules (reloaded)."""

    def __init__(
        self, config: PolicyConfig | None = None, clock: Clock = utc_now, events: PolicyEvents | None = None
    ) -> None:
        self.config = config or PolicyConfig()
        self.clock = clock
        self.events = events or PolicyEvents()
        self.generation = 0
        self.stamp = ""  # the database's policy stamp the loaded rules belong to
        self.runtime = RuleIndex()
        self._policies: LRUCache[str, Policy] = LRUCache(POLICY_ENTRIES)
        self._views: LRUCache[tuple[str, str], tuple[int, View]] = LRUCache(VERDICT_ENTRIES)
        # name -> {reason kind: versions hidden} of the latest verdict per package (oldest
        # first, bounded), and their sum.
        self._hidden: dict[str, Counter[str]] = {}
        self._hidden_total: Counter[str] = Counter()

    @property
    def active(self) -> bool:
        """Whether any package can have anything hidden; False: every path skips the policy."""
        return bool(self.config.sections or self.runtime.rules)

    def policy_for(self, name: str) -> Policy:
        if not self.active:
            return NO_POLICY
        policy = self._policies.get(name)
        if policy is None:
            policy = self.config.policy_for(name).with_rules(self.runtime.matching(name))
            self._policies[name] = policy
        return policy

    def set_rules(self, rules: Iterable[Rule], stamp: str = "") -> None:
        """Replace the run-time rules; every cached policy, verdict and rendering is stale now."""
        self.runtime = RuleIndex(rules)
        self.stamp = stamp
        self.generation += 1
        self._policies.clear()
        self._views.clear()
        self._hidden.clear()
        self._hidden_total.clear()
        self.events.hidden({})

    # -- verdicts -------------------------------------------------------------

    def cached_view(self, name: str, current: Current) -> View | None:
        """The view of `current` if this process judged it under the current rules and it still holds."""
        if not self.active:
            return UNCHANGED
        held = self._views.get((name, current.token))
        if held is None or held[0] != self.generation:
            return None
        view = held[1]
        if view.expires is not None and self.clock() >= view.expires:
            return None
        return view

    async def view(self, name: str, current: Current) -> View:
        """What clients are shown of `current` now (judged in a thread when it is large)."""
        view = self.cached_view(name, current)
        if view is not None:
            return view
        policy = self.policy_for(name)
        if policy.is_noop:
            return UNCHANGED
        generation, now = self.generation, self.clock()
        local = not is_mirrored(current.doc)
        if current.size >= LARGE_DOCUMENT:
            verdict = await asyncio.to_thread(visible, current.doc, policy, now, local=local)
        else:
            verdict = visible(current.doc, policy, now, local=local)
        view = View(verdict, fingerprint(verdict) if verdict.changed else "", verdict.next_change)
        if generation == self.generation:
            put_bounded(self._views, (name, current.token), (generation, view))
            self._count_hidden(name, verdict)
        return view

    def _count_hidden(self, name: str, verdict: Verdict) -> None:
        old = self._hidden.pop(name, None)
        if old is None and not verdict.changed:
            return
        if old is not None:
            self._hidden_total.subtract(old)
        if verdict.changed:
            counts: Counter[str] = Counter(reason.kind for reason in verdict.hidden.values())
            counts.update(replacement.reason.kind for replacement in verdict.replaced.values())
            self._hidden[name] = counts
            self._hidden_total.update(counts)
            if len(self._hidden) > HIDDEN_ENTRIES:
                self._hidden_total.subtract(self._hidden.pop(next(iter(self._hidden))))
        self.events.hidden(self.hidden_versions())

    def hidden_versions(self) -> dict[str, int]:
        """Versions hidden or replaced, by reason kind, over the packages this process judged lately."""
        return {kind: count for kind, count in self._hidden_total.items() if count > 0}

    # -- refusals -------------------------------------------------------------

    def refuse(self, name: str, version: str, reason: Reason, *, what: str, who: str | None) -> Forbidden:
        """The 403 for a hidden version or tarball: logged with who asked and the rule, and counted."""
        message = refusal(name, version, reason)
        self.events.refused(reason.kind)
        LOG.warning(
            "policy refused %s of %s@%s to %s: %s", what, name, version, who or "anonymous", message,
            extra={"package": name, "version": version, "rule": reason.rule, "reason": reason.kind},
        )
        return Forbidden(message)

    @staticmethod
    def withheld(view: View, version: str, filename: str) -> Reason | None:
        """Why clients cannot have `version` or its tarball `filename` (hidden, or replaced by
        another release), or None when they can."""
        verdict = view.verdict
        if version in verdict.hidden:
            return verdict.hidden[version]
        if version in verdict.replaced:
            return verdict.replaced[version].reason
        held = verdict.withheld_tarballs.get(filename)
        return held[1] if held is not None else None

    def check_version(self, name: str, version: str, view: View, *, who: str | None) -> None:
        """Raise the 403 when `version` of `name` is hidden from clients."""
        reason = view.verdict.hidden.get(version)
        if reason is not None:
            raise self.refuse(name, version, reason, what="version", who=who)

    def check_tarball(self, name: str, filename: str, view: View, *, who: str | None) -> None:
        """Raise the 403 when `filename` is the tarball of a hidden (or replaced) version."""
        withheld = view.verdict.withheld_tarballs.get(filename)
        if withheld is not None:
            version, reason = withheld
            raise self.refuse(name, version, reason, what="tarball", who=who)

    # -- keeping up with other instances --------------------------------------

    async def reload(self, db: RegistryDatabase) -> bool:
        """Load the run-time rules if the database's stamp changed; whether it did."""
        stamp = await current_stamp(db)
        if stamp == self.stamp and self.generation:
            return False
        rules = await load_rules(db)
        self.set_rules(rules, stamp)
        LOG.info("policy: %d run-time rules loaded", len(rules))
        return True

    async def watch(self, db: RegistryDatabase, interval: float = POLL_SECONDS) -> None:
        """Reload whenever another process changed the rules; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload(db)
            except StorageError as exc:
                LOG.warning("policy: could not check for rule changes: %s", exc)


UNCHANGED = View(Verdict({}, {}, {}, {}, None), "", None)


def shown_doc(view: View, current: Current) -> dict[str, Any]:
    """The document clients see: the verdict's, or `current`'s own when nothing is hidden."""
    return view.verdict.doc if view.stamp else current.doc
