"""What the mirror raises when no uplink can give a package: it says why, not how
to answer. The registry's HTTP layer maps these to its own errors (503 and 502)."""

from __future__ import annotations


class MirrorError(Exception):
    """No uplink could answer for a package; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UplinkUnavailable(MirrorError):
    """Every uplink that could answer is behind an open circuit: try again later."""


class UplinkBadGateway(MirrorError):
    """The uplinks were asked and failed (unreachable, an error status, a bad document)."""
