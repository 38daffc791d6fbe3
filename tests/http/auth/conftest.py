"""The auth tests' app: conftest's `make_client` with auth installed and tarhold's access logger."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from registry.config import parse_config
from registry.http.app import SERVER_KWARGS, create_app
from registry.http.routes_auth import install
from tests.http.conftest import MakeClient


@pytest.fixture
def make_client(aiohttp_client: Any, storage_config: dict[str, Any]) -> MakeClient:
    """conftest's make_client, with auth installed and tarhold's own access logger.

    TestServer drops the server_kwargs aiohttp_client hands it, so the server
    is started here with SERVER_KWARGS: the log tests then see the lines
    tarhold writes in production, not aiohttp's default access log.
    """

    async def make(**options: Any) -> TestClient:
        config = parse_config({**storage_config, "log": {"level": "debug"}, **options})
        app = create_app(config)
        install(app)  # a no-op once create_app installs auth itself
        server = TestServer(app)
        await server.start_server(**SERVER_KWARGS)  # type: ignore[arg-type]
        client: TestClient = await aiohttp_client(server)
        return client

    return make
