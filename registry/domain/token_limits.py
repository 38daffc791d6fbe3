"""A token never makes a token stronger than itself.

Every place that creates a token from a request signed with a token (`npm
token create`, the admin API) passes the new token's options through
`within_parent`: its grants must be covered by the parent's, it is read-only
if the parent is, it expires no later, its CIDR list is no wider and its
rate limit no higher. What the caller leaves out is inherited from the
parent; what asks for more is refused with 403 naming the limit. A request
signed with a password has no parent token: the user's own rights bound it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from registry.domain.access import Identity
from registry.domain.errors import Forbidden
from registry.domain.grants import covers, format_grants, parse_grants


def within_parent(parent: Identity, options: dict[str, Any]) -> dict[str, Any]:
    """`options` (grants, readonly, cidr_whitelist, expires, rate_limit) bounded by `parent`'s token."""
    if parent.token_key is None:
        return options
    bounded = dict(options)
    bounded["grants"] = _grants(parent, options.get("grants"))
    if parent.readonly and not options.get("readonly"):
        raise Forbidden("this token is read-only: it may only create read-only tokens")
    bounded["readonly"] = bool(options.get("readonly")) or parent.readonly
    bounded["expires"] = _expires(parent, options.get("expires"))
    bounded["cidr_whitelist"] = _cidrs(parent, options.get("cidr_whitelist"))
    bounded["rate_limit"] = _rate_limit(parent, options.get("rate_limit"))
    return bounded


def _grants(parent: Identity, wanted: list[str] | None) -> list[str] | None:
    if parent.grants is None:
        return wanted
    if wanted is None:
        return format_grants(parent.grants)
    for grant in parse_grants(wanted):
        if not covers(parent.grants, grant):
            raise Forbidden(f"this token may not create a token with {grant}: its own grants do not cover it")
    return wanted


def _expires(parent: Identity, wanted: int | None) -> int | None:
    if parent.expires is None:
        return wanted
    if wanted is None:
        return parent.expires
    if wanted > parent.expires:
        raise Forbidden("a token may not create a token that expires later than itself")
    return wanted


def _cidrs(parent: Identity, wanted: list[str] | None) -> list[str] | None:
    if not parent.cidrs:
        return wanted
    if not wanted:
        return list(parent.cidrs)
    held = [ipaddress.ip_network(cidr, strict=False) for cidr in parent.cidrs]
    for cidr in wanted:
        network = ipaddress.ip_network(cidr, strict=False)
        if not any(network.version == h.version and network.subnet_of(h) for h in held):  # type: ignore[arg-type]
            raise Forbidden(f"this token may not create a token for {cidr}: its own CIDR list does not contain it")
    return wanted


def _rate_limit(parent: Identity, wanted: int | None) -> int | None:
    if parent.rate_limit is None:
        return wanted
    if wanted is None:
        return parent.rate_limit
    if wanted > parent.rate_limit:
        raise Forbidden(f"a token may not create a token with a rate limit above its own ({parent.rate_limit}/min)")
    return wanted
