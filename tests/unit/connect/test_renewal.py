"""When leaves renew (trellis.connect.ca.renewal): pure arithmetic over draws in [0, 1)."""

from __future__ import annotations

import math

import pytest

from trellis.connect.ca import renewal
from trellis.connect.ca.renewal import RenewalPolicy
from trellis.errors import InvalidInput

ISSUED = 1_700_000_000.0
H = 3600.0
ALMOST_ONE = 1 - 1e-12
DEFAULT = RenewalPolicy()


def test_default_policy_is_consuls_window() -> None:
    assert (DEFAULT.after, DEFAULT.before, DEFAULT.root_change_jitter) == (0.6, 0.9, 30.0)


# --- renew_at ----------------------------------------------------------------------------------------
RENEW_CASES = {
    "draw_0_is_60_percent": (DEFAULT, 72 * H, 0.0, 0.6 * 72 * H),
    "draw_almost_1_is_90_percent": (DEFAULT, 72 * H, ALMOST_ONE, 0.9 * 72 * H),
    "draw_half_is_75_percent": (DEFAULT, 72 * H, 0.5, 0.75 * 72 * H),
    "short_ttl_scales_the_same": (DEFAULT, 100.0, 0.0, 60.0),
    "expired_at_issue_renews_now": (DEFAULT, 0.0, 0.7, 0.0),
    "valid_before_before_issue_renews_now": (DEFAULT, -H, 0.7, 0.0),
    "whole_lifetime_window_start": (RenewalPolicy(0.0, 1.0), 10 * H, 0.0, 0.0),
    "whole_lifetime_window_end": (RenewalPolicy(0.0, 1.0), 10 * H, ALMOST_ONE, 10 * H),
    "point_window": (RenewalPolicy(0.5, 0.5), 10 * H, 0.9, 5 * H),
}


@pytest.mark.parametrize(("policy", "lifetime", "draw", "offset"), list(RENEW_CASES.values()), ids=list(RENEW_CASES))
def test_renew_at(policy: RenewalPolicy, lifetime: float, draw: float, offset: float) -> None:
    assert renewal.renew_at(policy, ISSUED, ISSUED + lifetime, draw) == pytest.approx(ISSUED + offset, abs=1e-3)


def test_renew_at_counts_from_issue_not_from_the_backdated_not_before() -> None:
    # a leaf issued at ISSUED is valid from ISSUED - 60 s; its lifetime is counted from ISSUED
    valid_before = ISSUED + 2 * H
    assert renewal.renew_at(DEFAULT, ISSUED, valid_before, 0.0) == pytest.approx(ISSUED + 0.6 * 2 * H)
    assert renewal.renew_at(DEFAULT, ISSUED - 60, valid_before, 0.0) != renewal.renew_at(DEFAULT, ISSUED, valid_before,
                                                                                           0.0)


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.75, ALMOST_ONE], ids=["0", "quarter", "half", "three_q", "~1"])
def test_renew_at_stays_in_the_window(draw: float) -> None:
    at = renewal.renew_at(DEFAULT, ISSUED, ISSUED + 72 * H, draw)
    assert ISSUED + 0.6 * 72 * H - 1e-3 <= at <= ISSUED + 0.9 * 72 * H + 1e-3


# --- root_change_at ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "draw", "offset"),
    [(DEFAULT, 0.0, 0.0), (DEFAULT, 0.5, 15.0), (DEFAULT, ALMOST_ONE, 30.0),
     (RenewalPolicy(root_change_jitter=0), 0.9, 0.0)],
    ids=["draw_0_now", "draw_half", "draw_almost_1_is_30s", "no_jitter"],
)
def test_root_change_at(policy: RenewalPolicy, draw: float, offset: float) -> None:
    assert renewal.root_change_at(policy, ISSUED, draw) == pytest.approx(ISSUED + offset, abs=1e-6)


# --- retry_at -----------------------------------------------------------------------------------------
RETRY_CASES = {
    "retry_after_draw_0": (1, 2.0, 0.0, 2.0),
    "retry_after_draw_almost_1_doubles": (1, 2.0, ALMOST_ONE, 4.0),
    "retry_after_ignores_failures": (9, 2.0, 0.0, 2.0),
    "retry_after_zero_is_now": (3, 0.0, 0.5, 0.0),
    "first_failure_draw_0": (1, None, 0.0, 0.25),
    "first_failure_draw_almost_1": (1, None, ALMOST_ONE, 0.5),
    "second_failure_doubles": (2, None, 0.0, 0.5),
    "fifth_failure": (5, None, ALMOST_ONE, 8.0),
    "capped_at_max_backoff": (8, None, ALMOST_ONE, renewal.MAX_BACKOFF),
    "capped_draw_0_is_half_the_cap": (8, None, 0.0, renewal.MAX_BACKOFF / 2),
    "many_failures_stay_capped": (200, None, 0.0, renewal.MAX_BACKOFF / 2),
    "thousands_of_failures_stay_capped": (5000, None, 0.0, renewal.MAX_BACKOFF / 2),
}


@pytest.mark.parametrize(("failures", "retry_after", "draw", "offset"), list(RETRY_CASES.values()),
                         ids=list(RETRY_CASES))
def test_retry_at(failures: int, retry_after: float | None, draw: float, offset: float) -> None:
    assert renewal.retry_at(ISSUED, failures, retry_after, draw) == pytest.approx(ISSUED + offset, abs=1e-6)


# --- RenewalPolicy validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [dict(after=0.0, before=0.0), dict(after=1.0, before=1.0), dict(after=0.0, before=1.0), dict(root_change_jitter=0)],
    ids=["zero_window_at_start", "zero_window_at_end", "whole_lifetime", "no_jitter"],
)
def test_policy_accepts(kw: dict) -> None:
    RenewalPolicy(**kw)


POLICY_BAD = {
    "after_past_before": (dict(after=0.9, before=0.6), "connect.leaf_renew_after"),
    "after_negative": (dict(after=-0.1), "connect.leaf_renew_after"),
    "before_above_one": (dict(before=1.1), "connect.leaf_renew_after"),
    "after_nan": (dict(after=math.nan), "connect.leaf_renew_after"),
    "negative_jitter": (dict(root_change_jitter=-1.0), "connect.root_change_jitter"),
}


@pytest.mark.parametrize(("kw", "field"), list(POLICY_BAD.values()), ids=list(POLICY_BAD))
def test_policy_refuses(kw: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        RenewalPolicy(**kw)
    assert err.value.field == field
    if field == "connect.leaf_renew_after":
        assert str(err.value) == ("connect.leaf_renew_after must be <= connect.leaf_renew_before, "
                                  "both between 0 and 1")
