"""Packuments for the packument unit tests: what `npm publish` sends, and the
documents a publish makes, built through the real `apply_publish`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest

from registry.domain.errors import PublishError
from registry.domain.names import tarball_filename
from registry.domain.packument import (
    AttachmentInfo,
    apply_publish,
)
from registry.domain.packument_views import (
    rewrite_tarball_urls,
)

BASE = "http://registry.test"
T0 = "2024-01-01T00:00:00.000Z"
T1 = "2024-01-02T00:00:00.000Z"
T2 = "2024-01-03T00:00:00.000Z"


def tarball_url(name: str, filename: str) -> str:
    return f"{BASE}/{name}/-/{filename}"


def attachment_for(name: str, version: str, data: bytes, **extra: Any) -> AttachmentInfo:
    return AttachmentInfo(
        filename=tarball_filename(name, version),
        length=len(data),
        sha1=hashlib.sha1(data).hexdigest(),
        integrity="sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        **extra,
    )


def publish_body(
    name: str, version: str, data: bytes, *, tags: dict[str, str] | None = None, **manifest: Any
) -> dict[str, Any]:
    """What `npm publish` PUTs (after the caller decoded the attachment's data)."""
    info = attachment_for(name, version, data)
    full = {
        "name": name,
        "version": version,
        "description": f"{name} at {version}",
        "dist": {
            "shasum": info.sha1,
            "integrity": info.integrity,
            "tarball": f"http://elsewhere.example.com/{name}-{version}.tgz",
        },
        **manifest,
    }
    return {
        "_id": name,
        "name": name,
        "description": full["description"],
        "dist-tags": {"latest": version} if tags is None else tags,
        "versions": {version: full},
        "readme": f"# {name} {version}",
        "access": None,
        "maintainers": [{"name": "alice", "email": "alice@example.com"}],
        "_attachments": {
            f"{name}-{version}.tgz": {"content_type": "application/octet-stream", "length": len(data)},
        },
    }


def publish(
    current: dict[str, Any] | None, name: str, version: str, *, now: str = T0, user: str = "alice", **kw: Any
) -> dict[str, Any]:
    data = f"{name}@{version}".encode()
    body = publish_body(name, version, data, **kw)
    doc, published = apply_publish(
        current, body, name=name, user=user, now=now, tarball_url=tarball_url,
        attachment=attachment_for(name, version, data, file_count=2, unpacked_size=300),
    )
    assert published == version
    return doc


def refused(status: int, fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(PublishError) as caught:
        fn(*args, **kwargs)
    assert caught.value.status == status, caught.value.message
    return caught.value.message


def as_served(doc: dict[str, Any]) -> dict[str, Any]:
    """What `npm` gets from GET ?write=true and sends back, tarball URLs rewritten."""
    return copy.deepcopy(rewrite_tarball_urls(doc, "https://public.example.com"))


def three_versions() -> dict[str, Any]:
    """left-pad 1.0.0, 1.1.0 (latest) and 2.0.0-beta.1 (beta)."""
    doc = publish(None, "left-pad", "1.0.0")
    doc = publish(doc, "left-pad", "1.1.0", now=T1)
    doc = publish(doc, "left-pad", "2.0.0-beta.1", now=T1, tags={"beta": "2.0.0-beta.1"})
    return doc
