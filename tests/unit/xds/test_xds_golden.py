"""Golden files: each scenario's resources, one JSON file per resource type.

``tests/golden/xds/<scenario>/<type>.json`` holds ``{name: resource}`` as
``json_format.MessageToDict`` writes it (proto field names, sorted keys); types without
resources have no file. ``pytest --update-golden`` rewrites them: read the diff.
"""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from xds_scenarios import GOLDEN_DIR, scenarios

from trellis.xds import types
from trellis.xds.resources import build_resources, consistency_problems

FILE_OF = {
    types.SECRET: "secrets",
    types.CLUSTER: "clusters",
    types.ENDPOINT: "endpoints",
    types.LISTENER: "listeners",
    types.ROUTE: "routes",
}
SCENARIOS = scenarios()


def render(resources: dict) -> dict[str, str]:
    """``{file stem: JSON text}`` for every non-empty resource type."""
    out = {}
    for type_url, named in resources.items():
        if named:
            data = {name: json_format.MessageToDict(r, preserving_proto_field_name=True) for name, r in named.items()}
            out[FILE_OF[type_url]] = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return out


@pytest.mark.parametrize("name", list(SCENARIOS), ids=list(SCENARIOS))
def test_resources_match_the_golden_files(name: str, update_golden: bool) -> None:
    rendered = render(build_resources(SCENARIOS[name]))
    directory = GOLDEN_DIR / name
    if update_golden:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.json"):
            if stale.stem not in rendered:
                stale.unlink()
        for stem, text in rendered.items():
            (directory / f"{stem}.json").write_text(text)
    on_disk = {p.stem: p.read_text() for p in sorted(directory.glob("*.json"))}
    assert sorted(on_disk) == sorted(rendered), "resource types differ; run pytest --update-golden and read the diff"
    for stem, text in rendered.items():
        assert json.loads(on_disk[stem]) == json.loads(text), f"{name}/{stem}.json differs (pytest --update-golden)"


@pytest.mark.parametrize("name", list(SCENARIOS), ids=list(SCENARIOS))
def test_golden_scenarios_are_consistent_and_sorted(name: str) -> None:
    resources = build_resources(SCENARIOS[name])
    assert list(resources) == list(types.ORDER)
    assert consistency_problems(resources) == []
    for named in resources.values():
        assert list(named) == sorted(named)


@pytest.mark.parametrize("name", list(SCENARIOS), ids=list(SCENARIOS))
def test_translation_is_deterministic(name: str) -> None:
    first = build_resources(SCENARIOS[name])
    second = build_resources(SCENARIOS[name])
    assert {t: {n: r.SerializeToString(deterministic=True) for n, r in named.items()} for t, named in first.items()} \
        == {t: {n: r.SerializeToString(deterministic=True) for n, r in named.items()} for t, named in second.items()}
