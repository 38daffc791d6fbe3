"""Logging: a request id on every line of a request, pretty or JSON lines."""

from __future__ import annotations

import contextvars
import logging
import random
import re
import sys
import time
from collections.abc import Mapping

import orjson

from registry.config import LogConfig

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
REQUEST_ID_HEADER = "X-Request-Id"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_of(headers: Mapping[str, str]) -> str:
    """The client's X-Request-Id when it is a safe token, else a new id."""
    incoming = headers.get(REQUEST_ID_HEADER, "")
    if incoming and SAFE_REQUEST_ID.fullmatch(incoming):
        return incoming
    # Ids only correlate lines; they guard nothing, so no urandom call per request.
    return f"{random.getrandbits(64):016x}"


# `scheme://user:password@host`: an uplink URL may carry credentials, and an
# error message may quote the URL.
URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


class RequestIdFilter(logging.Filter):
    """Stamp the request id on every record; mask credentials in URLs of warnings and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        if record.levelno >= logging.WARNING:
            message = record.getMessage()
            if "@" in message and "://" in message:
                record.msg, record.args = URL_CREDENTIALS.sub(r"\1***@", message), None
        return True


class SecondStamps:
    """`strftime` of the current second, computed once a second, not once a line.

    Formatting the time was the largest part of an access line's cost under
    load (thousands of lines a second, all in the same few seconds).
    """

    def __init__(self, fmt: str, convert=time.localtime) -> None:  # type: ignore[no-untyped-def]
        self.fmt = fmt
        self.convert = convert
        self.second = -1
        self.text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self.second:
            self.text = time.strftime(self.fmt, self.convert(second))
            self.second = second
        return self.text


class PrettyFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(PRETTY)
        self._stamps = SecondStamps("%Y-%m-%d %H:%M:%S")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return f"{self._stamps(record.created)},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._stamps = SecondStamps("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": f"{self._stamps(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        for key in ("method", "path", "status", "bytes", "duration_ms", "user"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


PRETTY = "%(asctime)s %(levelname)-5s [%(request_id)s] %(name)s: %(message)s"


def configure_logging(config: LogConfig, stream=sys.stderr) -> None:  # type: ignore[no-untyped-def]
    """Install one handler on the root logger, replacing any earlier one."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if config.format == "json" else PrettyFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    # botocore logs credentials-resolution chatter at INFO; keep it at warnings.
    for noisy in ("botocore", "aiobotocore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(config.level, logging.WARNING))
