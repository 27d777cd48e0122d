"""The JSON shape of every read endpoint the agent serves, pinned two ways.

1. ``SHAPES`` says, per Consul type, which keys are always present, which may be
   dropped when zero (Go ``omitempty``) and what JSON type each value has. It is
   read off Consul's Go structs and JSON tags (hashicorp/consul
   ``agent/structs/structs.go``, ``agent/structs/connect_proxy_config.go``,
   ``api/agent.go``, ``agent/agent_endpoint.go``) so a reviewer can see what we
   promise without opening a golden file. A key outside the table fails, so agent
   bookkeeping (``agent_*``) and ``Namespace`` in the default namespace cannot leak.
2. One golden file per endpoint under ``tests/golden/api/`` (sorted keys); only
   truly volatile values (ports, the data dir, runtime stats, trellis's version)
   are masked. ``pytest --update-golden`` / ``TRELLIS_UPDATE_GOLDEN=1`` rewrites them.

py-consul hands back raw dicts, so the integration tests cannot catch a wrong
shape; this module can. The agent is the real one, in-process, with the check
runner's first probe pushed an hour out so check status, output and indexes do
not depend on timing.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from trellis import __version__
from trellis.agent.agent import Agent
from trellis.agent.identity import revision_string
from trellis.config.agent_config import AgentConfig, Ports
from trellis.config.agent_model import ConnectConfig
from trellis.health import rules
from trellis.testing.agent import free_port

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden" / "api"
NODE = "golden-node"
NODE_ID = "3f6f5bb4-6a4c-4e0e-8e4d-2f1c9b7a1d00"

# =========================================================================== shapes


@dataclass(frozen=True)
class Obj:
    """A nested object of the named shape."""

    shape: str


@dataclass(frozen=True)
class ListOf:
    item: Any  # a shape name, or a JSON type for plain lists


@dataclass(frozen=True)
class MapOf:
    item: Any  # a shape name, or a JSON type for plain maps


NULL = type(None)
STR_MAP = MapOf(str)
STR_LIST = ListOf(str)
ANY_MAP = dict  # free-form maps (Proxy.Config, Upstream.Config): verbatim


@dataclass(frozen=True)
class Shape:
    always: dict[str, Any]
    omitempty: dict[str, Any] = field(default_factory=dict)


_WEIGHTS = Obj("Weights")
_PROXY_OPTIONAL = {
    "EnvoyExtensions": ListOf("EnvoyExtension"),
    "DestinationServiceName": str,
    "DestinationServiceID": str,
    "LocalServiceAddress": str,
    "LocalServicePort": int,
    "LocalServiceSocketPath": str,
    "TransparentProxy": Obj("TransparentProxyConfig"),
    "Config": ANY_MAP,
    "AccessLogs": Obj("AccessLogsConfig"),
}
_UPSTREAM_OPTIONAL = {
    "DestinationNamespace": str,
    "DestinationPartition": str,
    "DestinationPeer": str,
    "LocalBindAddress": str,
    "LocalBindPort": int,
    "LocalBindSocketPath": str,
    "LocalBindSocketMode": str,
    "Config": ANY_MAP,
    "CentrallyConfigured": bool,
}
_HEALTH_CHECK_KEYS = {
    "Node": str, "CheckID": str, "Name": str, "Status": str, "Notes": str, "Output": str,
    "ServiceID": str, "ServiceName": str, "ServiceTags": STR_LIST, "Type": str,
    "Interval": str, "Timeout": str, "ExposedPort": int, "Definition": Obj("HealthCheckDefinition"),
    "CreateIndex": int, "ModifyIndex": int,
}

SHAPES: dict[str, Shape] = {
    # agent/structs/structs.go ------------------------------------------------------
    "Node": Shape(
        always={"ID": str, "Node": str, "Address": str, "Datacenter": str, "TaggedAddresses": STR_MAP,
                "Meta": STR_MAP, "CreateIndex": int, "ModifyIndex": int},
        omitempty={"Partition": str, "PeerName": str, "Locality": Obj("Locality")},
    ),
    "NodeService": Shape(
        always={"ID": str, "Service": str, "Tags": STR_LIST, "Address": str, "Meta": STR_MAP,
                "Weights": _WEIGHTS, "EnableTagOverride": bool, "Proxy": Obj("ConnectProxyConfig"),
                "Connect": Obj("ServiceConnect"), "PeerName": str, "CreateIndex": int, "ModifyIndex": int},
        omitempty={"Kind": str, "TaggedAddresses": MapOf("ServiceAddress"), "Port": int, "SocketPath": str,
                   "Locality": Obj("Locality")},
    ),
    "ServiceNode": Shape(
        always={"ID": str, "Node": str, "Address": str, "Datacenter": str, "TaggedAddresses": STR_MAP,
                "NodeMeta": STR_MAP, "ServiceKind": str, "ServiceID": str, "ServiceName": str,
                "ServiceTags": STR_LIST, "ServiceAddress": str, "ServiceWeights": _WEIGHTS,
                "ServiceMeta": STR_MAP, "ServicePort": int, "ServiceSocketPath": str,
                "ServiceEnableTagOverride": bool, "ServiceProxy": Obj("ConnectProxyConfig"),
                "ServiceConnect": Obj("ServiceConnect"), "ServiceLocality": (NULL, Obj("Locality")),
                "CreateIndex": int, "ModifyIndex": int},
        omitempty={"ServiceTaggedAddresses": MapOf("ServiceAddress"), "PeerName": str},
    ),
    "HealthCheck": Shape(always=_HEALTH_CHECK_KEYS, omitempty={"PeerName": str}),
    # HealthCheckDefinition.MarshalJSON: durations as text except TTL (int64 ns).
    "HealthCheckDefinition": Shape(always={}, omitempty={
        "HTTP": str, "TLSServerName": str, "TLSSkipVerify": bool, "Header": MapOf(STR_LIST), "Method": str,
        "Body": str, "DisableRedirects": bool, "TCP": str, "TCPUseTLS": bool, "UDP": str, "H2PING": str,
        "OSService": str, "H2PingUseTLS": bool, "Interval": str, "OutputMaxSize": int, "Timeout": str,
        "DeregisterCriticalServiceAfter": str, "ScriptArgs": STR_LIST, "DockerContainerID": str,
        "Shell": str, "GRPC": str, "GRPCUseTLS": bool, "AliasNode": str, "AliasService": str, "TTL": int,
    }),
    "CheckServiceNode": Shape(always={"Node": Obj("Node"), "Service": Obj("NodeService"),
                                      "Checks": ListOf("HealthCheck")}),
    "NodeServices": Shape(always={"Node": Obj("Node"), "Services": MapOf("NodeService")}),
    "NodeServiceList": Shape(always={"Node": Obj("Node"), "Services": ListOf("NodeService")}),
    "Weights": Shape(always={"Passing": int, "Warning": int}),
    "ServiceAddress": Shape(always={"Address": str, "Port": int}),
    "ServiceConnect": Shape(always={}, omitempty={"Native": bool}),
    "Locality": Shape(always={}, omitempty={"Region": str, "Zone": str}),
    # agent/structs/connect_proxy_config.go (ConnectProxyConfig.MarshalJSON) ------------
    "ConnectProxyConfig": Shape(
        always={"Mode": str, "MeshGateway": Obj("MeshGatewayConfig"), "Expose": Obj("ExposeConfig")},
        omitempty={**_PROXY_OPTIONAL, "Upstreams": ListOf("Upstream")},
    ),
    "Upstream": Shape(
        always={"DestinationType": str, "DestinationName": str, "Datacenter": str,
                "MeshGateway": Obj("MeshGatewayConfig")},
        omitempty=_UPSTREAM_OPTIONAL,
    ),
    "MeshGatewayConfig": Shape(always={}, omitempty={"Mode": str}),
    "ExposeConfig": Shape(always={}, omitempty={"Checks": bool, "Paths": ListOf("ExposePath")}),
    "ExposePath": Shape(always={}, omitempty={"ListenerPort": int, "Path": str, "LocalPathPort": int,
                                              "Protocol": str, "ParsedFromCheck": bool}),
    "TransparentProxyConfig": Shape(always={}, omitempty={"OutboundListenerPort": int, "DialedDirectly": bool}),
    "AccessLogsConfig": Shape(always={}, omitempty={"Enabled": bool, "DisableListenerLogs": bool, "Type": str,
                                                    "Path": str, "JSONFormat": str, "TextFormat": str}),
    "EnvoyExtension": Shape(always={"Name": str, "Required": bool, "Arguments": (NULL, ANY_MAP),
                                    "ConsulVersion": str, "EnvoyVersion": str}),
    # api/agent.go (agent_endpoint.go buildAgentService) ----------------------------------
    "AgentService": Shape(
        always={"ID": str, "Service": str, "Tags": STR_LIST, "Meta": STR_MAP, "Port": int, "Address": str,
                "Weights": _WEIGHTS, "EnableTagOverride": bool},
        omitempty={"Kind": str, "SocketPath": str, "TaggedAddresses": MapOf("ServiceAddress"),
                   "CreateIndex": int, "ModifyIndex": int, "ContentHash": str,
                   "Proxy": Obj("AgentServiceConnectProxyConfig"), "Connect": Obj("ServiceConnect"),
                   "PeerName": str, "Datacenter": str, "Locality": Obj("Locality")},
    ),
    "AgentServiceConnectProxyConfig": Shape(
        always={"MeshGateway": Obj("MeshGatewayConfig"), "Expose": Obj("ExposeConfig")},
        omitempty={**_PROXY_OPTIONAL, "Mode": str, "Upstreams": ListOf("AgentUpstream")},
    ),
    "AgentUpstream": Shape(
        always={"DestinationName": str, "MeshGateway": Obj("MeshGatewayConfig")},
        omitempty={**_UPSTREAM_OPTIONAL, "DestinationType": str, "Datacenter": str},
    ),
    "AgentServiceChecksInfo": Shape(always={"AggregatedStatus": str, "Service": Obj("AgentService"),
                                            "Checks": ListOf("HealthCheck")}),
    # agent_endpoint.go Self; serf.Member ------------------------------------------------
    "Self": Shape(
        always={"Config": Obj("SelfConfig"), "DebugConfig": ANY_MAP, "Coord": (NULL, ANY_MAP),
                "Member": Obj("Member"), "Stats": MapOf(STR_MAP), "Meta": STR_MAP},
        omitempty={"xDS": Obj("XDSSelf")},
    ),
    "SelfConfig": Shape(  # + TrellisVersion: trellis's one documented addition (docs/agent.md)
        always={"Datacenter": str, "PrimaryDatacenter": str, "NodeName": str, "NodeID": str, "Revision": str,
                "Server": bool, "Version": str, "BuildDate": str, "TrellisVersion": str},
        omitempty={"Partition": str},
    ),
    "XDSSelf": Shape(always={"SupportedProxies": MapOf(STR_LIST), "Port": int, "Ports": Obj("GRPCPorts")}),
    "GRPCPorts": Shape(always={"Plaintext": int, "TLS": int}),
    "Member": Shape(always={"Name": str, "Addr": str, "Port": int, "Tags": STR_MAP, "Status": int,
                            "ProtocolMin": int, "ProtocolMax": int, "ProtocolCur": int,
                            "DelegateMin": int, "DelegateMax": int, "DelegateCur": int}),
}


def _is_zero(value: Any) -> bool:
    """Go's zero value as ``omitempty`` sees it."""
    return value in ("", 0, False, None) or value == [] or value == {}


def check_value(spec: Any, value: Any, at: str) -> list[str]:
    """Problems with ``value`` against a spec: a shape, a container or a JSON type."""
    if isinstance(spec, tuple):
        if any(not check_value(alt, value, at) for alt in spec):
            return []
        return [f"{at}: {value!r} matches none of {spec}"]
    if isinstance(spec, (Obj, str)):  # ListOf/MapOf name their item shape with a bare string
        return check_shape(spec.shape if isinstance(spec, Obj) else spec, value, at)
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return [f"{at}: expected a list, got {value!r}"]
        return [p for i, v in enumerate(value) for p in check_value(spec.item, v, f"{at}[{i}]")]
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            return [f"{at}: expected an object, got {value!r}"]
        return [p for k, v in value.items() for p in check_value(spec.item, v, f"{at}[{k!r}]")]
    if type(value) is not spec:  # strict: a bool is not an int here
        return [f"{at}: expected {spec.__name__}, got {type(value).__name__} {value!r}"]
    return []


def check_shape(name: str, doc: Any, at: str) -> list[str]:
    shape = SHAPES[name]
    if not isinstance(doc, dict):
        return [f"{at}: {name} must be an object, got {doc!r}"]
    problems = [f"{at}: {name} lacks {k}" for k in sorted(shape.always.keys() - doc.keys())]
    for key, value in doc.items():
        where = f"{at}.{key}"
        if key in shape.always:
            problems += check_value(shape.always[key], value, where)
        elif key not in shape.omitempty:
            problems.append(f"{where}: not a field of {name}")
        elif _is_zero(value):
            problems.append(f"{where}: omitempty field present with zero value {value!r}")
        else:
            problems += check_value(shape.omitempty[key], value, where)
    return problems


# =========================================================================== the agent

SEED_SIDECAR = {  # /work/shared/seed: "Sidecar Proxy Registration" + "Sidecar Proxy Configuration"
    "name": "web",
    "port": 8080,
    "connect": {
        "sidecar_service": {
            "port": 20000,
            "check": {"name": "Connect Sidecar Health", "http": "http://localhost:20000/health", "interval": "10s"},
            "proxy": {
                "upstreams": [
                    {"destination_name": "api", "local_bind_port": 9090, "datacenter": "dc1"},
                    {"destination_name": "database", "local_bind_port": 9091, "datacenter": "dc2"},
                ],
                "config": {"envoy_prometheus_bind_addr": "0.0.0.0:9102", "protocol": "http"},
            },
        }
    },
}

# The sidecar also gets trellis's alias check (catalog/sidecar.py rule 4). Alias checks
# are not staggered, so the test waits for its first result before the next write.
SIDECAR_ALIAS = "service:web-sidecar-proxy:2"

WRITES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/agent/service/register", {  # plain: tags, meta, weights, a tagged address, a locality
        "Name": "redis", "ID": "redis-1", "Tags": ["primary", "v7"], "Address": "10.0.0.5", "Port": 6379,
        "Meta": {"engine": "redis"}, "Weights": {"Passing": 3, "Warning": 1},
        "TaggedAddresses": {"wan": {"Address": "198.51.100.5", "Port": 16379}},
        "Locality": {"Region": "us-east-1", "Zone": "us-east-1a"},
    }),
    ("/v1/agent/service/register", {  # a TTL check and an HTTP check definition
        "Name": "api", "ID": "api-1", "Port": 9090,
        "Checks": [
            {"CheckID": "api-ttl", "Name": "api heartbeat", "TTL": "10m", "Notes": "pushed by the app"},
            {"Name": "api http", "HTTP": "http://127.0.0.1:9/health", "Method": "GET",
             "Header": {"X-Probe": ["golden"]}, "Interval": "10s", "Timeout": "2s",
             "DeregisterCriticalServiceAfter": "90m"},
        ],
    }),
    ("/v1/agent/service/register", SEED_SIDECAR),
    ("/v1/agent/service/register", {"Name": "billing", "Port": 7070, "Connect": {"Native": True}}),
    ("/v1/catalog/register", {  # an external node, as consul-esm users register them
        "Node": "ext-db-1", "Address": "192.0.2.20", "NodeMeta": {"external-node": "true"},
        "Service": {"Service": "legacy-db", "ID": "legacy-db-1", "Port": 5432, "Tags": ["external"]},
        "Check": {"CheckID": "legacy-db-tcp", "Name": "legacy db tcp", "Status": "passing",
                  "ServiceID": "legacy-db-1",
                  "Definition": {"TCP": "192.0.2.20:5432", "Interval": "30s", "Timeout": "5s",
                                 "DeregisterCriticalServiceAfter": "90m"}},
    }),
    ("/v1/catalog/register", {  # a second service on it, without a port (NodeService.Port is omitempty)
        "Node": "ext-db-1", "SkipNodeUpdate": True, "Service": {"Service": "db-backup", "Tags": ["cron"]},
    }),
]


@dataclass(frozen=True)
class Endpoint:
    name: str  # golden file stem
    path: str
    status: int
    spec: Any  # what the body is, in SHAPES terms


ENDPOINTS = [
    Endpoint("agent_self", "/v1/agent/self", 200, Obj("Self")),
    Endpoint("agent_members", "/v1/agent/members", 200, ListOf("Member")),
    Endpoint("agent_services", "/v1/agent/services", 200, MapOf("AgentService")),
    Endpoint("agent_service_sidecar", "/v1/agent/service/web-sidecar-proxy", 200, Obj("AgentService")),
    Endpoint("agent_checks", "/v1/agent/checks", 200, MapOf("HealthCheck")),
    Endpoint("agent_health_service_name", "/v1/agent/health/service/name/api", 503,
             ListOf("AgentServiceChecksInfo")),
    Endpoint("agent_health_service_id", "/v1/agent/health/service/id/redis-1", 200, Obj("AgentServiceChecksInfo")),
    Endpoint("catalog_datacenters", "/v1/catalog/datacenters", 200, STR_LIST),
    Endpoint("catalog_nodes", "/v1/catalog/nodes", 200, ListOf("Node")),
    Endpoint("catalog_services", "/v1/catalog/services", 200, MapOf(STR_LIST)),
    Endpoint("catalog_service", "/v1/catalog/service/redis", 200, ListOf("ServiceNode")),
    Endpoint("catalog_connect", "/v1/catalog/connect/web", 200, ListOf("ServiceNode")),
    Endpoint("catalog_node", f"/v1/catalog/node/{NODE}", 200, Obj("NodeServices")),
    Endpoint("catalog_node_services", "/v1/catalog/node-services/ext-db-1", 200, Obj("NodeServiceList")),
    Endpoint("health_node", f"/v1/health/node/{NODE}", 200, ListOf("HealthCheck")),
    Endpoint("health_checks", "/v1/health/checks/api", 200, ListOf("HealthCheck")),
    Endpoint("health_service", "/v1/health/service/api", 200, ListOf("CheckServiceNode")),
    Endpoint("health_service_passing", "/v1/health/service/api?passing", 200, ListOf("CheckServiceNode")),
    Endpoint("health_service_external_passing", "/v1/health/service/legacy-db?passing", 200,
             ListOf("CheckServiceNode")),
    Endpoint("health_connect", "/v1/health/connect/billing", 200, ListOf("CheckServiceNode")),
    Endpoint("health_state_any", "/v1/health/state/any", 200, ListOf("HealthCheck")),
    Endpoint("status_leader", "/v1/status/leader", 200, str),
    Endpoint("status_peers", "/v1/status/peers", 200, STR_LIST),
]


@dataclass(frozen=True)
class Captured:
    status: int
    body: Any


@dataclass(frozen=True)
class Run:
    http_port: int
    grpc_port: int
    data_dir: str
    responses: dict[str, Captured]


async def _wait_for_status(http: aiohttp.ClientSession, base: str, check_id: str, status: str) -> None:
    async with asyncio.timeout(3):
        while True:
            async with http.get(f"{base}/v1/agent/checks") as resp:
                if (await resp.json()).get(check_id, {}).get("Status") == status:
                    return
            await asyncio.sleep(0.01)


async def _capture(cfg: AgentConfig) -> dict[str, Captured]:
    agent = Agent(cfg)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.started.wait(), 5)
        base = f"http://127.0.0.1:{cfg.ports.http}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for path, body in WRITES:
                async with http.put(base + path, json=body) as resp:
                    assert resp.status == 200, f"PUT {path}: {resp.status} {await resp.text()}"
                if body is SEED_SIDECAR:
                    await _wait_for_status(http, base, SIDECAR_ALIAS, "passing")
            out = {}
            for ep in ENDPOINTS:
                async with http.get(base + ep.path) as resp:
                    out[ep.name] = Captured(resp.status, await resp.json())
            return out
    finally:
        agent.stop()
        await asyncio.wait_for(task, 5)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    data_dir = str(tmp_path_factory.mktemp("golden-agent"))
    http_port, grpc_port = free_port(), free_port()
    # Connect off: the CA's leaves for the sidecars registered here would be issued (and
    # their issued mark written) at moments of their own, moving the indexes read below.
    cfg = AgentConfig(
        node_name=NODE, node_id=NODE_ID, data_dir=data_dir, server=True, advertise_addr="127.0.0.1",
        ports=Ports(http=http_port, dns=-1, grpc=grpc_port), connect=ConnectConfig(enabled=False),
    )
    with pytest.MonkeyPatch.context() as mp:
        # Probes start an hour out: statuses stay as registered, outputs empty,
        # and no index moves while we read.
        mp.setattr(rules, "first_delay", lambda *_: 3600.0)
        responses = asyncio.run(_capture(cfg))
    return Run(http_port, grpc_port, data_dir, responses)


# =========================================================================== normalising

# Where volatile values sit. SCRUB rewrites the ports and the data dir inside the value
# (their surroundings stay visible); RUNTIME masks a map's values but keeps its keys.
# trellis's own version is replaced everywhere (it moves with every release).
SCRUB, RUNTIME = "scrub", "runtime"
VOLATILE: dict[str, list[tuple[tuple[Any, ...], str]]] = {
    "agent_self": [
        (("DebugConfig", "DataDir"), SCRUB),
        (("DebugConfig", "HTTPPort"), SCRUB),
        (("DebugConfig", "HTTPAddrs"), SCRUB),
        (("DebugConfig", "GRPCPort"), SCRUB),
        (("xDS", "Port"), SCRUB),
        (("xDS", "Ports", "Plaintext"), SCRUB),
        (("Member", "Tags", "grpc_port"), SCRUB),
        (("Stats", "runtime"), RUNTIME),  # arch, os, Python version of this machine
        (("Stats", "view"), RUNTIME),  # parked watchers and wake-ups depend on timing
    ],
    "agent_members": [((0, "Tags", "grpc_port"), SCRUB)],
}


def _scrub(value: Any, run: Run) -> Any:
    if isinstance(value, list):
        return [_scrub(v, run) for v in value]
    text = str(value)
    for real, fake in ((run.data_dir, "<data-dir>"), (str(run.http_port), "<http-port>"),
                       (str(run.grpc_port), "<grpc-port>")):
        text = text.replace(real, fake)
    return text


def _replace_at(doc: Any, path: tuple[Any, ...], how: str, run: Run) -> None:
    *parents, last = path
    for key in parents:
        doc = doc[key]
    present = last in doc if isinstance(doc, dict) else last < len(doc)
    assert present, f"volatile path {path} vanished; update VOLATILE"
    doc[last] = _scrub(doc[last], run) if how == SCRUB else dict.fromkeys(doc[last], "<runtime>")


def normalise(name: str, body: Any, run: Run) -> str:
    """The golden text of one endpoint: volatile values masked, keys sorted."""
    doc = json.loads(json.dumps(body))
    for path, how in VOLATILE.get(name, ()):
        _replace_at(doc, path, how, run)
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    return text.replace(revision_string(), "trellis-<version>").replace(
        f'"TrellisVersion": "{__version__}"', '"TrellisVersion": "<version>"')


# =========================================================================== tests

IDS = [ep.name for ep in ENDPOINTS]


@pytest.mark.parametrize("ep", ENDPOINTS, ids=IDS)
def test_endpoint_body_matches_its_golden_file(run: Run, ep: Endpoint, update_golden: bool) -> None:
    got = run.responses[ep.name]
    assert got.status == ep.status, f"{ep.path}: HTTP {got.status}"
    text = normalise(ep.name, got.body, run)
    path = GOLDEN_DIR / f"{ep.name}.json"
    if update_golden:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing; create it with --update-golden"
    assert text == path.read_text(), f"{path} differs; rerun with --update-golden and read the diff"


@pytest.mark.parametrize("ep", ENDPOINTS, ids=IDS)
def test_endpoint_body_has_consul_keys_and_types(run: Run, ep: Endpoint) -> None:
    assert check_value(ep.spec, run.responses[ep.name].body, ep.name) == []


def test_volatile_values_are_the_ones_masked(run: Run) -> None:
    """The masks hide what they claim to hide, and nothing volatile is left behind."""
    body = run.responses["agent_self"].body
    assert body["DebugConfig"]["HTTPPort"] == run.http_port
    assert body["xDS"]["Ports"]["Plaintext"] == run.grpc_port
    assert body["DebugConfig"]["DataDir"] == run.data_dir
    leftovers = re.compile(rf"(?<![0-9A-Za-z])({run.http_port}|{run.grpc_port})(?![0-9A-Za-z])")
    for ep in ENDPOINTS:
        text = normalise(ep.name, run.responses[ep.name].body, run)
        assert not leftovers.search(text), ep.name
        assert run.data_dir not in text and revision_string() not in text, ep.name


def _all_keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _all_keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _all_keys(v)}
    return set()


def test_no_bookkeeping_or_namespace_in_the_default_namespace(run: Run) -> None:
    keys = {k for captured in run.responses.values() for k in _all_keys(captured.body)}
    assert not {k for k in keys if k.startswith("agent_")}
    assert not keys & {"Namespace", "Partition", "SidecarService", "LocallyRegisteredAsSidecar"}


def test_catalog_shapes_keep_the_nested_structs_consul_always_emits(run: Run) -> None:
    """structs.ConnectProxyConfig has no omitempty on Mode and MeshGateway/Expose are
    structs, so even a typical service carries them; ServiceLocality is a nil pointer."""
    redis = run.responses["catalog_service"].body[0]
    assert redis["ServiceProxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}}
    assert redis["ServiceConnect"] == {}
    assert redis["ServiceLocality"] == {"Region": "us-east-1", "Zone": "us-east-1a"}
    sidecar = run.responses["catalog_connect"].body[0]
    assert sidecar["ServiceLocality"] is None
    upstream = sidecar["ServiceProxy"]["Upstreams"][0]
    assert upstream == {"DestinationType": "service", "DestinationName": "api", "Datacenter": "dc1",
                        "LocalBindPort": 9090, "MeshGateway": {}}


def test_agent_shapes_use_the_api_structs(run: Run) -> None:
    """buildAgentService: Proxy only on proxies, Connect only when native, Mode omitempty."""
    services = run.responses["agent_services"].body
    assert "Proxy" not in services["redis-1"] and "Connect" not in services["redis-1"]
    assert services["billing"]["Connect"] == {"Native": True}
    proxy = run.responses["agent_service_sidecar"].body["Proxy"]
    assert "Mode" not in proxy
    assert proxy["MeshGateway"] == {} and proxy["Expose"] == {}


def test_check_definition_durations(run: Run) -> None:
    """HealthCheckDefinition.MarshalJSON formats Interval/Timeout/DeregisterCriticalServiceAfter;
    Consul fills Definition only for checks written through /v1/catalog/register."""
    checks = run.responses["agent_checks"].body
    http = checks["service:api-1:2"]
    assert (http["Interval"], http["Timeout"]) == ("10s", "2s")
    ttl = checks["api-ttl"]
    assert (ttl["Type"], ttl["Interval"], ttl["Timeout"]) == ("ttl", "", "")
    assert ttl["Definition"] == {}
    (external,) = [c for c in run.responses["health_state_any"].body if c["CheckID"] == "legacy-db-tcp"]
    assert external["Definition"] == {"TCP": "192.0.2.20:5432", "Interval": "30s", "Timeout": "5s",
                                      "DeregisterCriticalServiceAfter": "1h30m0s"}


def test_agent_endpoints_list_only_agent_registered_entries(run: Run) -> None:
    assert "consul" not in run.responses["agent_services"].body
    assert "serfHealth" not in run.responses["agent_checks"].body


def test_agent_registered_checks_have_an_empty_definition(run: Run) -> None:
    assert run.responses["agent_checks"].body["api-ttl"]["Definition"] == {}
