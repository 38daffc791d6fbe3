"""What the S3 and DynamoDB backends share: they read the same config section
through the same SDK.

Option parsing, aiobotocore client creation (`AwsOptions`, `AwsClient`) and the
translation of SDK and connection errors into StorageError.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from .base import ConfigError, StorageError

CONFIG_SECTION = "store.aws-s3-storage"


def opt_str(section: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    """A string option; None (or "") when absent, ConfigError when mistyped."""
    value = section.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{where}.{key}", "is required and must be a non-empty string")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}", "must be a string")
    return value


def opt_bool(section: Mapping[str, Any], key: str, where: str) -> bool:
    """A boolean option; the strings "true"/"false" count, as an env var gives them."""
    value = section.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}", "must be true or false")
    return value


@dataclass(frozen=True)
class AwsOptions:
    """Where and as whom an aiobotocore client connects."""

    region: str | None = None
    endpoint: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    proxy: str | None = None

    @classmethod
    def from_section(cls, section: Mapping[str, Any], where: str = CONFIG_SECTION) -> AwsOptions:
        key_id = opt_str(section, "accessKeyId", where)
        secret = opt_str(section, "secretAccessKey", where)
        token = opt_str(section, "sessionToken", where)
        if (key_id is None) != (secret is None):
            missing = "accessKeyId" if key_id is None else "secretAccessKey"
            raise ConfigError(f"{where}.{missing}", "accessKeyId and secretAccessKey go together")
        if token is not None and key_id is None:
            raise ConfigError(f"{where}.sessionToken", "needs accessKeyId and secretAccessKey")
        return cls(
            region=opt_str(section, "region", where),
            endpoint=opt_str(section, "endpoint", where),
            access_key_id=key_id,
            secret_access_key=secret,
            session_token=token,
            proxy=opt_str(section, "proxy", where),
        )

    def create_client(self, service: str, **config: Any) -> Any:
        """The (not yet entered) async context manager of an aiobotocore client.

        `config` adds botocore Config options (e.g. `s3={...}`).
        """
        session = get_session()
        # A local endpoint (moto, SeaweedFS, DynamoDB Local) still needs some
        # region to sign with; on AWS the default chain decides.
        region = self.region or session.get_config_variable("region")
        if region is None and self.endpoint:
            region = "us-east-1"
        config = {
            "connect_timeout": 10,
            "read_timeout": 60,
            "retries": {"max_attempts": 3, "mode": "standard"},
            "max_pool_connections": 64,
            **config,
        }
        if self.proxy:
            config["proxies"] = {"http": self.proxy, "https": self.proxy}
        kwargs: dict[str, Any] = {"region_name": region, "config": AioConfig(**config)}
        if self.endpoint:
            kwargs["endpoint_url"] = self.endpoint
        if self.access_key_id:
            # Only explicit keys are passed: otherwise the default chain
            # (env, profile, web identity, instance role) applies.
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
            if self.session_token:
                kwargs["aws_session_token"] = self.session_token
        return session.create_client(service, **kwargs)


def client_error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def client_error_status(exc: BaseException) -> int | None:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn SDK and connection errors into StorageError naming the operation."""
    try:
        yield
    except StorageError:
        raise
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", "")
        raise StorageError(f"{what}: {client_error_code(exc)} {message}".rstrip()) from exc
    except (BotoCoreError, aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        raise StorageError(f"{what}: {exc}") from exc


class AwsClient:
    """Owns one aiobotocore client: `open()` creates it, `close()` releases it."""

    service = ""

    def __init__(self, aws: AwsOptions) -> None:
        self.aws = aws
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None

    def client_config(self) -> dict[str, Any]:
        return {}

    async def open(self) -> None:
        """Create the client; call once before any other method."""
        if self._client is not None:
            return
        stack = contextlib.AsyncExitStack()
        with translate(f"creating the {self.service} client"):
            manager = self.aws.create_client(self.service, **self.client_config())
            self._client = await stack.enter_async_context(manager)
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with translate(f"closing the {self.service} client"):
                await stack.aclose()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StorageError(f"the {self.service} client is not open")
        return self._client


__all__ = [
    "CONFIG_SECTION",
    "AwsClient",
    "AwsOptions",
    "client_error_code",
    "client_error_status",
    "opt_bool",
    "opt_str",
    "translate",
]
