"""Settings a package's maintainers keep on it, apart from its packument: `npm access set mfa=...`,
and whether it takes staged versions only (`stage_required`).

One `PKGSETTINGS`/`{name}` item per package that has any. npm sends the
2FA level as two booleans (libnpmaccess.setMfa): `publish_requires_tfa` and
`automation_token_overrides_tfa`; tarhold stores the level they stand for.
"""

from __future__ import annotations

from typing import Any

from registry.domain.errors import BadRequest
from registry.domain.two_factor import PackageMfa
from storage.base import NotFound, RegistryDatabase

SETTINGS_PK = "PKGSETTINGS"


async def package_settings(db: RegistryDatabase, name: str) -> dict[str, Any]:
    try:
        return await db.get(SETTINGS_PK, name)
    except NotFound:
        return {}


def package_mfa(settings: dict[str, Any]) -> PackageMfa:
    level = settings.get("mfa")
    return level if level in ("publish", "automation") else "none"


def mfa_from_body(body: dict[str, Any]) -> PackageMfa:
    """The level npm's `POST /-/package/{name}/access` body asks for; 400 when it is not one."""
    requires = body.get("publish_requires_tfa")
    overrides = body.get("automation_token_overrides_tfa", False)
    if not isinstance(requires, bool) or not isinstance(overrides, bool):
        raise BadRequest("publish_requires_tfa and automation_token_overrides_tfa must be true or false")
    if not requires:
        return "none"
    return "automation" if overrides else "publish"


async def change_settings(db: RegistryDatabase, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply `changes` (`mfa`, `stage_required`) to the package's settings; the settings now."""
    settings = {k: v for k, v in (await package_settings(db, name)).items() if k != "ver"}
    settings.update(changes)
    await db.put(SETTINGS_PK, name, settings)
    return settings
