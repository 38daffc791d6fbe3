"""The mirror as the registry serves it: uplink failures as RegistryErrors, its
events into the metrics, the `packages:` rules that say which uplinks a
prefetched dependency comes from, and each uplink's state for /health."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from registry.domain.errors import BadGateway, ServiceUnavailable
from registry.domain.packages import Packages
from registry.domain.rules import PackageRule, rule_for
from registry.http.metrics_uplinks import MetricsUplinkEvents
from registry.http.urls import is_readable_name
from uplinks.config import UplinkConfig
from uplinks.documents import Current
from uplinks.errors import UplinkBadGateway, UplinkUnavailable
from uplinks.mirror import Mirror
from uplinks.prefetch import ProxiesFor
from uplinks.tee import Download


class RegistryMirror(Mirror):
    """A Mirror whose failures are the registry's own errors (503 and 502, same messages).

    Translated here, where the registry calls the mirror, so every caller
    that handles a RegistryError (the web UI's page, the pre-publish check)
    handles these too, and the error middleware renders them.
    """

    async def packument(self, name: str, proxies: tuple[str, ...], via: str = "") -> Current | None:
        """Mirror.packument; raises ServiceUnavailable or BadGateway when the uplinks fail."""
        try:
            return await super().packument(name, proxies, via)
        except UplinkUnavailable as exc:
            raise ServiceUnavailable(exc.message) from None
        except UplinkBadGateway as exc:
            raise BadGateway(exc.message) from None

    async def tarball(
        self, name: str, filename: str, proxies: tuple[str, ...], via: str = ""
    ) -> Download | None:
        """Mirror.tarball; raises ServiceUnavailable when the tarball's uplink is failing."""
        try:
            return await super().tarball(name, filename, proxies, via)
        except UplinkUnavailable as exc:
            raise ServiceUnavailable(exc.message) from None
        except UplinkBadGateway as exc:
            raise BadGateway(exc.message) from None


def build_mirror(
    packages: Packages, configs: Mapping[str, UplinkConfig], rules: tuple[PackageRule, ...] = ()
) -> RegistryMirror:
    """The app's mirror, reporting into the tarhold_uplink_* metrics, prefetching
    dependencies from the uplinks `rules` proxy them to."""
    return RegistryMirror(packages, configs, events=MetricsUplinkEvents(configs), proxies_for=proxies_for(rules))


def proxies_for(rules: tuple[PackageRule, ...]) -> ProxiesFor:
    """A dependency's name -> the uplinks its rule proxies (none for a name that is not
    a valid one: it comes from an uplink's document, and becomes a storage key)."""

    def proxies(name: str) -> tuple[str, ...]:
        if not is_readable_name(name):
            return ()
        rule = rule_for(rules, name)
        return rule.proxy if rule is not None else ()

    return proxies


def uplink_health(mirror: Mirror) -> dict[str, dict[str, Any]]:
    """Each uplink's state for /health, from the breaker alone (no request goes upstream).

    An open or half-open circuit is "degraded", not an error: cached copies
    are still served, so a load balancer should keep the instance.
    """
    report: dict[str, dict[str, Any]] = {}
    for name, breaker in mirror.breakers.items():
        state = breaker.state
        entry: dict[str, Any] = {
            "status": "ok" if state == "closed" else "degraded",
            "circuit": state,
            "errors": mirror.stats.counts.get(f"{name}:errors", 0),
        }
        last = mirror.stats.last_error.get(name)
        if last is not None:
            entry["last_error_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last))
        report[name] = entry
    return report
