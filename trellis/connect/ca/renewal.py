"""When a leaf is renewed (pure: the clock and the random draws come in).

Rules (Consul's agent leaf cache, ``agent/leafcert``):
1. A leaf is renewed at a random point between ``after`` and ``before`` (default 60%
   and 90%) of its lifetime, counted from the moment it was issued (not from its
   backdated NotBefore, so short test TTLs behave like long ones).
2. When the active root's signing key changes, every leaf is re-issued at a random
   point within ``root_change_jitter`` (default 30 s), so that a rotation does not
   send every CSR to the server at the same instant.
3. A refused signing (rate limited) is retried after the server's Retry-After plus
   up to as much again at random; other failures back off exponentially to a cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from trellis.errors import InvalidInput

MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    after: float = 0.6
    before: float = 0.9
    root_change_jitter: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.after <= self.before <= 1:
            raise InvalidInput("connect.leaf_renew_after", self.after,
                               message="connect.leaf_renew_after must be <= connect.leaf_renew_before, "
                                       "both between 0 and 1")
        if self.root_change_jitter < 0:
            raise InvalidInput("connect.root_change_jitter", self.root_change_jitter, "must not be negative")


def renew_at(policy: RenewalPolicy, issued_at: float, valid_before: float, draw: float) -> float:
    """Rule 1; ``draw`` is uniform in [0, 1)."""
    lifetime = max(0.0, valid_before - issued_at)
    return issued_at + lifetime * (policy.after + draw * (policy.before - policy.after))


def root_change_at(policy: RenewalPolicy, now: float, draw: float) -> float:
    """Rule 2; ``draw`` is uniform in [0, 1)."""
    return now + draw * policy.root_change_jitter


def retry_at(now: float, failures: int, retry_after: float | None, draw: float) -> float:
    """Rule 3; ``failures`` counts consecutive failures (1 for the first)."""
    if retry_after is not None:
        return now + retry_after * (1 + draw)
    return now + min(MAX_BACKOFF, 0.5 * 2 ** min(failures - 1, 16)) * (0.5 + draw / 2)
