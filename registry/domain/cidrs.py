"""CIDR allow-lists of tokens: parse what a client sends, match a remote address."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any


def ip_allowed(remote: str | None, cidrs: Sequence[str]) -> bool:
    """Whether `remote` lies in one of `cidrs`; an unparsable address is never allowed."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for cidr in cidrs:
        try:
            if address in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False


def parse_cidrs(values: Any) -> list[str]:
    """Validated, normalized CIDR entries from a request body; raises ValueError naming the bad one."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [v for v in re.split(r",\s*", values) if v]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("cidr_whitelist must be a list of CIDR strings")
    networks = []
    for value in values:
        try:
            networks.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"invalid CIDR entry: {value}") from None
    return networks
