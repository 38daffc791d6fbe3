"""Who is on the other end: the client's address, through trusted proxies."""

from __future__ import annotations

from aiohttp import web

from registry.domain.cidrs import ip_allowed
from registry.http.appkeys import CONFIG


def client_address(request: web.Request) -> str | None:
    """The client's IP address for CIDR checks: the peer, or X-Forwarded-For when trusted.

    `auth.trust_forwarded_for: true` trusts the one proxy in front: the
    header's last entry is the address that proxy saw. With a list of proxy
    CIDRs the header counts only when the peer is one of them, and the client
    is the last entry that is not (entries left of it could be forged).
    """
    auth = request.app[CONFIG].auth
    remote = request.remote
    if not auth.trust_forwarded_for:
        return remote
    proxies = auth.trusted_proxies
    if proxies and not ip_allowed(remote, proxies):
        return remote
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
    hops = [h for h in hops if h]
    if not hops:
        return remote
    if not proxies:
        return hops[-1]
    for hop in reversed(hops):
        if not ip_allowed(hop, proxies):
            return hop
    return hops[0]
