"""Store keys of catalog documents and the typed refs they come from.

Keys are built here and parsed only by the view's tables when applying a change:
``catalog/nodes/<node>``, ``catalog/services/<node>/<ns>/<id>``,
``catalog/checks/<node>/<ns>/<id>``. Components are percent-encoded so a service
ID containing ``/`` stays one component; node names are lower-cased because node
lookups are case-insensitive (as Consul's memdb indexes are).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

NODES = "catalog/nodes/"
SERVICES = "catalog/services/"
CHECKS = "catalog/checks/"


def _q(part: str) -> str:
    return quote(part, safe="")


@dataclass(frozen=True, slots=True)
class ServiceRef:
    node: str  # lower-cased
    namespace: str
    service_id: str

    @classmethod
    def of(cls, node: str, namespace: str, service_id: str) -> ServiceRef:
        return cls(node.lower(), namespace, service_id)


@dataclass(frozen=True, slots=True)
class CheckRef:
    node: str  # lower-cased
    namespace: str
    check_id: str

    @classmethod
    def of(cls, node: str, namespace: str, check_id: str) -> CheckRef:
        return cls(node.lower(), namespace, check_id)


def node_key(node: str) -> str:
    return NODES + _q(node.lower())


def service_key(ref: ServiceRef) -> str:
    return f"{SERVICES}{_q(ref.node)}/{_q(ref.namespace)}/{_q(ref.service_id)}"


def check_key(ref: CheckRef) -> str:
    return f"{CHECKS}{_q(ref.node)}/{_q(ref.namespace)}/{_q(ref.check_id)}"


def node_services_prefix(node: str) -> str:
    return f"{SERVICES}{_q(node.lower())}/"


def node_checks_prefix(node: str) -> str:
    return f"{CHECKS}{_q(node.lower())}/"


def parse_service_key(key: str) -> ServiceRef:
    node, ns, sid = key[len(SERVICES):].split("/")
    return ServiceRef(unquote(node), unquote(ns), unquote(sid))


def parse_check_key(key: str) -> CheckRef:
    node, ns, cid = key[len(CHECKS):].split("/")
    return CheckRef(unquote(node), unquote(ns), unquote(cid))


def parse_node_key(key: str) -> str:
    return unquote(key[len(NODES):])
