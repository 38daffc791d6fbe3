"""`server.drain_timeout`: parsed like the other `server:` durations, and the
Kubernetes manifests give a pod long enough to use it (issue 15)."""

from __future__ import annotations

import pytest

from registry.config import ServerConfig, parse_config
from registry.ops.workers import STOP_MARGIN
from storage.base import ConfigError
from storage.options import parse_duration
from tests.support.deploy_files import configmap_config, container, deployment


def test_the_drain_timeout_defaults_below_kubernetes_default_grace_period() -> None:
    assert parse_config({}).server.drain_timeout == ServerConfig().drain_timeout == 25.0
    assert ServerConfig().drain_timeout < 30  # terminationGracePeriodSeconds' default


@pytest.mark.parametrize(
    ("value", "seconds"), [("10s", 10.0), ("500ms", 0.5), ("1m", 60.0), (3, 3.0), (0, 0.0), ("0s", 0.0)]
)
def test_the_drain_timeout_takes_a_duration(value: object, seconds: float) -> None:
    assert parse_config({"server": {"drain_timeout": value}}).server.drain_timeout == seconds


def test_the_drain_timeout_leaves_the_other_server_keys_alone() -> None:
    server = parse_config({"server": {"drain_timeout": "5s", "header_timeout": "2s"}}).server
    assert (server.drain_timeout, server.header_timeout) == (5.0, 2.0)
    assert server.keepalive_timeout == ServerConfig().keepalive_timeout


@pytest.mark.parametrize("value", [-1, "-5s", "soon", "", True, [25], {"s": 25}])
def test_an_invalid_drain_timeout_stops_the_start_naming_the_key(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"drain_timeout": value}})
    assert caught.value.key == "server.drain_timeout"
    assert "server.drain_timeout" in str(caught.value)


def test_a_misspelt_drain_key_is_an_error_not_a_silent_default() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"drainTimeout": "5s"}})
    assert caught.value.key == "server.drainTimeout"


def test_the_pod_grace_period_covers_pre_stop_drain_and_cleanup() -> None:
    """Kubernetes SIGKILLs at terminationGracePeriodSeconds, counted from the start of preStop."""
    _, raw = configmap_config()
    drain = parse_duration("server.drain_timeout", raw["server"]["drain_timeout"])
    grace = deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert 0 < pre_stop <= 10, "long enough for endpoints to update, short enough not to slow rollouts"
    assert grace >= pre_stop + drain + STOP_MARGIN
