"""Small helpers of the auth tests: an error message, a web login form's path."""

from __future__ import annotations

from typing import Any


async def error_of(response: Any) -> str:
    return str((await response.json())["error"])


def form_action(login_url: str) -> str:
    return "/" + login_url.split("/", 3)[3]
