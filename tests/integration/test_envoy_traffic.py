"""Traffic management through real Envoys (issue 7, item 4): service-resolver subsets and
failover, service-splitter weights, service-router matches, retries and request timeouts,
each written with the CLI's API as a user would, and each checked by sending requests
through web's upstream listener.

    client ─▶ web Envoy :U ─┬─▶ api-v1 / api-v2 Envoys ─▶ apps   (subsets by tag and by meta)
                            ├─▶ flaky Envoy ─▶ an app that fails every other request
                            └─▶ api-backup Envoy ─▶ app         (failover when api is critical)

Every process is started on free loopback ports and stopped by PID; every wait polls with
a deadline.
"""

from __future__ import annotations

import collections
import time

import pytest

from trellis.testing.agent import free_port
from trellis.testing.apps import get
from trellis.testing.envoy import EnvoyMesh

pytestmark = pytest.mark.integration

SERVICES = ("api", "api-backup", "flaky", "web")
SUBSETS = {"v1": {"Filter": '"v1" in Service.Tags'}, "v2": {"Filter": "Service.Meta.version == v2"}}


def flaky(path: str, nth: int) -> tuple[int, float]:
    """Every other request fails; /slow takes a second."""
    if path.startswith("/slow"):
        return 200, 1.0
    return (503 if nth % 2 else 200), 0.0


@pytest.fixture(scope="module")
def mesh(agent, tmp_path_factory):
    m = EnvoyMesh(tmp_path_factory.mktemp("envoy-traffic"), agent)
    m.upstream, m.flaky_upstream = free_port(), free_port()  # type: ignore[attr-defined]
    try:
        for name in SERVICES:
            m.config_write({"Kind": "service-defaults", "Name": name, "Protocol": "http"})
        m.register("api", "api-v1", tags=["v1"], meta={"version": "v1"})
        m.register("api", "api-v2", tags=["v2"], meta={"version": "v2"})
        m.register("api-backup", "api-backup-1")
        m.register("flaky", "flaky-1", respond=flaky)
        m.register("web", "web-1", upstreams=[
            {"DestinationName": "api", "LocalBindPort": m.upstream, "LocalBindAddress": "127.0.0.1"},
            {"DestinationName": "flaky", "LocalBindPort": m.flaky_upstream, "LocalBindAddress": "127.0.0.1"}])
        for sid in ("api-v1", "api-v2", "api-backup-1", "flaky-1", "web-1"):
            m.start_envoy(sid)
        for sid in ("api-v1", "api-v2", "api-backup-1", "flaky-1", "web-1"):
            m.wait(lambda sid=sid: m.in_sync(sid), f"{sid}'s Envoy ACKs its snapshot")
        m.wait(lambda: {body(m.upstream) for _ in range(20)} == {"api-v1", "api-v2"}, "web reaches both api instances")
    except BaseException:
        m.stop()
        raise
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def clean_chain(mesh):
    """Each story starts and ends with api's plain chain and no NACK."""
    yield
    for kind in ("service-router", "service-splitter", "service-resolver"):
        for name in ("api", "flaky"):
            mesh.agent.request("DELETE", f"/v1/config/{kind}/{name}")
    assert mesh.nacks() == [], mesh.diagnose()


def body(port: int, path: str = "/", headers: dict[str, str] | None = None) -> str:
    try:
        status, text = get(port, path, headers=headers)
    except OSError as exc:
        return f"error {exc!r}"
    return text if status == 200 else f"{status} {text}"


def counts(port: int, n: int, path: str = "/") -> collections.Counter:
    return collections.Counter(body(port, path) for _ in range(n))


def settled(mesh: EnvoyMesh, check, what: str):
    """Wait until the agent's snapshot reached web's Envoy and ``check`` holds."""
    mesh.wait(lambda: mesh.in_sync("web-1"), "web's Envoy ACKs the chain")
    return mesh.wait(check, what)


# -- resolver ----------------------------------------------------------------------------------
def test_a_default_subset_by_tag_sends_everything_to_it(mesh):
    mesh.config_write({"Kind": "service-resolver", "Name": "api", "DefaultSubset": "v1", "Subsets": SUBSETS})
    settled(mesh, lambda: set(counts(mesh.upstream, 20)) == {"api-v1"}, "only the v1 subset answers")
    web = mesh.envoys["web-1"]
    assert any(name.startswith("v1.api.default.dc1.internal.") for name in web.cluster_names())


def test_failover_moves_traffic_when_every_primary_instance_is_critical_and_back(mesh):
    mesh.config_write({"Kind": "service-resolver", "Name": "api",
                       "Failover": {"*": {"Service": "api-backup"}}})
    settled(mesh, lambda: set(counts(mesh.upstream, 10)) == {"api-v1", "api-v2"}, "the primary answers")
    try:
        for sid in ("api-v1", "api-v2"):
            mesh.check_state(f"{sid}-sidecar-proxy", "critical")
        mesh.wait(lambda: set(counts(mesh.upstream, 10)) == {"api-backup-1"}, "the failover target answers")
    finally:
        for sid in ("api-v1", "api-v2"):
            mesh.check_state(f"{sid}-sidecar-proxy", "passing")
    mesh.wait(lambda: set(counts(mesh.upstream, 10)) == {"api-v1", "api-v2"}, "back on the primary")


# -- splitter ----------------------------------------------------------------------------------
def test_a_splitter_splits_1000_requests_by_weight(mesh):
    mesh.config_write({"Kind": "service-resolver", "Name": "api", "Subsets": SUBSETS})
    mesh.config_write({"Kind": "service-splitter", "Name": "api", "Splits": [
        {"Weight": 80, "ServiceSubset": "v1"}, {"Weight": 20, "ServiceSubset": "v2"}]})
    settled(mesh, lambda: set(counts(mesh.upstream, 40)) == {"api-v1", "api-v2"}, "both subsets answer")
    seen = counts(mesh.upstream, 1000)
    assert set(seen) == {"api-v1", "api-v2"}, seen
    share = seen["api-v2"] / 1000
    assert 0.15 <= share <= 0.25, seen  # 20% expected; binomial sd is 1.3%


# -- router ------------------------------------------------------------------------------------
def test_router_matches_path_and_header_and_falls_through_to_the_service(mesh):
    mesh.config_write({"Kind": "service-resolver", "Name": "api", "Subsets": SUBSETS})
    mesh.config_write({"Kind": "service-router", "Name": "api", "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/v2/"}}, "Destination": {"ServiceSubset": "v2", "PrefixRewrite": "/"}},
        {"Match": {"HTTP": {"Header": [{"Name": "x-canary", "Exact": "yes"}]}},
         "Destination": {"Service": "api-backup"}},
    ]})
    settled(mesh, lambda: set(counts(mesh.upstream, 10, "/v2/thing")) == {"api-v2"}, "the /v2/ route")
    assert body(mesh.upstream, "/", {"x-canary": "yes"}) == "api-backup-1"
    assert set(counts(mesh.upstream, 20, "/other")) == {"api-v1", "api-v2"}  # the catch-all
    api_v2 = next(a for a in mesh.apps if a.name == "api-v2")
    assert "/thing" in api_v2.paths  # the prefix was rewritten


def test_retries_hide_a_failing_first_attempt_and_a_request_timeout_answers_504(mesh):
    assert "503" in "".join(counts(mesh.flaky_upstream, 4))  # without retries, every other request fails
    mesh.config_write({"Kind": "service-router", "Name": "flaky", "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/slow"}}, "Destination": {"RequestTimeout": "300ms"}},
        {"Match": {"HTTP": {"PathPrefix": "/"}}, "Destination": {"NumRetries": 2, "RetryOn": ["5xx"]}},
    ]})
    settled(mesh, lambda: set(counts(mesh.flaky_upstream, 10)) == {"flaky-1"}, "every request succeeds")
    start = time.monotonic()
    status, _ = get(mesh.flaky_upstream, "/slow")
    assert status == 504 and time.monotonic() - start < 0.9
