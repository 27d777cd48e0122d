"""Whether the proxy is serving, as its plaintext ``/health`` answer reports it (pure).

Rule: the proxy serves while (1) it is not draining, (2) it holds a leaf certificate
that has not expired (``now`` is wall-clock epoch seconds, passed in), and (3) its
local service accepted a TCP connection just now (the shell tries, within
``local_connect_timeout_ms``). The first condition that fails is the reason given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Readiness:
    serving: bool
    reason: str = ""


def decide_readiness(*, draining: bool, leaf_valid_before: float | None, now: float,
                     local_service: str, local_reachable: bool) -> Readiness:
    """The rule above. ``leaf_valid_before`` is None when there is no leaf yet."""
    if draining:
        return Readiness(False, "the proxy is draining")
    if leaf_valid_before is None:
        return Readiness(False, "no leaf certificate yet")
    if leaf_valid_before <= now:
        expired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(leaf_valid_before))
        return Readiness(False, f"the leaf certificate expired at {expired}")
    if not local_reachable:
        return Readiness(False, f"the local service at {local_service} does not accept connections")
    return Readiness(True)
