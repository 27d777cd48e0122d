"""The one error root and the shared vocabulary every subsystem subclasses.

Rule: messages are built from fields, never parsed back. Edges (api/, cli/, dns/)
map these by *type* to a status code, an exit code or an rcode.
"""

from __future__ import annotations

from typing import Any


class TrellisError(Exception):
    """Root of every error trellis raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(TrellisError):
    """A named thing does not exist (HTTP 404 where Consul 404s)."""


class Conflict(TrellisError):
    """The request clashes with existing state."""


class RevisionMismatch(Conflict):
    """A compare-and-swap lost: the key's revision moved."""


class InvalidInput(TrellisError):
    """Bad input from a user: names the field, the value and why.

    ``message`` may be given to reproduce Consul's exact wording; otherwise it is
    built from the fields.
    """

    def __init__(
        self, field: str = "", value: Any = None, reason: str = "", *, message: str = ""
    ) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        if not message:
            if field and value is not None:
                message = f"Invalid {field} {value!r}: {reason}" if reason else f"Invalid {field} {value!r}"
            elif field:
                message = f"Invalid {field}: {reason}" if reason else f"Invalid {field}"
            else:
                message = reason or "invalid input"
        super().__init__(message)


class PermissionDenied(TrellisError):
    """The authorizer said no."""


class Unavailable(TrellisError):
    """A dependency (the store, a peer) cannot answer now; retrying may help."""


class TooManyRequests(TrellisError):
    """Back-pressure: the caller should retry after ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
