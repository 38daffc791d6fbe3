"""A package's trusted-publishing configurations: which CI jobs may publish it without a token.

The shape is the public registry's (`npm trust github|gitlab|circleci`,
`GET/POST /-/package/{name}/trust`): `{id, type, claims, permissions}`,
one `TRUST#{name}`/`{id}` item each. `type` is a preset (`github`,
`gitlab`, `circleci`) or the name of a configured issuer of the generic
preset, whose configurations simply list the claim values they require
(e.g. Kubernetes `sub: system:serviceaccount:ci:publisher`).

How claims match (`matches`), per preset:
- github: `repository` (case-insensitive, as GitHub names are); `workflow_ref`
  either `{file}` — the token's `workflow_ref` is
  `{repository}/.github/workflows/{file}@{ref}` — or the exact string;
  `environment` exact when given.
- gitlab: `project_path`; `ci_config_ref_uri` `{file}` — the token's is
  `{host}/{project_path}//{file}@{ref}` — or exact; `environment`.
- circleci and generic: every listed claim exact; a list value (CircleCI's
  `context-ids`) must all be in the token's list.
The configuration also records who made it (`created_by`): an exchanged
token acts as that maintainer, narrowed to this one package.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registry.domain.clock import now_iso
from registry.domain.errors import BadRequest, ConflictError, NotFoundError
from registry.domain.trust_config import Issuer, TrustedPublishingConfig
from storage.base import NotFound, RegistryDatabase

CREATE_PACKAGE = "createPackage"
CREATE_STAGED_PACKAGE = "createStagedPackage"
MANAGE_DIST_TAGS = "manageDistTags"
PERMISSIONS = (CREATE_PACKAGE, CREATE_STAGED_PACKAGE, MANAGE_DIST_TAGS)
MAX_CONFIGS = 10
MAX_CLAIMS = 16
MAX_VALUE = 512
MAX_LIST = 16
PRESET_CLAIMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # (required, optional)
    "github": (("repository",), ("workflow_ref", "environment")),
    "gitlab": (("project_path",), ("ci_config_ref_uri", "environment")),
    "circleci": (
        tuple(f"oidc.circleci.com/{c}" for c in ("org-id", "project-id", "pipeline-definition-id", "vcs-origin")),
        ("oidc.circleci.com/context-ids",),
    ),
}
FILE_CLAIMS = ("workflow_ref", "ci_config_ref_uri")  # may be `{file: ...}`: a partial match


def trust_pk(name: str) -> str:
    return f"TRUST#{name}"


@dataclass(frozen=True)
class TrustConfig:
    id: str
    type: str
    claims: dict[str, Any]
    permissions: tuple[str, ...]
    created: str = ""
    created_by: str = ""

    def public(self) -> dict[str, Any]:
        """What `npm trust list` reads."""
        return {"id": self.id, "type": self.type, "claims": self.claims, "permissions": list(self.permissions)}

    def item(self) -> dict[str, Any]:
        return {**self.public(), "created": self.created, "created_by": self.created_by}

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> TrustConfig:
        return cls(
            id=str(item["id"]), type=str(item["type"]), claims=dict(item.get("claims") or {}),
            permissions=tuple(item.get("permissions") or ()), created=str(item.get("created", "")),
            created_by=str(item.get("created_by", "")),
        )


def _value(key: str, value: Any) -> Any:
    """A claim's required value: a string, a list of strings, or `{file}` for the file claims."""
    if isinstance(value, str) and 0 < len(value) <= MAX_VALUE:
        return value
    if key in FILE_CLAIMS and isinstance(value, dict) and set(value) == {"file"}:
        file = value["file"]
        if isinstance(file, str) and 0 < len(file) <= MAX_VALUE and "/" not in file and "@" not in file:
            return {"file": file}
        raise BadRequest(f"claims.{key}.file must be a file name (no path)")
    if isinstance(value, list) and 0 < len(value) <= MAX_LIST and all(
        isinstance(v, str) and 0 < len(v) <= MAX_VALUE for v in value
    ):
        return list(value)
    raise BadRequest(f"claims.{key} must be a non-empty string or list of strings")


def parse_config(raw: Any, settings: TrustedPublishingConfig, *, user: str) -> TrustConfig:
    """One configuration of a `POST /-/package/{name}/trust` body; 400 with the reason otherwise."""
    if not isinstance(raw, dict) or set(raw) - {"type", "claims", "permissions"}:
        raise BadRequest("Invalid trusted publisher configuration: give type, claims and permissions")
    kind, claims, permissions = raw.get("type"), raw.get("claims"), raw.get("permissions")
    preset = settings.preset_of(kind) if isinstance(kind, str) else None
    if preset is None:
        known = ", ".join(sorted(settings.types())) or "none: configure trusted_publishing.issuers"
        raise BadRequest(f"Invalid trusted publisher configuration: type {kind!r} is not an issuer here ({known})")
    if not isinstance(claims, dict) or not 0 < len(claims) <= MAX_CLAIMS:
        raise BadRequest(f"Invalid trusted publisher configuration: claims must be 1 to {MAX_CLAIMS} values")
    required, optional = PRESET_CLAIMS.get(preset, ((), ()))
    missing = [c for c in required if c not in claims]
    extra = [c for c in claims if c not in required + optional] if preset != "generic" else []
    if missing or extra:
        raise BadRequest(
            f"Invalid trusted publisher configuration: {kind} needs {', '.join(required)}"
            + (f" and may have {', '.join(optional)}" if optional else "")
        )
    if not isinstance(permissions, list) or not permissions or set(permissions) - set(PERMISSIONS):
        raise BadRequest(f"Invalid trusted publisher configuration: permissions are some of {', '.join(PERMISSIONS)}")
    return TrustConfig(
        id=str(uuid.uuid4()), type=kind, claims={str(k): _value(str(k), v) for k, v in claims.items()},
        permissions=tuple(p for p in PERMISSIONS if p in permissions), created=now_iso(), created_by=user,
    )


async def trust_configs(db: RegistryDatabase, name: str) -> list[TrustConfig]:
    """The package's configurations, oldest first."""
    items = [TrustConfig.of(item) async for _, item in db.query(trust_pk(name))]
    return sorted(items, key=lambda c: (c.created, c.id))


async def add_configs(db: RegistryDatabase, name: str, new: list[TrustConfig]) -> list[TrustConfig]:
    """Store `new` (all or, on a refusal, none); 409 for a copy of one it has, or past MAX_CONFIGS."""
    have = await trust_configs(db, name)
    seen = {(c.type, repr(sorted(c.claims.items()))) for c in have}
    for config in new:
        key = (config.type, repr(sorted(config.claims.items())))
        if key in seen:
            raise ConflictError("trusted publisher config already exists for the package. Please delete and re-create.")
        seen.add(key)
    if len(have) + len(new) > MAX_CONFIGS:
        raise ConflictError(f"a package has at most {MAX_CONFIGS} trusted publisher configurations")
    written: list[TrustConfig] = []
    try:
        for config in new:
            await db.put(trust_pk(name), config.id, config.item(), if_absent=True)
            written.append(config)
    except BaseException:
        for config in written:  # all or nothing
            await _forget(db, name, config.id)
        raise
    return new


async def remove_config(db: RegistryDatabase, name: str, config_id: str) -> None:
    try:
        uuid.UUID(config_id)
    except ValueError:
        raise BadRequest("Invalid trusted publisher config id format") from None
    try:
        await db.get(trust_pk(name), config_id)
    except NotFound:
        raise NotFoundError("Trusted publisher configuration not found for the package") from None
    await _forget(db, name, config_id)


async def _forget(db: RegistryDatabase, name: str, config_id: str) -> None:
    try:
        await db.delete(trust_pk(name), config_id)
    except NotFound:
        pass


def _file_of(ref: str, prefix: str) -> str | None:
    """`publish.yml` from `{prefix}publish.yml@refs/heads/main`; None when `ref` has another prefix."""
    path, at, _ = ref.partition("@")
    if not at or not path.lower().startswith(prefix.lower()):
        return None
    return path[len(prefix):]


def _claim_matches(preset: str, key: str, want: Any, got: Any, claims: dict[str, Any]) -> bool:
    if isinstance(want, dict):  # {file}: the workflow / pipeline file of the same repository
        owner = claims.get("repository" if key == "workflow_ref" else "project_path")
        if not isinstance(got, str) or not isinstance(owner, str):
            return False
        if key == "workflow_ref":
            return _file_of(got, f"{owner}/.github/workflows/") == want["file"]
        host, _, path = got.partition("/")
        return bool(host) and _file_of(path, f"{owner}//") == want["file"]
    if isinstance(want, list):
        have = got if isinstance(got, list) else [got]
        return all(w in have for w in want)
    if preset == "github" and key == "repository":
        return isinstance(got, str) and got.lower() == want.lower()
    return isinstance(got, str) and got == want


def matches(config: TrustConfig, issuer: Issuer, token: Mapping[str, Any]) -> bool:
    """Whether an id token of `issuer` (its verified claims) satisfies `config`."""
    if not issuer.serves(config.type):
        return False
    return all(
        _claim_matches(issuer.preset, key, want, issuer.claim(token, key), config.claims)
        for key, want in config.claims.items()
    )
