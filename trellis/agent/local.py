"""The agent's own services and checks: register, deregister, maintenance, TTL.

The agent's local state *is* the catalog entries on its node: every operation
here plans a catalog write (pure, in catalog/) and commits it through the
writer; check runners follow from the view. Definitions arrive decoded
(catalog/definition.py) so this module holds no parsing and no HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from trellis.catalog import keys, write
from trellis.catalog.definition import Registration, ServiceDefinition, build_registration
from trellis.catalog.validate import definition_warnings
from trellis.catalog.sidecar import PortPool, sidecar_id
from trellis.catalog.keys import CheckRef, ServiceRef
from trellis.catalog.registration import CATALOG
from trellis.catalog.model import (
    DEFAULT_NAMESPACE,
    Check,
    CheckStatus,
    CheckType,
    Service,
)
from trellis.errors import InvalidInput, NotFound
from trellis.store.view import View
from trellis.store.writer import Plan, Writer

log = logging.getLogger("trellis.agent")

SERVICE_MAINT_PREFIX = "_service_maintenance:"
NODE_MAINT_ID = "_node_maintenance"
DEFAULT_MAINT_REASON = (
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message."
)
DEFAULT_NODE_MAINT_REASON = (
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
)


UNSUPPORTED_CHECK_TYPES = frozenset({CheckType.DOCKER, CheckType.H2PING, CheckType.OS_SERVICE})


def check_admission_problem(check: Check, *, scripts_allowed: bool) -> str | None:
    """Why the agent must refuse to run ``check``, or None. Pure.

    Script checks need ``enable_script_checks`` (API) or, for config files,
    ``enable_local_script_checks``; check types trellis cannot run are refused at
    registration instead of sitting critical forever.
    """
    if check.type is CheckType.SCRIPT and not scripts_allowed:
        return "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' to true"
    if check.type in UNSUPPORTED_CHECK_TYPES:
        return f"Check {check.check_id!r}: check type {check.type.value!r} is not supported by trellis yet"
    return None


def _admit(checks: Iterable[Check], scripts_allowed: bool) -> None:
    for c in checks:
        problem = check_admission_problem(c, scripts_allowed=scripts_allowed)
        if problem:
            raise InvalidInput("Check", c.check_id, message=problem)


@dataclass(frozen=True, slots=True)
class SidecarPorts:
    min_port: int = 21000
    max_port: int = 21255


class LocalAgent:
    def __init__(
        self, view: View, writer: Writer, *, node: str, datacenter: str, sidecar_ports: SidecarPorts,
        api_scripts: bool = False, local_scripts: bool = False,
    ) -> None:
        self.api_scripts = api_scripts  # enable_script_checks: scripts from any source
        self.local_scripts = local_scripts or api_scripts  # enable_local_script_checks: config files
        self._sidecar_lock = asyncio.Lock()
        self.view = view
        self.writer = writer
        self.node = node
        self.datacenter = datacenter
        self.sidecar_ports = sidecar_ports

    # -- reads ---------------------------------------------------------------
    def services(self) -> list[Service]:
        """The agent's own services: its node's catalog entries minus what the catalog
        (leader, /v1/catalog/register) put there, as Consul's agent-local state."""
        return sorted((s for s in self.view["services"].on_node(self.node) if s.agent_source != CATALOG),
                      key=lambda s: (s.namespace, s.id))

    def service(self, service_id: str, namespace: str = DEFAULT_NAMESPACE) -> Service | None:
        s = self.view["services"].get(ServiceRef.of(self.node, namespace, service_id))
        return s if s is not None and s.agent_source != CATALOG else None

    def checks(self) -> list[Check]:
        return sorted((c for c in self.view["checks"].on_node(self.node) if c.agent_source != CATALOG),
                      key=lambda c: (c.namespace, c.check_id))

    def check(self, check_id: str, namespace: str = DEFAULT_NAMESPACE) -> Check | None:
        c = self.view["checks"].get(CheckRef.of(self.node, namespace, check_id))
        return c if c is not None and c.agent_source != CATALOG else None

    # -- service registration --------------------------------------------------
    def plan_registration(
        self, view: View, defn: ServiceDefinition, *, replace_existing_checks: bool,
        plan: Plan | None = None, source: str = "",
    ) -> Plan:
        plan = plan if plan is not None else Plan()
        existing = None
        used: frozenset[int] = frozenset()
        if defn.sidecar_service is not None:  # only a sidecar needs a port from the pool
            ns = defn.namespace or DEFAULT_NAMESPACE
            existing = view["services"].get(ServiceRef.of(self.node, ns, sidecar_id(defn.service_id)))
            used = frozenset(
                s.port for s in view["services"].on_node(self.node) if s is not existing and s.port
            )
        reg = build_registration(
            defn,
            node=self.node,
            datacenter=self.datacenter,
            sidecar_ports=PortPool(self.sidecar_ports.min_port, self.sidecar_ports.max_port, used),
            existing_sidecar_port=existing.port if existing else 0,
            source=source,
        )
        scripts = self.local_scripts if source == "config" else self.api_scripts
        _admit(reg.checks, scripts)
        if reg.sidecar is not None:
            _admit(reg.sidecar.checks, scripts)
        self._plan_reg(plan, view, reg, replace_existing_checks)
        return plan

    def _plan_reg(self, plan: Plan, view: View, reg: Registration, replace: bool) -> None:
        write.register_service(
            view, reg.service, self._with_maintenance(view, reg.service, reg.checks),
            replace_existing_checks=replace, plan=plan,
        )
        if reg.sidecar is not None:
            self._plan_reg(plan, view, reg.sidecar, replace)

    def _with_maintenance(self, view: View, service: Service, checks: Iterable[Check]) -> list[Check]:
        """Keep a maintenance check across re-registration with replace-existing-checks."""
        out = list(checks)
        maint = view["checks"].get(CheckRef.of(self.node, service.namespace, SERVICE_MAINT_PREFIX + service.id))
        if maint is not None:
            out.append(maint)
        return out

    async def register_service(
        self, defn: ServiceDefinition, *, replace_existing_checks: bool = False
    ) -> None:
        _warn(defn)

        def plan(view: View) -> Plan:
            return self.plan_registration(view, defn, replace_existing_checks=replace_existing_checks)

        if defn.sidecar_service is None:
            await self.writer.apply(plan)
            return
        # A sidecar's port comes from scanning the ports in use; two such scans at
        # once would hand out the same port, so sidecar registrations take turns.
        async with self._sidecar_lock:
            await self.writer.apply(plan)

    async def register_services(self, defns: Iterable[ServiceDefinition], *, source: str = "") -> None:
        """Register several definitions in one write (config files at start and on reload)."""
        defns = list(defns)
        for d in defns:
            _warn(d)

        def plan_all(view: View) -> Plan:
            plan = Plan()
            for d in defns:
                self.plan_registration(view, d, replace_existing_checks=True, plan=plan, source=source)
            return plan

        async with self._sidecar_lock:
            await self.writer.apply(plan_all)

    async def deregister_service(self, service_id: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        await self.writer.apply(lambda view: write.deregister_service(view, self.node, namespace, service_id))

    # -- checks ----------------------------------------------------------------
    async def register_check(self, check: Check, *, source: str = "") -> None:
        _admit([check], self.local_scripts if source == "config" else self.api_scripts)
        check = dataclasses.replace(check, node=self.node)
        if check.service_id:
            service = self.service(check.service_id, check.namespace)
            if service is None:
                raise NotFound(f'ServiceID "{check.service_id}" does not exist')
            check = dataclasses.replace(check, service_name=service.name, service_tags=service.tags)

        def plan(view: View) -> Plan:
            p = Plan()
            if check.service_id:
                svc = view["services"].get(ServiceRef.of(self.node, check.namespace, check.service_id))
                if svc is None:
                    raise NotFound(f'ServiceID "{check.service_id}" does not exist')
                p.expect(_service_key(svc), svc.modify_index)
            write.put_check(p, view, check)
            return p

        await self.writer.apply(plan)

    async def deregister_check(self, check_id: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        def plan(view: View) -> Plan:
            old = view["checks"].get(CheckRef.of(self.node, namespace, check_id))
            if old is None:
                raise NotFound(
                    f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.'
                )
            p = Plan()
            write.delete_check(p, old)
            return p

        await self.writer.apply(plan)

    async def set_check_status(
        self, check_id: str, status: CheckStatus, output: str, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        await self.writer.apply(
            lambda view: write.set_check_status(view, self.node, namespace, check_id, status, output)
        )

    # -- maintenance -------------------------------------------------------------
    async def service_maintenance(
        self, service_id: str, enable: bool, reason: str, namespace: str = DEFAULT_NAMESPACE
    ) -> None:
        def plan(view: View) -> Plan:
            svc = view["services"].get(ServiceRef.of(self.node, namespace, service_id))
            if svc is None:
                raise NotFound(f'No service registered with ID "{service_id}"')
            p = Plan()
            check_id = SERVICE_MAINT_PREFIX + service_id
            old = view["checks"].get(CheckRef.of(self.node, namespace, check_id))
            if enable:
                write.put_check(p, view, Check(
                    node=self.node, check_id=check_id, name="Service Maintenance Mode",
                    status=CheckStatus.CRITICAL, notes=reason or DEFAULT_MAINT_REASON,
                    service_id=svc.id, service_name=svc.name, service_tags=svc.tags,
                    type=CheckType.MAINTENANCE, namespace=namespace,
                ), keep_state=False)
            elif old is not None:
                write.delete_check(p, old)
            return p

        await self.writer.apply(plan)

    async def node_maintenance(self, enable: bool, reason: str) -> None:
        def plan(view: View) -> Plan:
            p = Plan()
            old = view["checks"].get(CheckRef.of(self.node, DEFAULT_NAMESPACE, NODE_MAINT_ID))
            if enable:
                write.put_check(p, view, Check(
                    node=self.node, check_id=NODE_MAINT_ID, name="Node Maintenance Mode",
                    status=CheckStatus.CRITICAL, notes=reason or DEFAULT_NODE_MAINT_REASON,
                    type=CheckType.MAINTENANCE,
                ), keep_state=False)
            elif old is not None:
                write.delete_check(p, old)
            return p

        await self.writer.apply(plan)


def _service_key(s: Service) -> str:
    return keys.service_key(write.service_ref(s))


def parse_status(value: str) -> CheckStatus:
    try:
        return CheckStatus(value)
    except ValueError:
        raise InvalidInput("Status", value, message=f"Invalid check status: '{value}'") from None


def _warn(defn: ServiceDefinition) -> None:
    """What Consul logs but accepts: a name or tag DNS cannot serve (catalog/validate.py)."""
    for warning in definition_warnings(defn):
        log.warning("%s", warning)
