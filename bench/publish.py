"""Publishing small packages back to back, as `npm publish` sends them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tests.http.packages import publish_body

PASSWORD = "bench correct horse battery"


def _request(method: str, url: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    request.add_header("Content-Type", "application/json")
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def add_user(registry: str, name: str) -> str:
    """`npm adduser` over HTTP; the token."""
    body = {"_id": f"org.couchdb.user:{name}", "name": name, "password": PASSWORD, "type": "user",
            "roles": [], "email": f"{name}@example.com", "date": "2024-05-01T12:00:00.000Z"}
    status, answer = _request("PUT", f"{registry}/-/user/org.couchdb.user:{name}", body)
    if status != 201:
        raise RuntimeError(f"adduser {name}: {status} {answer}")
    return str(answer["token"])


def publish_many(registry: str, prefix: str, count: int) -> float:
    """Seconds to publish `count` new packages one after the other (bodies built beforehand)."""
    token = add_user(registry, f"{prefix}-publisher")
    bodies = [(f"{prefix}-pkg-{index}", publish_body(f"{prefix}-pkg-{index}", "1.0.0", base=registry))
              for index in range(count)]
    started = time.monotonic()
    for name, body in bodies:
        status, answer = _request("PUT", f"{registry}/{name}", body, token)
        if status not in (200, 201):
            raise RuntimeError(f"publish {name}: {status} {str(answer)[:300]}")
    return time.monotonic() - started
