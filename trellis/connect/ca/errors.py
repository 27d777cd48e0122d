"""Errors of the CA: bad certificates and keys, bad configuration, back-pressure."""

from __future__ import annotations

from trellis.errors import InvalidInput, TooManyRequests, TrellisError


class InvalidCertificate(InvalidInput):
    """A PEM, key or certificate that cannot be used; the message names what and why.

    Where cryptography raises, the error is converted here, once (STYLE §4).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, None, reason, message=f"{field}: {reason}")


class InvalidCAConfig(InvalidInput):
    """A CA configuration that is refused; nothing was changed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, None, reason, message=f"{field}: {reason}" if field else reason)


class ConnectDisabled(InvalidInput):
    def __init__(self) -> None:
        super().__init__("connect.enabled", False, message="Connect must be enabled in order to use this endpoint")


class RateLimited(TooManyRequests):
    """The signing path is over CSRMaxPerSecond or CSRMaxConcurrent (HTTP 429)."""

    def __init__(self, retry_after: float, why: str) -> None:
        super().__init__(f"rate limited: {why}", retry_after)


class CANotReady(TrellisError):
    """The CA has not been initialised yet (a server still starting)."""

    def __init__(self) -> None:
        super().__init__("the Connect CA is not initialised yet")
