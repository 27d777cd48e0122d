"""Plans for catalog writes (pure): what to put and delete, given the view.

Every function returns a ``Plan`` whose compares pin the documents it read, so
a concurrent write makes the writer recompute instead of losing an update.

Rules (Consul's agent and catalog semantics):
1. Re-registering a check ID keeps its current status and output.
2. ``replace_existing_checks`` removes the service's checks not in the request.
3. Deregistering a service removes its checks and the sidecar the agent made for it.
4. A status update that changes neither status nor output writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from trellis.catalog import keys
from trellis.catalog.keys import CheckRef, ServiceRef
from trellis.catalog.model import Check, CheckStatus, Node, Service
from trellis.catalog.tables import ChecksTable, NodesTable, ServicesTable
from trellis.errors import NotFound
from trellis.store.view import View
from trellis.store.writer import Plan


def _t(view: View) -> tuple[NodesTable, ServicesTable, ChecksTable]:
    return view["nodes"], view["services"], view["checks"]  # type: ignore[return-value]


def service_ref(s: Service) -> ServiceRef:
    return ServiceRef.of(s.node, s.namespace, s.id)


def check_ref(c: Check) -> CheckRef:
    return CheckRef.of(c.node, c.namespace, c.check_id)


def put_node(plan: Plan, view: View, node: Node) -> None:
    nt, _, _ = _t(view)
    old = nt.get(node.name)
    stored = dataclasses.replace(node, create_index=0, modify_index=0)
    if old is not None and dataclasses.replace(old, create_index=0, modify_index=0) == stored:
        plan.expect(keys.node_key(node.name), old.modify_index)
        return
    plan.put(keys.node_key(node.name), stored, expected=old.modify_index if old else 0)


def put_service(plan: Plan, view: View, service: Service) -> None:
    _, st, _ = _t(view)
    ref = service_ref(service)
    old = st.get(ref)
    stored = dataclasses.replace(service, create_index=0, modify_index=0)
    if old is not None and dataclasses.replace(old, create_index=0, modify_index=0) == stored:
        plan.expect(keys.service_key(ref), old.modify_index)
        return
    plan.put(keys.service_key(ref), stored, expected=old.modify_index if old else 0)


def put_check(plan: Plan, view: View, check: Check, *, keep_state: bool = True) -> None:
    _, _, ct = _t(view)
    ref = check_ref(check)
    old = ct.get(ref)
    if old is not None and keep_state:
        check = dataclasses.replace(check, status=old.status, output=old.output)
    stored = dataclasses.replace(check, create_index=0, modify_index=0)
    if old is not None and dataclasses.replace(old, create_index=0, modify_index=0) == stored:
        plan.expect(keys.check_key(ref), old.modify_index)
        return
    plan.put(keys.check_key(ref), stored, expected=old.modify_index if old else 0)


def delete_check(plan: Plan, check: Check) -> None:
    plan.delete(keys.check_key(check_ref(check)), expected=check.modify_index)


def delete_service(plan: Plan, view: View, service: Service) -> None:
    _, _, ct = _t(view)
    plan.delete(keys.service_key(service_ref(service)), expected=service.modify_index)
    for c in ct.of_service(service.node, service.namespace, service.id):
        delete_check(plan, c)


def register_service(
    view: View,
    service: Service,
    checks: Iterable[Check],
    *,
    replace_existing_checks: bool = False,
    plan: Plan | None = None,
) -> Plan:
    plan = plan if plan is not None else Plan()
    _, _, ct = _t(view)
    checks = list(checks)
    put_service(plan, view, service)
    for c in checks:
        put_check(plan, view, c)
    if replace_existing_checks:
        wanted = {c.check_id for c in checks}
        for old in ct.of_service(service.node, service.namespace, service.id):
            if old.check_id not in wanted:
                delete_check(plan, old)
    return plan


def sidecars_of(view: View, service: Service) -> list[Service]:
    _, st, _ = _t(view)
    return [
        s for s in st.on_node(service.node)
        if s.namespace == service.namespace and s.agent_sidecar_of == service.id
    ]


def deregister_service(view: View, node: str, namespace: str, service_id: str) -> Plan:
    """Remove a service, its checks and the sidecar the agent made for it."""
    _, st, _ = _t(view)
    service = st.get(ServiceRef.of(node, namespace, service_id))
    if service is None:
        raise NotFound(
            f'Unknown service ID "{service_id}". Ensure that the service ID is passed, not the service name.'
        )
    plan = Plan()
    delete_service(plan, view, service)
    for sidecar in sidecars_of(view, service):
        delete_service(plan, view, sidecar)
    return plan


def set_check_status(
    view: View, node: str, namespace: str, check_id: str, status: CheckStatus, output: str
) -> Plan:
    _, _, ct = _t(view)
    old = ct.get(CheckRef.of(node, namespace, check_id))
    plan = Plan()
    if old is None or (old.status is status and old.output == output):
        return plan
    new = dataclasses.replace(old, status=status, output=output, create_index=0, modify_index=0)
    plan.put(keys.check_key(check_ref(old)), new, expected=old.modify_index)
    return plan
