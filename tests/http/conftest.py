"""The app over HTTP, on every backend: `make_client(**config)` and `client`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from registry.config import parse_config
from registry.http.app import SERVER_KWARGS, create_app
from registry.http.serving import ReplayingAppRunner
from tests.conftest import unique
from tests.support.aws_servers import AwsEndpoint, provision_aws
from tests.support.threaded_server import Server, serving, signed_up

from .users import add_user

MakeClient = Callable[..., Awaitable[TestClient]]

BACKENDS = ["embedded", "aws"]
AWS_BUCKET = "tarhold-http"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def storage_config(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> dict[str, Any]:
    """The storage part of a config: a fresh directory, or S3 + DynamoDB on the
    moto server with a fresh key prefix and a fresh table."""
    if backend == "embedded":
        return {"storage": str(tmp_path / "storage")}
    endpoint: AwsEndpoint = request.getfixturevalue("moto_server")
    section = {
        **endpoint.s3_section(AWS_BUCKET, unique("p") + "/"),
        **endpoint.dynamodb_section(unique("tarhold-http")),
    }
    await provision_aws(section)
    return {"store": {"aws-s3-storage": section}}

class ReplayingTestServer(TestServer):
    """The app as `tarhold serve` runs it: remembered anonymous reads are replayed
    ahead of the app (registry.http.fast_reads), so every test here meets them."""

    async def _make_runner(self, **kwargs: Any) -> ReplayingAppRunner:
        return ReplayingAppRunner(self.app, **kwargs)


@pytest.fixture
def make_client(aiohttp_client: Any, storage_config: dict[str, Any]) -> MakeClient:
    """Start an app on the test's storage; several calls share that storage."""

    async def make(**options: Any) -> TestClient:
        config = parse_config({**storage_config, "log": {"level": "debug"}, **options})
        # The access logger is a server option: start the server with it.
        server = ReplayingTestServer(create_app(config))
        await server.start_server(**SERVER_KWARGS)
        return await aiohttp_client(server)

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()


@pytest.fixture
async def alice(client: TestClient) -> str:
    """A registered user's token on the test's client."""
    return await add_user(client, "alice")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app on a real port in a thread of its own, for a module's synchronous property tests."""
    with serving(tmp_path_factory.mktemp("threaded") / "storage") as running:
        yield running


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    """A registered user's token on `server`."""
    return signed_up(server, "alice")
