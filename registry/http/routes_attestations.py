"""`GET /-/npm/v1/attestations/{name}@{version}`: a version's provenance attestations.

What pacote fetches when a version has `dist.attestations` (npm audit signatures; installs
that verify attestations): `{"attestations": [{predicateType, bundle}]}`. Every
`dist.attestations.url` tarhold serves points here (packument_views.rewrite_tarball_urls),
mirrored versions' included, so clients never need the uplink:

- a version published here: the bundle kept at publish (registry.domain.provenance);
- a mirrored version: its uplink's own answer, passed through unchanged, and kept for an
  hour (a bounded cache, as routes_keys keeps uplinks' keys), a 404 of the uplink too.

Only a version its packument lists with `dist.attestations` is looked up; anything else is a
404 without asking storage or the uplink. Reading needs what reading the packument needs
(the same access check), and a version the mirror policy hides is refused here as well.
The name may be scoped: `@scope%2fname@1.0.0` (npm's form), `@scope/name@1.0.0` or
`%40scope%2fname@1.0.0`.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

import orjson
from aiohttp import web
from cachetools import TTLCache

from registry.domain.access import Action
from registry.domain.errors import BadGateway, BadRequest, NotFoundError
from registry.domain.mirror_policy import shown_doc
from registry.domain.packages import MIRROR_MARK, is_mirrored
from registry.domain.packument_views import ATTESTATIONS_PATH, attestations_path
from registry.domain.provenance import stored_attestations
from registry.http.access import authorize
from registry.http.appkeys import DATABASE, MIRROR, PACKAGES
from registry.http.urls import is_readable_name
from uplinks.base import UplinkError

LOG = logging.getLogger(__name__)

UPLINK_ANSWER_TTL = 3600.0
MAX_UPLINK_ANSWER = 1024 * 1024
UPLINK_CACHE_BYTES = 16 * 1024 * 1024
ENTRY_OVERHEAD = 256  # weight of an entry besides its bytes: bounds the count of cached 404s too
MAX_SPEC = 512
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,255}")
NONE_UPSTREAM = b""  # cached: the uplink has no attestations for this version

# (uplink, name, version) -> the uplink's answer (NONE_UPSTREAM for its 404).
UPLINK_ATTESTATIONS = web.AppKey("uplink_attestations", TTLCache)


def parse_target(request: web.Request) -> tuple[str, str]:
    """(name, version) from the still-encoded path; 400 unless it is `{name}@{version}`."""
    raw = request.rel_url.raw_path
    spec = raw[raw.find(ATTESTATIONS_PATH) + len(ATTESTATIONS_PATH):]
    name, at, version = unquote(spec).rpartition("@") if len(spec) <= MAX_SPEC else ("", "", "")
    if not at or not is_readable_name(name) or not VERSION.fullmatch(version):
        raise BadRequest(f"expected {ATTESTATIONS_PATH}{{name}}@{{version}}, e.g. {attestations_path('@scope/name', '1.0.0')}")
    return name, version


def _is_answer(data: bytes) -> bool:
    try:
        answer = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and isinstance(answer.get("attestations"), list)


async def uplink_attestations(request: web.Request, uplink_name: str, name: str, version: str) -> bytes | None:
    """The uplink's answer for a mirrored version, from the cache or asked now; None for its 404."""
    held: TTLCache[tuple[str, str, str], bytes] = request.app[UPLINK_ATTESTATIONS]
    key = (uplink_name, name, version)
    found = held.get(key)
    if found is None:
        mirror, via = request.app[MIRROR], request.headers.get("Via", "")
        uplink = mirror.uplinks.get(uplink_name)
        if uplink is None or mirror.is_loop(via):
            return None
        headers = {"Accept": "application/json", "Via": mirror.via(via)}
        try:
            status, data, _ = await uplink.forward("GET", attestations_path(name, version), b"", headers)
        except UplinkError as exc:
            raise BadGateway(f"could not fetch the attestations of {name}@{version} from {uplink_name}: {exc}") from None
        if status == 404:
            found = NONE_UPSTREAM
        elif status == 200 and len(data) <= MAX_UPLINK_ANSWER and _is_answer(data):
            found = data
        else:
            LOG.info("uplink %s answered %s (%d bytes) for the attestations of %s@%s", uplink_name, status, len(data), name, version)
            raise BadGateway(f"uplink {uplink_name} gave no usable attestations for {name}@{version} (status {status})")
        held[key] = found
    return found or None


async def get_attestations(request: web.Request) -> web.Response:
    name, version = parse_target(request)
    rule = authorize(request, name, Action.READ).rule
    packages = request.app[PACKAGES]
    current = await request.app[MIRROR].packument(name, rule.proxy, request.headers.get("Via", ""))
    if current is None:
        raise NotFoundError(f"package {name} not found")
    view = await packages.view(name, current)
    packages.policy.check_version(name, version, view, who=request.get("user"))
    manifest = (shown_doc(view, current).get("versions") or {}).get(version)
    dist = manifest.get("dist") if isinstance(manifest, dict) else None
    body: bytes | None = None
    # Looked up only for a version that says it has some (none, or no such version: 404).
    if isinstance(dist, dict) and dist.get("attestations"):
        if is_mirrored(current.doc):
            body = await uplink_attestations(request, current.doc[MIRROR_MARK]["uplink"], name, version)
        elif (found := await stored_attestations(request.app[DATABASE], name, version)) is not None:
            body = orjson.dumps({"attestations": found})
    if body is None:
        raise NotFoundError(f"no attestations found for {name}@{version}")
    return web.Response(body=body, content_type="application/json")


def setup(app: web.Application) -> None:
    app[UPLINK_ATTESTATIONS] = TTLCache(
        UPLINK_CACHE_BYTES, UPLINK_ANSWER_TTL, getsizeof=lambda data: len(data) + ENTRY_OVERHEAD
    )
    app.router.add_get(ATTESTATIONS_PATH + "{spec:.+}", get_attestations)
