"""A fault-injecting reverse proxy between tarhold and an S3 / DynamoDB server.

The storage fault tests point a real `tarhold serve` at this proxy instead of
moto. It forwards every request faithfully (method, raw path and query,
headers with the original Host, so a SigV4 signature stays valid; body bytes
as sent; the answer's status, headers and bytes as moto sent them) and
answers a configurable fraction of them with a fault instead:

- `internal`: S3 `500 InternalError` (XML) / DynamoDB `500 InternalServerError` (JSON);
- `slowdown`: S3 `503 SlowDown`;
- `throttle`, `provisioned`: DynamoDB `400 ThrottlingException` and
  `ProvisionedThroughputExceededException` (`application/x-amz-json-1.0`);
- `reset`: the connection is reset (SO_LINGER 0, then abort: an RST);
- `stall`: the request is held past the client's timeouts, then reset.

Bodies are shaped as the services send them (botocore parses the code from
them, and decides on retries by it). A request is DynamoDB when it is a POST
with an `X-Amz-Target: DynamoDB_...` header, S3 otherwise.

Faults happen before forwarding by default, so storage never sees a faulted
request; `FaultPlan(after_forward=True)` resets the connection after moto
handled it instead (the write happened, the answer is lost).

The proxy runs on its own event loop in a daemon thread on 127.0.0.1, port 0;
the test changes the plan at any time (`proxy.plan = FaultPlan(...)`) and
reads what was injected (`proxy.injected`, `proxy.seen`). Draws come from one
seeded Random, so a run with one request at a time repeats exactly; with
concurrent requests the order of draws follows the order of arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

HOST = "127.0.0.1"
S3, DYNAMODB = "s3", "dynamodb"
INTERNAL, SLOWDOWN, THROTTLE, PROVISIONED, RESET, STALL = (
    "internal", "slowdown", "throttle", "provisioned", "reset", "stall",
)
KINDS: dict[str, frozenset[str]] = {
    S3: frozenset({INTERNAL, SLOWDOWN, RESET, STALL}),
    DYNAMODB: frozenset({INTERNAL, THROTTLE, PROVISIONED, RESET, STALL}),
}
ERROR_KINDS = frozenset({INTERNAL, SLOWDOWN, THROTTLE, PROVISIONED})
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "content-length", "expect",
})
# The client must not add or change anything it would otherwise add itself.
NO_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})

S3_ERRORS = {
    INTERNAL: (500, "InternalError", "We encountered an internal error. Please try again."),
    SLOWDOWN: (503, "SlowDown", "Please reduce your request rate."),
}
DYNAMODB_ERRORS = {
    INTERNAL: (500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error"),
    THROTTLE: (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException",
               "Rate of requests exceeds the allowed throughput."),
    PROVISIONED: (400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                  ("The level of configured provisioned throughput for the table was exceeded."
                   " Consider increasing your provisioning level with the UpdateTable API.")),
}


@dataclass(frozen=True)
class FaultPlan:
    """Which requests fail, and how: `rate` of those matching `targets`, `methods` and `path_contains`."""

    rate: float = 0.0
    kinds: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset({S3, DYNAMODB})
    methods: frozenset[str] | None = None  # HTTP methods eligible; None: all
    path_contains: str | None = None  # only paths with this in them (S3 keys: "package.json")
    operations: frozenset[str] | None = None  # DynamoDB operations eligible ("UpdateItem"); None: all
    stall_seconds: float = 30.0
    after_forward: bool = False  # reset after moto answered instead of before

    def pick(
        self, rng: random.Random, target: str, method: str, path: str = "", operation: str = ""
    ) -> str | None:
        """The fault for one request, or None to forward it."""
        if target not in self.targets or (self.methods is not None and method not in self.methods):
            return None
        if self.path_contains is not None and self.path_contains not in path:
            return None
        if self.operations is not None and target == DYNAMODB and operation not in self.operations:
            return None
        kinds = sorted(self.kinds & KINDS[target])
        if not kinds or rng.random() >= self.rate:
            return None
        return rng.choice(kinds)


OFF = FaultPlan()


def target_of(request: web.BaseRequest) -> str:
    """DynamoDB's JSON protocol: a POST naming its operation in X-Amz-Target."""
    if request.method == "POST" and request.headers.get("X-Amz-Target", "").startswith("DynamoDB"):
        return DYNAMODB
    return S3


def error_response(target: str, kind: str, method: str) -> web.Response:
    """An error answer shaped as the service sends it (HEAD answers carry no body)."""
    request_id = uuid.uuid4().hex.upper()[:16]
    if target == S3:
        status, code, message = S3_ERRORS[kind]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
        ).encode()
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    else:
        status, type_, message = DYNAMODB_ERRORS[kind]
        body = orjson.dumps({"__type": type_, "message": message})
        headers = {
            "Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id,
            "x-amz-crc32": str(zlib.crc32(body)),  # botocore checks it on DynamoDB answers
        }
    return web.Response(status=status, body=None if method == "HEAD" else body, headers=headers)


def reset(request: web.BaseRequest) -> None:
    """Reset the connection: an RST, not a FIN, as a crashed or overloaded peer sends."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass
class FaultProxy:
    """The proxy in front of `upstream` (its base URL, scheme, host and port); `start()` it, `stop()` it."""

    upstream: str
    seed: int = 0
    port: int = 0
    _plan: FaultPlan = OFF
    _injected: Counter[tuple[str, str]] = field(default_factory=Counter)
    _seen: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.upstream = self.upstream.rstrip("/")
        self._rng = random.Random(self.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._release: asyncio.Event | None = None

    # -- control, from the test's thread ------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def plan(self) -> FaultPlan:
        with self._lock:
            return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """Take effect for the next request; requests stalled so far are let go (reset)."""
        with self._lock:
            self._plan = plan
        if self._ready.is_set():
            self._loop.call_soon_threadsafe(self._release_stalls)

    @property
    def injected(self) -> Counter[tuple[str, str]]:
        """Faults injected so far, by (target, kind)."""
        with self._lock:
            return Counter(self._injected)

    @property
    def seen(self) -> Counter[str]:
        """Requests received so far, by target."""
        with self._lock:
            return Counter(self._seen)

    def total_injected(self, *kinds: str) -> int:
        return sum(n for (_, kind), n in self.injected.items() if not kinds or kind in kinds)

    def through(self, section: Mapping[str, Any]) -> dict[str, Any]:
        """A `store: aws-s3-storage:` section with its endpoints pointed at this proxy."""
        routed = dict(section)
        for key in ("endpoint", "dynamoEndpoint"):
            if routed.get(key):
                routed[key] = self.url
        return routed

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if not self._ready.is_set():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    # -- the proxy, on its own loop ---------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        self._release = asyncio.Event()
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            connector=aiohttp.TCPConnector(limit=128),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self.port)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        self._release_stalls()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _release_stalls(self) -> None:
        if self._release is not None:
            self._release.set()
            self._release = asyncio.Event()

    def _draw(self, request: web.BaseRequest, target: str) -> tuple[FaultPlan, str | None]:
        operation = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        with self._lock:
            plan = self._plan
            kind = plan.pick(self._rng, target, request.method, request.path, operation)
            self._seen[target] += 1
            if kind is not None:
                self._injected[(target, kind)] += 1
            return plan, kind

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        target = target_of(request)
        plan, kind = self._draw(request, target)
        if kind == STALL:
            # Never answered, not even the "100 Continue" a client may wait for.
            release = self._release
            assert release is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), plan.stall_seconds)
            if not plan.after_forward:
                reset(request)
                return web.Response(status=599)  # never sent: the connection is gone
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as S3 does
        try:
            body = await request.read()
        except ConnectionResetError:  # the client gave up
            return web.Response(status=599)
        if kind in ERROR_KINDS:
            return error_response(target, kind, request.method)
        if kind == RESET and not plan.after_forward:
            reset(request)
            return web.Response(status=599)
        answer = await self._forward(request, body)
        if kind in (RESET, STALL):  # after_forward: moto did the work, the answer is lost
            reset(request)
        return answer

    async def _forward(self, request: web.BaseRequest, body: bytes) -> web.StreamResponse:
        assert self._session is not None
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP
        )  # Host stays as the client sent (and signed) it
        url = URL(self.upstream + request.raw_path, encoded=True)
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body or None,
                allow_redirects=False, skip_auto_headers=NO_AUTO_HEADERS,
            ) as upstream:
                data = await upstream.read()
                status, raw = upstream.status, upstream.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.Response(status=502, text=f"fault proxy: upstream failed: {exc!r}")
        kept = CIMultiDict((k, v) for k, v in raw.items() if k.lower() not in HOP_BY_HOP)
        if request.method == "HEAD":
            # No body, but the Content-Length of the object (HeadObject reads it).
            answer = web.StreamResponse(status=status, headers=kept)
            if "Content-Length" in raw:
                answer.content_length = int(raw["Content-Length"])
            await answer.prepare(request)  # type: ignore[arg-type]
            await answer.write_eof()
            return answer
        return web.Response(status=status, headers=kept, body=data)


@contextlib.contextmanager
def fault_proxy(upstream: str, seed: int = 0) -> Iterator[FaultProxy]:
    """A started FaultProxy in front of `upstream`, stopped at the end."""
    proxy = FaultProxy(upstream, seed).start()
    try:
        yield proxy
    finally:
        proxy.stop()
