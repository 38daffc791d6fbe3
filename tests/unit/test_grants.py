"""Grants, token limits and their config, without HTTP: parse, match, cover, expire, rate, forward."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from registry.config import parse_config
from registry.domain.access import may_read_principals
from registry.domain.errors import Forbidden, TooManyRequests
from registry.domain.grants import (
    Grant,
    allows,
    covers,
    format_grants,
    matches_package,
    parse_expires,
    parse_grant,
    parse_grants,
    stored_grants,
)
from registry.domain.ratelimit import RateLimiter
from registry.http.appkeys import CONFIG
from registry.http.auth import (
    Identity,
    grant_allows,
    require_grant,
)
from registry.http.clients import client_address
from storage.base import ConfigError

NOW = 1_700_000_000


# -- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "grant"),
    [
        ("pkg:read=*", Grant("pkg", False, "*")),
        ("pkg:read+write=left-pad", Grant("pkg", True, "left-pad")),
        ("pkg:read=@acme/ui", Grant("pkg", False, "@acme/ui")),
        ("pkg:read+write=@acme/*", Grant("pkg", True, "@acme/*")),
        ("user:read=~alice", Grant("user", False, "~alice")),
        ("user:read+write=*", Grant("user", True, "*")),
        ("  user:read=*  ", Grant("user", False, "*")),
    ],
)
def test_parse_grant_and_back(text: str, grant: Grant) -> None:
    assert parse_grant(text) == grant
    assert str(grant) == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "pkg:write=*", "pkg=*", "pkg:read", "org:read=*", "pkg:read=~alice", "pkg:read=@acme",
        "pkg:read=@acme/ui/x", "pkg:read=Left-Pad", "user:read=alice", "user:read=@acme/*",
        "user:read=~", "pkg:read=", "pkg:read=a b",
    ],
)
def test_parse_grant_refuses_what_it_cannot_mean(text: str) -> None:
    with pytest.raises(ValueError, match="invalid grant"):
        parse_grant(text)


def test_parse_grants_needs_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one grant"):
        parse_grants([])
    assert format_grants(parse_grants(["pkg:read=*", "user:read=~bob"])) == ["pkg:read=*", "user:read=~bob"]


def test_a_corrupt_stored_grant_list_allows_nothing() -> None:
    assert stored_grants(("pkg:read=*",)) == (Grant("pkg", False, "*"),)
    assert stored_grants(("pkg:read=*", "nonsense")) == ()


# -- matching -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name", "matches"),
    [
        ("*", "left-pad", True),
        ("*", "@acme/ui", True),
        ("left-pad", "left-pad", True),
        ("left-pad", "left-pad2", False),
        ("@acme/ui", "@acme/ui", True),
        ("@acme/ui", "@acme/uix", False),
        ("@acme/*", "@acme/ui", True),
        ("@acme/*", "@acmex/ui", False),
        ("@acme/*", "acme", False),
        ("@acme/*", "@acme", False),
        ("@acme/*", "@acme/", False),  # not a package name; never a match
        ("acme", "@acme/ui", False),
    ],
)
def test_package_values(value: str, name: str, matches: bool) -> None:
    assert matches_package(value, name) is matches


def test_types_are_evaluated_on_their_own() -> None:
    user_rw = parse_grants(["user:read+write=*"])
    pkg_rw = parse_grants(["pkg:read+write=*"])
    assert not allows(user_rw, "pkg", "left-pad", write=False)
    assert not allows(pkg_rw, "user", "alice", write=False)
    assert allows(parse_grants(["user:read=~alice"]), "user", "alice", write=False)
    assert not allows(parse_grants(["user:read=~alice"]), "user", "alice", write=True)
    assert not allows(parse_grants(["user:read=~alice"]), "user", "alicex", write=False)


@pytest.mark.parametrize(
    ("held", "wanted", "covered"),
    [
        (["pkg:read+write=*"], "pkg:read=@acme/*", True),
        (["pkg:read+write=@acme/*"], "pkg:read+write=@acme/ui", True),
        (["pkg:read+write=@acme/*"], "pkg:read=@acme/*", True),
        (["pkg:read=@acme/*"], "pkg:read+write=@acme/ui", False),
        (["pkg:read+write=@acme/*"], "pkg:read=@acmex/ui", False),
        (["pkg:read+write=@acme/*"], "pkg:read=*", False),
        (["pkg:read+write=@acme/ui"], "pkg:read=@acme/*", False),
        (["pkg:read+write=left-pad"], "pkg:read=left-pad", True),
        (["user:read+write=~alice"], "user:read=~alice", True),
        (["user:read+write=~alice"], "user:read=*", False),
        (["user:read+write=*"], "pkg:read=left-pad", False),
        (["pkg:read=*", "user:read+write=*"], "user:read+write=~bob", True),
    ],
)
def test_covers_is_what_a_token_may_hand_on(held: list[str], wanted: str, covered: bool) -> None:
    assert covers(parse_grants(held), parse_grant(wanted)) is covered


# -- require_grant ---------------------------------------------------------------


def identity(*grants: str, readonly: bool = False) -> Identity:
    return Identity("alice", "k" * 32, readonly, parse_grants(grants) if grants else None)


def test_full_rights_and_anonymous_are_not_limited_by_grants() -> None:
    assert grant_allows(None, "pkg", "x", write=True)
    assert grant_allows(identity(), "pkg", "x", write=True)
    assert grant_allows(identity(), "user", "alice", write=True)


def test_a_read_only_token_never_writes() -> None:
    with pytest.raises(Forbidden, match="this token is read-only"):
        require_grant(identity(readonly=True), "pkg", "x", write=True)
    with pytest.raises(Forbidden, match="read-only"):
        require_grant(identity("pkg:read+write=*", readonly=True), "pkg", "x", write=True)
    require_grant(identity(readonly=True), "pkg", "x", write=False)


def test_refusals_say_what_the_token_lacks() -> None:
    token = identity("pkg:read=@acme/*")
    with pytest.raises(Forbidden, match=r"^this token may not write @acme/ui: it has no pkg:read\+write"):
        require_grant(token, "pkg", "@acme/ui", write=True)
    with pytest.raises(Forbidden, match="^this token may not read @other/y"):
        require_grant(token, "pkg", "@other/y", write=False)
    with pytest.raises(Forbidden, match="^this token may not read user alice: it has no user:read grant for ~alice"):
        require_grant(token, "user", "alice", write=False)
    with pytest.raises(Forbidden, match=r"^this token may not change user alice"):
        require_grant(identity("user:read=~alice"), "user", "alice", write=True)


def test_a_grant_never_takes_away_what_anonymous_requests_get() -> None:
    token = identity("pkg:read=@acme/*")
    assert may_read_principals(token, "left-pad", ("$all",))
    assert not may_read_principals(token, "@other/y", ("$authenticated",))
    assert may_read_principals(token, "@acme/x", ("$authenticated",))
    assert not may_read_principals(token, "@acme/x", ("bob",))  # grants never exceed the user
    assert not grant_allows(token, "pkg", "left-pad", write=True, anonymous_ok=True)


# -- expiry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1, NOW + 86400),
        (30, NOW + 30 * 86400),
        ("2023-11-20T00:00:00Z", 1700438400),
        ("2023-11-20T01:00:00+01:00", 1700438400),
        ("2023-11-20T00:00:00", 1700438400),
        ("2023-11-20", 1700438400),
    ],
)
def test_parse_expires_takes_days_or_a_date(value: Any, expected: int | None) -> None:
    assert parse_expires(value, NOW) == expected


@pytest.mark.parametrize("value", [0, -1, 3651, True, 1.5, "soon", "30", "2000-01-01", "2999-01-01", [], {}])
def test_parse_expires_refuses_the_rest(value: Any) -> None:
    with pytest.raises(ValueError, match="expires must be"):
        parse_expires(value, NOW)


# -- rate limit -----------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_refills() -> None:
    limiter = RateLimiter()
    assert [limiter.retry_after("k", 3, now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.retry_after("k", 3, now=100.0) == pytest.approx(20.0)
    assert limiter.retry_after("k", 3, now=110.0) == pytest.approx(10.0)
    assert limiter.retry_after("k", 3, now=120.0) == 0.0  # one request's worth refilled
    assert limiter.retry_after("other", 3, now=120.0) == 0.0  # buckets are per token


def test_over_the_limit_is_429_with_retry_after_in_whole_seconds() -> None:
    limiter = RateLimiter()
    limiter.check("k", 1)
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("k", 1)
    assert refused.value.status == 429
    assert 59 <= int(refused.value.headers["Retry-After"]) <= 60
    assert "limit is 1 a minute" in refused.value.message


# -- config and X-Forwarded-For ----------------------------------------------------


def test_auth_config_defaults_are_off() -> None:
    auth = parse_config({}).auth
    assert (auth.rate_limit, auth.trust_forwarded_for, auth.trusted_proxies) == (None, False, ())


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"rate_limit": 10}, "auth.rate_limit"),
        ({"rate_limit": {"per_minute": 1}}, "auth.rate_limit"),
        ({"rate_limit": {"requests_per_minute": -1}}, "auth.rate_limit.requests_per_minute"),
        ({"trust_forwarded_for": "yes"}, "auth.trust_forwarded_for"),
        ({"trust_forwarded_for": ["10.0.0.300"]}, "auth.trust_forwarded_for"),
        ({"trust_forwarded_for": []}, "auth.trust_forwarded_for"),
    ],
)
def test_bad_auth_config_names_the_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"auth": raw})
    assert error.value.key == key


def request_from(peer: str, forwarded: str | None, trust: Any) -> web.Request:
    app = web.Application()
    app[CONFIG] = parse_config({"auth": {"trust_forwarded_for": trust}})
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    transport_peer = (peer, 1234)

    class Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return transport_peer if name == "peername" else default

    return make_mocked_request("GET", "/-/whoami", headers=headers, app=app, transport=Transport())


@pytest.mark.parametrize(
    ("peer", "forwarded", "trust", "client"),
    [
        ("10.0.0.5", "203.0.113.7", False, "10.0.0.5"),  # not trusted: the peer
        ("10.0.0.5", "203.0.113.7", True, "203.0.113.7"),
        ("10.0.0.5", "1.1.1.1, 203.0.113.7", True, "203.0.113.7"),  # the left one may be forged
        ("10.0.0.5", None, True, "10.0.0.5"),
        ("10.0.0.5", "1.1.1.1, 203.0.113.7, 10.0.0.9", ["10.0.0.0/8"], "203.0.113.7"),
        ("192.0.2.1", "203.0.113.7", ["10.0.0.0/8"], "192.0.2.1"),  # a peer that is no proxy
        ("10.0.0.5", "10.0.0.8", ["10.0.0.0/8"], "10.0.0.8"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, trust: Any, client: str) -> None:
    assert client_address(request_from(peer, forwarded, trust)) == client
