"""Config-entry decoding over random inputs: splitter weights, subset names, and the
two spellings (CamelCase, snake_case) of the gateway and chain kinds."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trellis.config.entry import codec
from trellis.config.entry.decode import decode_entry
from trellis.config.entry.kinds import KINDS
from trellis.config.entry.validate import validate_entry
from trellis.errors import InvalidInput

SUBSETS = [f"v{i}" for i in range(6)]


def check(data: dict[str, Any]) -> Any:
    entry = decode_entry(data)
    validate_entry(entry)
    return entry


@st.composite
def hundredths_summing_to(draw: Any, total: int) -> list[int]:
    """2..6 weights in hundredths of a percent that add up to ``total``."""
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=1, max_size=5)))
    bounds = [0, *cuts, total]
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


def splitter(hundredths: list[int]) -> dict[str, Any]:
    return {"Kind": "service-splitter", "Name": "web",
            "Splits": [{"Weight": h / 100, "ServiceSubset": SUBSETS[i]} for i, h in enumerate(hundredths)]}


@given(hundredths_summing_to(10_000))
def test_splits_adding_up_to_100_are_accepted_and_print_back_the_same(hundredths):
    entry = check(splitter(hundredths))
    out = codec.encode(entry)
    assert [round(s["Weight"] * 100) for s in out["Splits"]] == hundredths
    assert check({"Kind": "service-splitter", **out}) == entry


@given(st.integers(0, 20_000).filter(lambda t: t != 10_000).flatmap(hundredths_summing_to))
def test_splits_not_adding_up_to_100_are_refused_with_their_sum(hundredths):
    total = sum(hundredths)
    prefix = "the sum of all split weights must be 100, not "
    try:
        check(splitter(hundredths))
    except InvalidInput as exc:
        if any(h > 10_000 for h in hundredths):
            assert "must be between 0 and 100" in str(exc)
        else:  # Go's %f of a float32: six decimals, float32-close to the sum
            assert str(exc).startswith(prefix) and abs(float(str(exc)[len(prefix):]) - total / 100) < 1e-4
    else:
        raise AssertionError(f"accepted a split summing to {total / 100}")


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=4))
def test_any_weight_is_kept_to_two_decimals(weights):
    entry = decode_entry({"Kind": "service-splitter", "Name": "web",
                          "Splits": [{"Weight": w, "ServiceSubset": SUBSETS[i]} for i, w in enumerate(weights)]})
    for split, given_weight in zip(entry.splits, weights, strict=True):
        assert abs(split.weight - given_weight) <= 0.005 + 1e-6
        assert split.weight == round(split.weight * 100) / 100


_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@given(st.text(alphabet="abcXYZ019-_.", min_size=1, max_size=70))
def test_subset_names_are_dns_labels(name):
    data = {"Kind": "service-resolver", "Name": "web", "Subsets": {name: {}}}
    ok = bool(_LABEL.match(name)) and len(name) <= 63
    try:
        check(data)
    except InvalidInput as exc:
        assert not ok, exc
        assert f'Subset "{name}" is invalid' in str(exc)
    else:
        assert ok


# -- CamelCase and snake_case are the same entry -----------------------------------------------------
def snake_case(cls: type, data: Any) -> Any:
    """``data`` (Consul's CamelCase for ``cls``) with every key that has a snake_case alias renamed."""
    if isinstance(data, list):
        return [snake_case(cls, d) for d in data]
    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return data
    types = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("trellis.entry")
        if spec is None or spec.json not in data:
            continue
        inner = _dataclass_in(types[f.name])
        value = data[spec.json]
        if isinstance(value, dict) and typing.get_origin(types[f.name]) is dict:
            value = {k: snake_case(inner, v) for k, v in value.items()}
        else:
            value = snake_case(inner, value)
        out[spec.alias or spec.json] = value
    return out


def _dataclass_in(tp: Any) -> Any:
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


names = st.sampled_from(["web", "api", "db"])
header_mods = st.fixed_dictionaries({}, optional={"Add": st.dictionaries(st.sampled_from(["x-a", "x-b"]),
                                                                          st.sampled_from(["1", "2"])),
                                                  "Remove": st.lists(st.sampled_from(["x-c", "x-d"]), unique=True)})
destinations = st.fixed_dictionaries({}, optional={
    "Service": names, "ServiceSubset": st.sampled_from(SUBSETS), "RequestTimeout": st.sampled_from(["1s", "250ms"]),
    "NumRetries": st.integers(0, 5), "RetryOnConnectFailure": st.booleans(),
    "RetryOn": st.lists(st.sampled_from(["5xx", "reset", "gateway-error"]), unique=True, max_size=2),
    "RetryOnStatusCodes": st.lists(st.sampled_from([500, 503]), unique=True), "RequestHeaders": header_mods})
routes = st.fixed_dictionaries({}, optional={
    "Match": st.fixed_dictionaries({"HTTP": st.fixed_dictionaries({}, optional={
        "PathPrefix": st.sampled_from(["/", "/admin"]), "CaseInsensitive": st.booleans(),
        "QueryParam": st.lists(st.fixed_dictionaries({"Name": st.just("q"), "Exact": st.just("1")}), max_size=1),
        "Methods": st.lists(st.sampled_from(["GET", "PUT"]), unique=True)})}),
    "Destination": destinations})
ingress_services = st.fixed_dictionaries({"Name": names}, optional={
    "RequestHeaders": header_mods, "MaxConnections": st.integers(0, 100),
    "PassiveHealthCheck": st.fixed_dictionaries({}, optional={"MaxFailures": st.integers(0, 5),
                                                              "BaseEjectionTime": st.sampled_from(["30s", "1m"])})})
entries = st.one_of(
    st.builds(lambda rs: {"Kind": "service-router", "Name": "web", "Routes": rs}, st.lists(routes, max_size=3)),
    st.builds(lambda svcs: {"Kind": "ingress-gateway", "Name": "ig", "TLS": {"Enabled": True, "TLSMinVersion": "TLSv1_2"},
                            "Listeners": [{"Port": 8080, "Protocol": "http", "Services": svcs}]},
              st.lists(ingress_services, min_size=1, max_size=3, unique_by=lambda s: s["Name"])),
    st.builds(lambda lb: {"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "3s", "LoadBalancer": lb,
                          "Subsets": {"v1": {"OnlyPassing": True}}, "Failover": {"v1": {"Service": "api"}}},
              st.fixed_dictionaries({"Policy": st.just("ring_hash")}, optional={
                  "RingHashConfig": st.fixed_dictionaries({"MinimumRingSize": st.just(64)}),
                  "HashPolicies": st.lists(st.fixed_dictionaries({"Field": st.just("header"),
                                                                  "FieldValue": st.just("x")}), max_size=1)})),
)


@given(entries)
def test_snake_case_spelling_decodes_to_the_same_entry(data):
    cls = KINDS[data["Kind"]]
    camel = decode_entry(data)
    snake = decode_entry({"kind": data["Kind"], **snake_case(cls, {k: v for k, v in data.items() if k != "Kind"})})
    assert snake == camel
    assert decode_entry({"Kind": data["Kind"], **codec.encode(camel)}) == camel
