"""``PUT /v1/catalog/register`` and ``/v1/catalog/deregister``: decode and plan (pure).

Catalog registration writes a node and optionally one service and its checks
directly, as Consul's does (used for external services: a node that runs no
agent). Keys are matched case-insensitively against Consul's field names and
unknown keys are rejected, like Consul's strict decoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trellis.catalog import keys, write
from trellis.catalog.keys import CheckRef, ServiceRef
from trellis.catalog.model import DEFAULT_NAMESPACE, Check, CheckDefinition, CheckStatus, CheckType, Node, Service
from trellis.catalog.sidecar import PortPool
from trellis.errors import InvalidInput, TrellisError
from trellis.store.view import View
from trellis.store.writer import Plan


CATALOG = "catalog"  # agent_source of what /v1/catalog/register wrote: not agent-local state


class NoPathToDatacenter(TrellisError):
    def __init__(self, dc: str) -> None:
        super().__init__("No path to datacenter")
        self.datacenter = dc


def missing_service_name() -> InvalidInput:
    return InvalidInput("ServiceName", message="Missing service name")


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    node: Node
    service: Service | None
    checks: tuple[Check, ...]
    skip_node_update: bool


@dataclass(frozen=True, slots=True)
class DeregisterRequest:
    node: str
    service_id: str = ""
    check_id: str = ""
    namespace: str = DEFAULT_NAMESPACE


def _fields(data: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput(where or "body", message=f"Request decode failed: {where or 'body'} must be a JSON object")
    canon = {a.lower(): a for a in allowed}
    out: dict[str, Any] = {}
    for k, v in data.items():
        name = canon.get(str(k).lower())
        if name is None:
            raise InvalidInput(k, message=f'Request decode failed: json: unknown field "{k}"')
        out[name] = v
    return out


def _str(d: Mapping[str, Any], key: str, default: str = "") -> str:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise InvalidInput(key, v, message=f"Request decode failed: {key} must be a string, got {v!r}")
    return v


def _str_map(d: Mapping[str, Any], key: str) -> dict[str, str]:
    v = d.get(key) or {}
    if not isinstance(v, Mapping) or not all(isinstance(x, str) for x in v.values()):
        raise InvalidInput(key, v, message=f"Request decode failed: {key} must be a map of strings")
    return dict(v)


_NODE_KEYS = {"Datacenter", "ID", "Node", "Address", "TaggedAddresses", "NodeMeta", "Service",
              "Check", "Checks", "SkipNodeUpdate", "Locality", "Token", "Namespace", "Partition"}
_CHECK_KEYS = {"Node", "CheckID", "Name", "Status", "Notes", "Output", "ServiceID", "ServiceName",
               "ServiceTags", "Type", "Definition", "Interval", "Timeout", "ExposedPort", "Namespace",
               "Partition", "CreateIndex", "ModifyIndex"}


def decode_register(body: Any, *, datacenter: str) -> RegisterRequest:
    from trellis.catalog import definition

    d = _fields(body if body is not None else {}, _NODE_KEYS, "")
    name = _str(d, "Node")
    if not name:
        raise InvalidInput("Node", message="Must provide node")
    skip = bool(d.get("SkipNodeUpdate", False))
    address = _str(d, "Address")
    if not address and not skip:
        raise InvalidInput("Address", message="Must provide address if SkipNodeUpdate is not set")
    dc = _str(d, "Datacenter") or datacenter
    if dc != datacenter:
        raise NoPathToDatacenter(dc)
    node_id = _str(d, "ID")
    if node_id:
        try:
            import uuid

            uuid.UUID(node_id)
        except ValueError:
            raise InvalidInput("ID", node_id, message=f"Bad node ID: {node_id!r} is not a UUID") from None
    node = Node(
        name=name, address=address, id=node_id, datacenter=dc,
        tagged_addresses=_str_map(d, "TaggedAddresses"), meta=_str_map(d, "NodeMeta"),
    )
    service = None
    if d.get("Service"):
        raw = dict(d["Service"]) if isinstance(d["Service"], Mapping) else d["Service"]
        if not isinstance(raw, dict):
            raise InvalidInput("Service", message="Request decode failed: Service must be a JSON object")
        svc_name = next((raw.pop(k) for k in list(raw) if k.lower() == "service"), "")
        if not svc_name:
            if any(k.lower() == "id" and v for k, v in raw.items()):
                raise InvalidInput("Service.Service", message="Must provide service name (Service.Service) when service ID is provided")
            raise missing_service_name()
        raw["Name"] = svc_name
        defn = definition.decode_service(raw, origin="api")
        if defn.sidecar_service is not None:
            raise InvalidInput("Service.Connect.SidecarService",
                               message="Request decode failed: a catalog registration cannot define a sidecar service")
        service = definition.build_registration(
            defn, node=name, datacenter=dc, sidecar_ports=PortPool(0, 0)).service
    raw_checks = []
    if d.get("Check"):
        raw_checks.append(d["Check"])
    checks_v = d.get("Checks") or []
    if not isinstance(checks_v, list):
        raise InvalidInput("Checks", message="Request decode failed: Checks must be a list")
    raw_checks += checks_v
    checks = tuple(_decode_health_check(c, node=name, service=service) for c in raw_checks)
    return RegisterRequest(node, service, checks, skip)


def _decode_health_check(data: Any, *, node: str, service: Service | None) -> Check:
    from trellis.catalog import definition

    d = _fields(data, _CHECK_KEYS, "Check")
    name = _str(d, "Name")
    check_id = _str(d, "CheckID") or name
    if not check_id:
        raise InvalidInput("Check.CheckID", message="Missing check ID or name")
    status_s = _str(d, "Status") or "critical"
    try:
        status = CheckStatus(status_s)
    except ValueError:
        raise InvalidInput("Check.Status", status_s, message="Status for checks must 'passing', 'warning', 'critical'") from None
    service_id = _str(d, "ServiceID")
    raw_def = d.get("Definition") or {}
    if raw_def:
        spec = definition.decode_check(raw_def, origin="api", in_service=True, path="Check.Definition")
        check_def, check_type = spec.definition, spec.type
    else:
        check_def, check_type = CheckDefinition(), _check_type(_str(d, "Type"))
    check = Check(
        node=_str(d, "Node") or node, check_id=check_id, name=name, status=status,
        notes=_str(d, "Notes"), output=_str(d, "Output"), service_id=service_id,
        definition=check_def, type=check_type,
    )
    if service_id and service is not None and service.id == service_id:
        check = dataclasses.replace(check, service_name=service.name, service_tags=service.tags,
                                    namespace=service.namespace)
    return check


def _check_type(value: str) -> CheckType:
    try:
        return CheckType(value)
    except ValueError:
        raise InvalidInput("Check.Type", value, message=f"Invalid check type {value!r}") from None


def plan_register(view: View, req: RegisterRequest) -> Plan:
    plan = Plan()
    node = req.node
    existing = view["nodes"].get(node.name)
    if req.skip_node_update and existing is not None:
        plan.expect(keys.node_key(node.name), existing.modify_index)
        node = existing
    else:
        if existing is not None and not node.id:
            node = dataclasses.replace(node, id=existing.id)
        write.put_node(plan, view, node)
    if req.service is not None:
        write.put_service(plan, view, dataclasses.replace(req.service, node=node.name, agent_source=CATALOG))
    for c in req.checks:
        c = dataclasses.replace(c, node=node.name, agent_source=CATALOG)
        if c.service_id and not c.service_name:
            svc = (req.service if req.service is not None and req.service.id == c.service_id
                   else view["services"].get(ServiceRef.of(node.name, c.namespace, c.service_id)))
            if svc is None:
                raise InvalidInput("Check.ServiceID", c.service_id,
                                   message=f"Unknown service ID '{c.service_id}' for check ID '{c.check_id}'")
            c = dataclasses.replace(c, service_name=svc.name, service_tags=svc.tags)
        write.put_check(plan, view, c, keep_state=False)
    return plan


_DEREG_KEYS = {"Datacenter", "Node", "ServiceID", "CheckID", "Namespace", "Partition", "Token"}


def decode_deregister(body: Any) -> DeregisterRequest:
    d = _fields(body if body is not None else {}, _DEREG_KEYS, "")
    node = _str(d, "Node")
    if not node:
        raise InvalidInput("Node", message="Must provide node")
    return DeregisterRequest(node, _str(d, "ServiceID"), _str(d, "CheckID"),
                             _str(d, "Namespace") or DEFAULT_NAMESPACE)


def plan_deregister(view: View, req: DeregisterRequest, *, agent_node: str | None = None) -> Plan:
    """``agent_node``: the request names the agent's own node, whose agent-registered
    entries the agent owns (Consul's anti-entropy would put them straight back), so
    only what the catalog API wrote there can be removed this way."""
    plan = Plan()
    n = view["nodes"].get(req.node)
    if n is None:
        return plan
    if agent_node is not None:
        return _plan_deregister_on_agent_node(plan, view, req)
    if req.service_id:
        s = view["services"].get(ServiceRef.of(req.node, req.namespace, req.service_id))
        if s is not None:
            write.delete_service(plan, view, s)
    elif req.check_id:
        c = view["checks"].get(CheckRef.of(req.node, req.namespace, req.check_id))
        if c is not None:
            write.delete_check(plan, c)
    else:
        plan_deregister_into(plan, view, n.name)
    return plan


def _plan_deregister_on_agent_node(plan: Plan, view: View, req: DeregisterRequest) -> Plan:
    if not req.service_id and not req.check_id:
        raise InvalidInput("Node", req.node, message=(
            f"Node {req.node!r} is this agent's own node: deregister its services with "
            "/v1/agent/service/deregister; the node itself leaves when the agent stops"))
    if req.service_id:
        s = view["services"].get(ServiceRef.of(req.node, req.namespace, req.service_id))
        if s is not None and s.agent_source == CATALOG and s.id != "consul":
            write.delete_service(plan, view, s)
    else:
        c = view["checks"].get(CheckRef.of(req.node, req.namespace, req.check_id))
        if c is not None and c.agent_source == CATALOG and c.check_id != "serfHealth":
            write.delete_check(plan, c)
    return plan


def plan_deregister_into(plan: Plan, view: View, node: str) -> None:
    """Add the removal of ``node`` with all its services and checks to ``plan``."""
    n = view["nodes"].get(node)
    if n is None:
        return
    plan.delete(keys.node_key(n.name), expected=n.modify_index)
    for s in view["services"].on_node(n.name):
        write.delete_service(plan, view, s)
    for c in view["checks"].on_node(n.name):
        if not c.service_id:
            write.delete_check(plan, c)
