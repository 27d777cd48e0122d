"""The composition root: one process = store + view + API + DNS + check runners.

    config files + flags ─▶ AgentConfig
                               │
    SQLiteBackend ─watch─▶ View ◀── queries ── HTTP API (aiohttp), DNS server
         ▲                  │
         └──── Writer ◀─────┴── LocalAgent (register, TTL, maintenance) ◀── CheckRunner

Lifecycle: ``run()`` starts everything in one TaskGroup and returns when ``stop()``
is called (SIGTERM/SIGINT). SIGHUP re-reads the config files and re-registers
the services and checks they define (``reload()``). A write is answered only
after the backend committed it and the view applied it, so a ``kill -9`` after a
200 loses nothing: the next start rebuilds the view from the backend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import signal
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from trellis.acl import Access, Resolver
from trellis.agent import identity
from trellis.agent.local import LocalAgent, SidecarPorts
from trellis.agent.leafcert import LeafManager
from trellis.api import (
    routes_agent,
    routes_catalog,
    routes_config,
    routes_connect_ca,
    routes_health,
    routes_intentions,
    routes_proxycfg,
    routes_status,
)
from trellis.api.app import make_app
from trellis.catalog import write
from trellis.catalog.model import (
    SERF_CHECK_ID,
    SERF_CHECK_NAME,
    SERF_CHECK_OUTPUT,
    Check,
    CheckStatus,
    Node,
    Service,
)
from trellis.catalog.query import aggregate_status
from trellis.catalog import registration as catreg
from trellis.catalog.registration import CATALOG
from trellis.catalog.tables import catalog_tables
from trellis.config.agent_config import AgentConfig
from trellis.config.entry.tables import ConfigEntriesTable
from trellis.connect.ca.manager import CAManager
from trellis.connect.ca.renewal import RenewalPolicy
from trellis.connect.ca.tables import CATable
from trellis.connect.intentions.decide import Default, select_default
from trellis.errors import InvalidInput, TrellisError, Unavailable
from trellis.store.sqlite import SQLiteBackend
from trellis.store.view import View
from trellis.store.writer import Plan, Writer

log = logging.getLogger("trellis.agent")

CONSUL_SERVICE = "consul"
CHECK_SYNC_DEBOUNCE = 0.015  # seconds; DESIGN: rebuilds are debounced by at most 10-20 ms


class _Stopped(Exception):
    """Raised inside the agent's TaskGroup to end every task it owns."""


class Agent:
    def __init__(
        self, cfg: AgentConfig, *, dev: bool = False, reload_config: Callable[[], AgentConfig] | None = None
    ) -> None:
        self.cfg = cfg
        self.dev = dev
        self._reload_config = reload_config
        self._stop = asyncio.Event()
        self.view = View([*catalog_tables(), CATable(), ConfigEntriesTable()])
        self.backend: SQLiteBackend | None = None
        self.writer: Writer | None = None
        self.local: LocalAgent | None = None
        self.runner: Any = None
        self.ca: CAManager | None = None
        self.leaves: LeafManager | None = None
        self.proxies: Any = None
        self.node_name = cfg.node_name
        self.datacenter = cfg.datacenter
        self.node_id = ""
        self.address = advertise_address(cfg)
        self.http_addresses: list[tuple[str, int]] = []
        self.dns_addresses: list[tuple[str, int]] = []
        self._config_services: set[tuple[str, str]] = set()
        self._config_checks: set[tuple[str, str]] = set()
        self._config_started = False
        self._reload_requested = asyncio.Event()
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self.started = asyncio.Event()
        self.resolver = Resolver()
        self.resolver.default_policy = cfg.acl.default_policy  # reported even with ACLs off, as Consul

    # -- context for the API ---------------------------------------------------
    @property
    def identity(self) -> identity.Identity:
        p = self.cfg.ports
        return identity.Identity(
            node=self.node_name, node_id=self.node_id, datacenter=self.datacenter,
            primary_datacenter=self.cfg.primary_datacenter, server=self.cfg.server, address=self.address,
            grpc_port=p.grpc, server_port=p.server, serf_lan_port=p.serf_lan, serf_wan_port=p.serf_wan,
        )

    @property
    def intention_default(self) -> Default:
        """What decides when no intention matches: ``default_intention_policy``, else the ACL default."""
        acl_allows = not self.cfg.acl.enabled or self.cfg.acl.default_policy == "allow"
        return select_default(self.cfg.default_intention_policy, acl_allows)

    @property
    def server_address(self) -> str:
        return _fmt(self.address, self.cfg.ports.server)

    @property
    def enable_script_checks(self) -> bool:
        return self.cfg.enable_script_checks or self.cfg.enable_local_script_checks

    def describe_member(self, *, wan: bool = False) -> dict[str, Any]:
        return identity.member(self.identity, wan=wan)

    def describe_self(self) -> dict[str, Any]:
        assert self.local is not None
        return identity.self_doc(
            self.identity, debug_config=self.debug_config(), meta=dict(self.cfg.node_meta),
            stats=identity.runtime_stats(self.view.revision, len(self.local.services()),
                                         len(self.local.checks()), waiters=self.view.waiter_count(),
                                         wakeups=self.view.wakeups),
        )

    def debug_config(self) -> dict[str, Any]:
        return {
            "NodeName": self.node_name, "NodeID": self.node_id, "Datacenter": self.datacenter,
            "DataDir": self.cfg.data_dir, "ServerMode": self.cfg.server, "DevMode": self.dev,
            "DNSDomain": self.cfg.domain, "EnableScriptChecks": self.cfg.enable_script_checks,
            "HTTPAddrs": [f"tcp://{_fmt(h, p)}" for h, p in self.http_addresses],
            "DNSAddrs": [f"udp://{_fmt(h, p)}" for h, p in self.dns_addresses],
            "GRPCPort": self.cfg.ports.grpc, "HTTPPort": self.cfg.ports.http, "DNSPort": self.cfg.ports.dns,
        }

    async def ttl_update(self, check: Check, status: CheckStatus, output: str) -> None:
        """Record a TTL result; the runner resets the deadline and writes the change."""
        from trellis.health.model import CheckKey

        key = CheckKey(check.namespace, check.check_id)
        if self.runner.state(key) is None:  # registered a moment ago: not synced yet
            self.runner.sync(self.local.checks())
        await self.runner.ttl_update(key, status, output)

    # -- lifecycle ---------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        check_supported(self.cfg)
        data_dir = self._data_dir()
        self.node_id = _node_id(data_dir, self.cfg.node_id)
        self.backend = await SQLiteBackend.open(
            str(Path(data_dir) / "state.db"), synchronous="NORMAL" if self.dev else "FULL"
        )
        try:
            async with asyncio.TaskGroup() as tg:  # raising _Stopped cancels every owned task
                tg.create_task(self.view.run(self.backend), name="view")
                await self.view.ready.wait()
                self.writer = Writer(self.backend, self.view)
                self.local = LocalAgent(
                    self.view, self.writer, node=self.node_name, datacenter=self.datacenter,
                    sidecar_ports=SidecarPorts(self.cfg.ports.sidecar_min_port, self.cfg.ports.sidecar_max_port),
                    api_scripts=self.cfg.enable_script_checks, local_scripts=self.cfg.enable_local_script_checks,
                )
                await self._start_connect(tg)
                await self._bootstrap_config_entries()
                await self._register_self()
                await self._sync_config_definitions(self.cfg)
                self._start_runner(tg)
                await self._start_dns(tg)  # before HTTP: answering HTTP means fully up
                tg.create_task(self._serve_reloads(), name="reloads")
                tg.create_task(self._keep_self(), name="anti-entropy")
                xds = await self._start_xds()
                http = await self._start_http()
                self._install_signals()
                log.info("trellis agent running: node=%s dc=%s http=%s dns=%s", self.node_name,
                         self.datacenter, self.http_addresses, self.dns_addresses)
                self.started.set()
                try:
                    await self._stop.wait()
                finally:
                    log.info("shutting down")
                    if self.proxies is not None:
                        self.proxies.release()  # parked proxies get their snapshot back now
                    if xds is not None:
                        await xds.stop(1.0)
                    await http.cleanup()
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            self._remove_signals()
            await self.backend.close()
            if self._tmpdir is not None:
                self._tmpdir.cleanup()

    def _data_dir(self) -> str:
        if self.cfg.data_dir:
            os.makedirs(self.cfg.data_dir, exist_ok=True)
            return self.cfg.data_dir
        self._tmpdir = tempfile.TemporaryDirectory(prefix="trellis-dev-")
        return self._tmpdir.name

    # -- self registration ---------------------------------------------------------
    def _self_entries(self) -> tuple[Node, Check, Service | None]:
        node = Node(
            name=self.node_name, address=self.address, id=self.node_id, datacenter=self.datacenter,
            tagged_addresses=identity.tagged_addresses(self.address),
            meta={**identity.node_meta(), **self.cfg.node_meta},
        )
        serf = Check(node=self.node_name, check_id=SERF_CHECK_ID, name=SERF_CHECK_NAME,
                     status=CheckStatus.PASSING, output=SERF_CHECK_OUTPUT, agent_source=CATALOG)
        consul = Service(
            node=self.node_name, id=CONSUL_SERVICE, name=CONSUL_SERVICE,
            port=self.cfg.ports.server, datacenter=self.datacenter, agent_source=CATALOG,
        ) if self.cfg.server else None
        return node, serf, consul

    def plan_self(self, view: View) -> Plan:
        """Anti-entropy for this agent's own node (pure over the view): its node
        record, serfHealth and (on a server) the consul service as the agent says;
        what /v1/catalog/register put on this node besides is removed, as Consul's
        agent does; a node left under an old name by this node ID is removed."""
        node, serf, consul = self._self_entries()
        p = Plan()
        write.put_node(p, view, node)
        write.put_check(p, view, serf, keep_state=False)
        keep_services = {(consul.namespace, consul.id)} if consul else set()
        if consul is not None:
            write.put_service(p, view, consul)
        for s in view["services"].on_node(self.node_name):
            if s.agent_source == CATALOG and (s.namespace, s.id) not in keep_services:
                write.delete_service(p, view, s)
        for c in view["checks"].on_node(self.node_name):
            if c.agent_source == CATALOG and c.check_id != SERF_CHECK_ID and not c.service_id:
                write.delete_check(p, c)
        for old in view["nodes"].rows.values():
            if old.id == self.node_id and old.name.lower() != self.node_name.lower():
                catreg.plan_deregister_into(p, view, old.name)
        return p

    async def _register_self(self) -> None:
        await self.writer.apply(self.plan_self)

    async def reassert_self(self) -> None:
        await self.writer.apply(self.plan_self)

    async def _keep_self(self) -> None:
        """Re-assert this node's record and node checks whenever something changes them
        (catalog registrations on this node call ``reassert_self`` directly)."""
        me = self.node_name.lower()
        watch = [("node", me), ("node-level-checks", me)]
        while True:
            index = self.view.index_of(watch)
            await self.view.wait_change(watch, index, 3600)
            await asyncio.sleep(CHECK_SYNC_DEBOUNCE)
            await self.writer.apply(self.plan_self)

    async def _sync_config_definitions(self, cfg: AgentConfig) -> None:
        """Register what the config files define; drop what they no longer define."""
        from trellis.catalog import definition

        defns = list(cfg.services)
        wanted = {(d.namespace or "default", d.id or d.name) for d in defns}
        if not self._config_started:  # after a restart: what earlier files registered
            self._config_services = {(x.namespace, x.id) for x in self.local.services() if x.agent_source == "config"}
            self._config_checks = {(c.namespace, c.check_id) for c in self.local.checks()
                                   if c.agent_source == "config" and not c.service_id}
            self._config_started = True
        for ns, sid in sorted(self._config_services - wanted):
            if self.local.service(sid, ns) is not None:
                await self.local.deregister_service(sid, ns)
        if defns:
            await self.local.register_services(defns, source="config")
        self._config_services = wanted
        checks = []
        for spec in cfg.checks:
            service = self.local.service(spec.service_id) if spec.service_id else None
            if spec.service_id and service is None:
                raise InvalidInput("check.service_id", spec.service_id,
                                   message=f'check {spec.check_id or spec.name!r}: ServiceID "{spec.service_id}" does not exist')
            checks.append(definition.build_check(spec, node=self.node_name, service=service, source="config"))
        wanted_checks = {(c.namespace, c.check_id) for c in checks}
        for ns, cid in sorted(self._config_checks - wanted_checks):
            if self.local.check(cid, ns) is not None:
                await self.local.deregister_check(cid, ns)
        for c in checks:
            await self.local.register_check(c, source="config")
        self._config_checks = wanted_checks

    async def reload(self) -> None:
        """Re-read the config files and sync their services and checks. A bad file
        or a rejected definition is logged and the running configuration kept."""
        if self._reload_config is None:
            return
        try:
            cfg = await asyncio.to_thread(self._reload_config)
            await self._sync_config_definitions(dataclasses.replace(self.cfg, services=cfg.services,
                                                                    checks=cfg.checks))
        except TrellisError as exc:  # a bad file must not stop a running agent
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        self.cfg = dataclasses.replace(self.cfg, services=cfg.services, checks=cfg.checks)
        log.info("reloaded: %d services and %d checks from config files", len(cfg.services), len(cfg.checks))

    async def _serve_reloads(self) -> None:
        """SIGHUP sets a flag; this one owned task reloads, one reload at a time."""
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            await self.reload()

    # -- subsystems ----------------------------------------------------------------
    async def _start_connect(self, tg: asyncio.TaskGroup) -> None:
        """The CA (this agent is a server: it keeps the CA state) and the agent's leaves."""
        c = self.cfg.connect
        policy = RenewalPolicy(c.leaf_renew_after, c.leaf_renew_before, c.root_change_jitter)
        self.ca = CAManager(self.view, self.writer, datacenter=self.datacenter, enabled=c.enabled,
                            domain=self.cfg.domain, prune_interval=c.root_prune_interval)
        await self.ca.initialize(c.ca_provider, c.ca_config)
        self.leaves = LeafManager(self.view, self.ca, datacenter=self.datacenter, policy=policy)
        from trellis.proxycfg.model import DefaultDecision
        from trellis.proxycfg.watcher import ProxyWatcher

        def default() -> DefaultDecision:
            d = self.intention_default
            return DefaultDecision(d.allowed, d.reason)

        def proxy_up(proxy: Any) -> None:
            # its TCP/HTTP checks see it listening now, not at their next interval; once
            # more a moment later, in case its listeners were still being bound
            if self.runner is not None:
                from trellis.health.model import ServiceKey

                key = ServiceKey(proxy.namespace, proxy.id)
                self.runner.probe_now(key)
                asyncio.get_running_loop().call_later(1.0, self.runner.probe_now, key)

        self.proxies = ProxyWatcher(self.view, self.leaves, node=self.node_name, datacenter=self.datacenter,
                                    default=default, domain=self.cfg.domain, on_proxy_up=proxy_up)
        if c.enabled:
            tg.create_task(self.ca.run(), name="ca")
            tg.create_task(self.leaves.run(), name="leaves")
            tg.create_task(self.proxies.run(), name="proxycfg")

    async def _start_xds(self) -> Any:
        """The gRPC xDS server for Envoy sidecars, on the gRPC port (off when it is -1)."""
        if self.cfg.ports.grpc <= 0 or self.proxies is None or not self.cfg.connect.enabled:
            return None
        from trellis.xds.resources import translate
        from trellis.xds.server import start_xds_server
        from trellis.xds.translate.problems import problems

        hosts = _hosts(self.cfg.addresses.grpc or self.cfg.client_addr)
        try:
            server = await start_xds_server(self.proxies, translate, hosts, self.cfg.ports.grpc, problems=problems)
        except OSError as exc:
            raise Unavailable(f"gRPC (xDS) listener on port {self.cfg.ports.grpc}: {exc.strerror or exc}") from None
        log.info("xDS (delta ADS) listening on %s port %d", ", ".join(hosts), self.cfg.ports.grpc)
        return server

    async def _bootstrap_config_entries(self) -> None:
        """``config_entries { bootstrap = [...] }``: written (upserted) on every start, as
        Consul's servers do; an entry that does not decode or validate stops the start."""
        from trellis.config.entry.decode import decode_entry
        from trellis.config.entry.write import plan_put

        for i, raw in enumerate(self.cfg.config_entries_bootstrap):
            try:
                entry = decode_entry(raw)
                await self.writer.apply(lambda v, e=entry: plan_put(v, e, datacenter=self.datacenter))
            except InvalidInput as exc:
                raise InvalidInput("config_entries.bootstrap", message=f"config_entries.bootstrap[{i}]: {exc}") from None

    async def _start_http(self) -> web.AppRunner:
        app = make_app(self, [routes_agent, routes_catalog, routes_health, routes_status, routes_connect_ca, routes_config,
                        routes_intentions, routes_proxycfg],
                       pretty=self.dev, resolver=self.resolver)
        # handler_cancellation: a blocking query whose client hung up stops waiting (STYLE §5)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                               handler_cancellation=True)
        await runner.setup()
        port = self.cfg.ports.http
        hosts = _hosts(self.cfg.addresses.http or self.cfg.client_addr)
        for host in hosts:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                if host == "::1" and len(hosts) > 1:  # a machine without IPv6 loopback
                    log.warning("HTTP: not listening on [::1]:%d: %s", port, exc.strerror)
                    continue
                await runner.cleanup()
                raise Unavailable(f"HTTP listener on {_fmt(host, port)}: {exc.strerror or exc}") from None
            self.http_addresses.append((host, port))
        return runner

    async def _start_dns(self, tg: asyncio.TaskGroup) -> None:
        if self.cfg.ports.dns <= 0:
            return
        from trellis.dns.server import DnsServer

        hosts = _hosts(self.cfg.addresses.dns or self.cfg.client_addr)
        self.dns_addresses = [(h, self.cfg.ports.dns) for h in hosts]
        server = DnsServer(self.view, self.dns_config(), self.dns_addresses,
                           authorize=self._dns_authorize, token=self.cfg.acl.tokens.get("dns") or None)
        task = tg.create_task(server.run(), name="dns")
        ready = asyncio.ensure_future(server.ready.wait())
        await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # failed to bind: surface the error now
            ready.cancel()
            task.result()

    def _dns_authorize(self, query: Any, token: str | None) -> bool:
        """DNS passes the same ACL seam as HTTP: service or node read on what it names."""
        from trellis.dns.model import NodeQuery, ServiceQuery

        authz = self.resolver.resolve(token)
        if isinstance(query, ServiceQuery):
            return authz.allowed("service", query.name, Access.READ)
        if isinstance(query, NodeQuery):
            return authz.allowed("node", query.name, Access.READ)
        return True

    def dns_config(self) -> Any:
        from trellis.dns.answer import DnsConfig

        return DnsConfig.from_agent_config(self.cfg)

    def _start_runner(self, tg: asyncio.TaskGroup) -> None:
        from trellis.health.runner import CheckRunner

        async def report(key: Any, status: CheckStatus, output: str) -> None:
            # A failure propagates: the runner keeps the old state (and a TTL
            # update answers the error instead of a 200).
            await self.local.set_check_status(key.check_id, status, output, key.namespace)

        async def deregister(service_id: str, namespace: str = "default") -> None:
            if self.local.service(service_id, namespace) is not None:
                log.info("deregistering %s: critical for longer than deregister_critical_service_after", service_id)
                await self.local.deregister_service(service_id, namespace)

        self.runner = CheckRunner(
            report, enable_script_checks=self.enable_script_checks,
            alias_status=self._alias_status, deregister=deregister,
        )
        tg.create_task(self.runner.run(), name="checks")
        tg.create_task(self._follow_checks(), name="check-sync")

    def _alias_status(self, node: str, service_id: str) -> tuple[CheckStatus, str]:
        """Consul's alias check: a service's health, or a node's when no service is named."""
        node = node or self.node_name
        checks = list(self.view["checks"].node_level(node))
        if not service_id:
            if self.view["nodes"].get(node) is None:
                return CheckStatus.CRITICAL, f"Node {node} not found"
        else:
            found = [s for s in self.view["services"].on_node(node) if s.id == service_id]
            if not found:
                return CheckStatus.CRITICAL, f"Service {service_id} could not be found on node {node}"
            checks += self.view["checks"].of_service(node, found[0].namespace, service_id)
        status = aggregate_status(checks)
        if status is CheckStatus.PASSING:
            return status, "All checks passing."
        return status, f"Aliased {'service' if service_id else 'node'} is {status.value}"

    async def _follow_checks(self) -> None:
        watch = [("node-checks", self.node_name.lower()), ("node-services", self.node_name.lower())]
        while True:
            index = self.view.index_of(watch)
            self.runner.sync(self.local.checks())
            self.runner.poke_alias()
            await self.view.wait_change(watch, index, 3600)
            await asyncio.sleep(CHECK_SYNC_DEBOUNCE)  # coalesce a burst of registrations

    # -- signals ---------------------------------------------------------------------
    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, self.stop)
            loop.add_signal_handler(signal.SIGINT, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass

    def _remove_signals(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        except (NotImplementedError, RuntimeError):
            pass


def check_supported(cfg: AgentConfig) -> None:
    """Refuse settings whose absence would be unsafe; warn about ones not acted on yet."""
    if cfg.acl.enabled:
        raise InvalidInput(
            "acl.enabled", True,
            message="acl.enabled = true: ACL enforcement is not implemented yet; refusing to start "
                    "rather than allow every request",
        )
    for setting, effect in _not_yet_supported(cfg):
        log.warning("%s is set but not supported yet: %s", setting, effect)


def advertise_address(cfg: AgentConfig) -> str:
    """The node's address: ``advertise_addr``, else ``bind_addr``; an unspecified bind
    (0.0.0.0, ::) advertises the host's own address, or 127.0.0.1 when it has none
    but loopback (Consul picks the single private IP)."""
    for key, value in (("advertise_addr", cfg.advertise_addr), ("bind_addr", cfg.bind_addr)):
        if not value:
            continue
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise InvalidInput(key, value, message=f"{key} {value!r} is not an IP address") from None
        if not ip.is_unspecified:
            return str(ip)
    try:
        host_ip = ipaddress.ip_address(socket.gethostbyname(socket.gethostname()))
    except (OSError, ValueError):
        host_ip = None
    if host_ip is not None and not host_ip.is_loopback and not host_ip.is_unspecified:
        return str(host_ip)
    log.warning("bind_addr is unspecified and the host has no other address: advertising 127.0.0.1 "
                "(set -advertise or -bind)")
    return "127.0.0.1"


def _not_yet_supported(cfg: AgentConfig) -> list[tuple[str, str]]:
    """Settings that are accepted (Consul users have them) but not acted on yet. Pure."""
    rules = [
        (bool(cfg.recursors), "recursors", "names outside the domain are answered REFUSED"),
        (bool(cfg.retry_join), "retry_join", "client agents joining servers come with the clustering issue"),
        (cfg.ui, "ui", "the web UI is not served"),
        (cfg.ports.https > 0, "ports.https", "no HTTPS listener is started"),
        (cfg.ports.grpc_tls > 0, "ports.grpc_tls", "no gRPC TLS listener is started"),
        (bool(cfg.addresses.https), "addresses.https", "no HTTPS listener is started"),
        (cfg.bootstrap_expect > 1, "bootstrap_expect", "one server only until the clustering issue"),
    ]
    return [(name, effect) for present, name, effect in rules if present]


def _hosts(addr: str) -> list[str]:
    return addr.split() or ["127.0.0.1"]


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _node_id(data_dir: str, given: str) -> str:
    """The node ID persists in the data dir so restarts keep the same node."""
    path = Path(data_dir) / "node-id"
    if given:
        try:
            given = str(uuid.UUID(given))
        except ValueError:
            raise InvalidInput("node_id", given, message=f"node_id {given!r} is not a UUID") from None
        path.write_text(given)
        return given
    if path.exists():
        return path.read_text().strip()
    node_id = str(uuid.uuid4())
    path.write_text(node_id)
    return node_id
