"""The tarball redirect offload rows: tarhold on S3 with `tarball_redirect: presigned`
answers a tarball GET with a 307 to a presigned URL, so the bytes bypass it.

Two tarholds on one bucket and table (bench/aws_stack.py: SeaweedFS + DynamoDB
Local, or moto when those are not installed): one redirecting, one streaming
the bytes (the reference column). wrk follows no redirect, so the redirecting
one is measured in 307 answers per second and CPU per answer, beside tarballs
served per second by the streaming one. Before measuring, each tarball is
checked once: the 307's Location is on 127.0.0.1, and urllib, following the
redirect, gets the upstream's exact bytes.

A mixin of `bench.run.Bench`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.aws_stack import SEAWEED_MISSING, AwsStack
from bench.load import LoadResult
from bench.report import Row, median
from bench.scenarios import SCENARIOS, Scenario, fetch, log
from bench.servers import Server, start_tarhold

REDIRECT_SCENARIOS = ("small_tarball", "large_tarball")
STORED_WITHIN = 15.0  # seconds for a tarball the streaming instance fetched to be in the bucket
# An answer with no more bytes than this per request was a redirect, not the tarball.
REDIRECT_BYTES = 2048


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


def first_answer(url: str) -> tuple[int, str | None]:
    """The status and Location of a GET of `url`, the redirect not followed."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=30) as response:
            response.read()
            return response.status, None
    except urllib.error.HTTPError as answer:
        answer.read()
        return answer.code, answer.headers.get("Location")


def redirect_problem(status: int, location: str | None, followed: bytes, expected: bytes) -> str | None:
    """What is wrong with a redirect answer (None: a 307 to 127.0.0.1 serving the expected bytes)."""
    if status != 307:
        return f"answered {status}, not 307"
    if not location:
        return "a 307 without a Location"
    if urlsplit(location).hostname != "127.0.0.1":
        return f"Location not on 127.0.0.1: {urlsplit(location).hostname}"
    if followed != expected:
        return f"the redirect served {len(followed)} bytes, not the tarball's {len(expected)}"
    return None


def bytes_per_answer(result: LoadResult) -> float:
    return result.bytes_per_second * result.seconds / result.requests if result.requests else 0.0


class RedirectRows:
    """`redirect_rows`: 307s to presigned URLs against streamed tarballs, for `Bench`."""

    settings: Any
    workdir: Path
    upstream: Server
    notes: list[str]
    rows: list[Row]
    raw: dict[str, Any]
    started: list[Server]
    keep: Callable[[Server], Server]
    guarded: Callable[[str, Callable[[], None]], None]
    measure: Callable[..., tuple[LoadResult, float | None]]
    aws_stack: Callable[..., AwsStack | None]
    aws_section: Callable[[AwsStack, str, str], dict[str, Any]]

    def redirect_rows(self) -> None:
        try:
            stack = self.aws_stack(moto_fallback=True)
        except Exception as exc:  # noqa: BLE001 - a server that does not start skips the rows
            self.notes.append(f"redirect rows skipped: the S3 server did not start ({exc!r})"[:300])
            return
        if stack is None:
            self.notes.append(f"redirect rows skipped: {SEAWEED_MISSING}, or moto")
            return
        section = self.aws_section(stack, "tarhold-redirect", "redirect/")
        streaming = self.keep(start_tarhold(self.workdir / "tarhold-stream", self.workdir / "tarhold-stream" / "unused",
                                            self.upstream.url, name="tarhold-s3-stream", store_section=section))
        redirecting = self.keep(start_tarhold(
            self.workdir / "tarhold-redirect", self.workdir / "tarhold-redirect" / "unused", self.upstream.url,
            name="tarhold-s3-redirect", store_section={**section, "tarball_redirect": "presigned"}))
        self.raw["redirect"] = {"s3": stack.kind}
        try:
            for scenario in SCENARIOS:
                if scenario.key in REDIRECT_SCENARIOS:
                    self.guarded(f"{scenario.label} redirect",
                                 lambda scenario=scenario: self.redirect_row(scenario, redirecting, streaming,
                                                                             stack.kind))
        finally:
            for server in (redirecting, streaming):
                self.started.remove(server)
                server.stop()

    def check_redirect(self, scenario: Scenario, redirecting: Server, streaming: Server) -> str:
        """The tarball through the streaming instance (which stores it in the bucket); then
        the redirecting one's 307 and, followed by urllib, its bytes. Returns the Location's host."""
        expected = fetch(self.upstream.url + scenario.path)
        if fetch(streaming.url + scenario.path) != expected:
            raise RuntimeError(f"{scenario.path}: the streaming tarhold served other bytes than the upstream")
        deadline = time.monotonic() + STORED_WITHIN
        status, location = first_answer(redirecting.url + scenario.path)
        while status != 307 and time.monotonic() < deadline:  # the bucket write may trail the answer
            time.sleep(0.5)
            status, location = first_answer(redirecting.url + scenario.path)
        followed = fetch(redirecting.url + scenario.path)  # urllib follows the 307
        problem = redirect_problem(status, location, followed, expected)
        if problem is not None:
            raise RuntimeError(f"{scenario.path}: {problem}")
        return str(urlsplit(location).netloc)

    def redirect_row(self, scenario: Scenario, redirecting: Server, streaming: Server, kind: str) -> None:
        label = f"{scenario.label}, S3 presigned 307 (ref: streamed)"
        where = self.check_redirect(scenario, redirecting, streaming)
        log(f"{scenario.label}: 307 to {where}, the bytes there are the tarball's")
        rps: dict[str, list[float]] = {"redirect": [], "streamed": []}
        cpu: dict[str, list[float]] = {"redirect": [], "streamed": []}
        raw: dict[str, list[Any]] = {"redirect": [], "streamed": []}
        notes: list[str] = []
        pair = [("redirect", redirecting), ("streamed", streaming)]
        for run in range(self.settings.runs):
            # Each goes first every other run, so neither always follows the other's load.
            for name, target in pair if run % 2 == 0 else pair[::-1]:
                log(f"{label}: {target.name}, run {run + 1}/{self.settings.runs}")
                result, per_request = self.measure(target, scenario.path, {}, scenario=scenario)
                rps[name].append(result.rps)
                if per_request is not None:
                    cpu[name].append(per_request)
                raw[name].append({**result.__dict__, "rps": result.rps, "cpu_ms_per_request": per_request})
                if result.errors or not result.requests:
                    notes.append(f"{target.name}: {result.errors} errors of {result.requests}")
                if name == "redirect" and bytes_per_answer(result) > REDIRECT_BYTES:
                    notes.append(f"{target.name} sent {bytes_per_answer(result):,.0f} bytes per answer:"
                                 " not (only) redirects")
        self.raw["redirect"][scenario.key] = raw
        notes.insert(0, f"on {kind}; tarballs served per second in the reference column")
        self.rows.append(Row(label, "req/s", median(rps["redirect"]), None, median(rps["streamed"]), "streamed",
                             note="; ".join(notes)))
        self.rows.append(Row("  server CPU per request", "ms", median(cpu["redirect"]), None,
                             median(cpu["streamed"]), "streamed"))
