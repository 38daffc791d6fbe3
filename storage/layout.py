"""The key layout every PackageStore shares, read backwards: from the folders
above a stored `package.json` to the package it belongs to.

`{storage folder}/{name}/package.json`, where the folder comes from the
matching `packages:` rule (see `base.StorageFolder`) and a scoped name is two
path segments, so a path alone can be read more than one way.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import StorageFolder

# A packument lies at most three folders deep: folder, @scope, name.
MAX_DEPTH = 3


def name_from_parts(parts: Sequence[str], folder: StorageFolder) -> str | None:
    """The package a `.../package.json` belongs to, from the directories above it.

    `[name]`, `[@scope, name]`, `[folder, name]`, `[folder, @scope, name]`;
    a guess is accepted only when the store's folder for it is that folder.
    """
    candidates: list[tuple[str, str]] = []
    if len(parts) == 1:
        candidates.append(("", parts[0]))
    elif len(parts) == 2:
        if parts[0].startswith("@"):
            candidates.append(("", "/".join(parts)))
        candidates.append((parts[0], parts[1]))
    elif len(parts) == 3 and parts[1].startswith("@"):
        candidates.append((parts[0], "/".join(parts[1:])))
    for where, name in candidates:
        if folder(name).strip("/") == where:
            return name
    return None


__all__ = ["MAX_DEPTH", "name_from_parts"]
