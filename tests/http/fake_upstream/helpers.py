"""Small client helpers for the fake upstream's own tests."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import aiohttp
from yarl import URL

PREFIX = "/artifactory/api/npm/npm-remote"


async def get_json(client: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any]:
    async with client.get(URL(url, encoded=True), headers=headers) as response:
        return response.status, await response.json(content_type=None)


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
