"""One error hierarchy: every expected failure is a RegistryError with a status.

The error middleware renders them as `{"error": message}`, which is what the
npm CLI prints after `npm ERR!`.
"""

from __future__ import annotations

from collections.abc import Mapping


class RegistryError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(RegistryError):
    status, code = 400, "bad_request"


class Unauthorized(RegistryError):
    status, code = 401, "unauthorized"


class Forbidden(RegistryError):
    status, code = 403, "forbidden"


class NotFoundError(RegistryError):
    status, code = 404, "not_found"


class MethodNotAllowed(RegistryError):
    status, code = 405, "method_not_allowed"


class ConflictError(RegistryError):
    status, code = 409, "conflict"


class PayloadTooLarge(RegistryError):
    status, code = 413, "payload_too_large"


class Unprocessable(RegistryError):
    status, code = 422, "unprocessable"


class TooManyRequests(RegistryError):
    status, code = 429, "too_many_requests"


class BadGateway(RegistryError):
    status, code = 502, "bad_gateway"


class ServiceUnavailable(RegistryError):
    status, code = 503, "service_unavailable"


class PublishError(RegistryError):
    """A change the registry refuses, raised by the pure validators with its HTTP status.

    The error middleware renders it like any RegistryError, so a handler
    never maps it: `status` is what npm sees, `message` what it prints.
    """

    code = "refused"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
