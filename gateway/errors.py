"""One error tree for the whole gateway, and the one table from gRPC code to HTTP status.

Every layer raises a :class:`GatewayError` subclass whose ``code`` is a gRPC-style status
code; the HTTP edge turns it into ``{"error": message}`` with :func:`http_status`. The
mapping is TF Serving's (``tensorflow_serving/util/net_http`` / ``http_rest_api_handler``).
"""

from __future__ import annotations

import enum

__all__ = [
    "BackendUnavailable",
    "Code",
    "DeadlineExceeded",
    "GatewayError",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unimplemented",
    "UsageError",
    "http_status",
]


class Code(enum.IntEnum):
    """gRPC status codes (same numbers as ``grpc.StatusCode`` and ``google.rpc.Code``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


_HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
}


def http_status(code: Code | int) -> int:
    """HTTP status TF Serving answers for a gRPC status code (500 for the rest)."""
    try:
        return _HTTP_STATUS.get(Code(code), 500)
    except ValueError:
        return 500


class GatewayError(Exception):
    """Base of every error the gateway reports to a client; ``code`` picks the status."""

    code: Code = Code.INTERNAL
    http_override: int | None = None

    def __init__(self, message: str, code: Code | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def http_status(self) -> int:
        return self.http_override or http_status(self.code)


class InvalidInput(GatewayError):
    """Malformed request: bad JSON, wrong types or shapes, unknown inputs."""

    code = Code.INVALID_ARGUMENT


class NotFound(GatewayError):
    code = Code.NOT_FOUND


class Unauthenticated(GatewayError):
    code = Code.UNAUTHENTICATED


class PermissionDenied(GatewayError):
    code = Code.PERMISSION_DENIED


class ResourceExhausted(GatewayError):
    code = Code.RESOURCE_EXHAUSTED


class PayloadTooLarge(GatewayError):
    """Body over the configured limit: HTTP 413 (no gRPC code maps to it)."""

    code = Code.RESOURCE_EXHAUSTED
    http_override = 413


class Unimplemented(GatewayError):
    code = Code.UNIMPLEMENTED


class BackendUnavailable(GatewayError):
    code = Code.UNAVAILABLE


class DeadlineExceeded(GatewayError):
    code = Code.DEADLINE_EXCEEDED


class UsageError(Exception):
    """A bad command-line argument found after parsing: ``tfgw`` prints it on one line and
    exits with status 2 (not a client-facing error, so not a ``GatewayError``)."""
