"""The built-in proxy process: follow the agent's snapshots, run the listeners, drain at stop (shell).

    serve(agent_url, proxy_id) ─▶ ProxyServer.run
        first snapshot (GET, retried while the agent is away) ─▶ apply ─▶ listeners
        _follow:    GET proxy-snapshot?index=N&wait=60s ─▶ new version? apply (latest wins)
        _heartbeat: PUT .../status {AppliedVersion, Connections, PID, Extra.problems} every
                    few seconds and after each apply ─▶ {"Stop": true}? stop
        stop (caller's event, snapshot.stop, heartbeat Stop) ─▶ stop accepting ─▶ drain ─▶ exit

Rules:
1. ``apply`` is synchronous and runs to completion between two awaits: a new
   connection sees either the old contexts/authorizer/specs or the new ones, never a mix.
2. Contexts are rebuilt only when the leaf or roots change, the authorizer only when
   the intentions, default or identity change; a new authorizer re-decides the open
   inbound connections and closes the ones now denied (``close_denied_connections``).
3. Losing the agent changes nothing for traffic: the last snapshot keeps serving; the
   follower retries with back-off (logged once when lost, once when back) and asks
   with index 0 on its return so it catches up at once.
4. An upstream whose port cannot be bound is logged and retried at every heartbeat and
   snapshot; everything else keeps serving.
5. What the proxy leaves out or defaults (the plan's warnings, its refused upstreams, an
   upstream it cannot bind yet, TLS refused for want of a leaf or roots, a leaf it cannot
   load) goes with every heartbeat as ``Extra.problems``, one sentence each, as an Envoy
   stream reports its translation's problems: ``connect proxy -list`` shows both alike.
6. Exit codes: 0 after a requested stop; 1 when the proxy cannot start (unknown proxy,
   token refused, no public/local port, public address not bindable) or when its
   follower or heartbeat fails with a bug (after draining, so the supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass

from trellis.errors import NotFound, PermissionDenied, TrellisError, Unavailable
from trellis.proxy.agent_client import AgentClient
from trellis.proxy.authz import Authorizer, authz_input, revoked
from trellis.proxy.listener import PublicListener, Shared, UpstreamListener, bind
from trellis.proxy.metrics import UNKNOWN, MetricsServer, ProxyMetrics
from trellis.proxy.plan import ListenerPlan, PlanError, build_plan, diff_plans
from trellis.proxy.tls import build_contexts, context_key
from trellis.proxycfg.model import ConnectProxySnapshot

BLOCKING_WAIT = 60.0
HEARTBEAT_INTERVAL = 5.0
RETRY_MIN, RETRY_MAX = 0.2, 3.0


class StartError(TrellisError):
    """The proxy cannot start (rule 5)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """How often the proxy talks to its agent (tests shorten these)."""

    blocking_wait: float = BLOCKING_WAIT
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    retry_min: float = RETRY_MIN
    retry_max: float = RETRY_MAX


async def serve(agent_url: str, proxy_id: str, *, token: str = "", metrics_addr: str = "",
                stop: asyncio.Event | None = None, log: logging.Logger | None = None) -> int:
    """Run the built-in proxy for ``proxy_id`` until stopped; return the exit code (rule 5).

    ``agent_url`` is the agent's HTTP address (``http://127.0.0.1:8500`` or ``127.0.0.1:8500``);
    ``token`` goes in X-Consul-Token. ``metrics_addr`` (host:port) serves Prometheus
    ``/metrics`` and wins over the proxy config's ``envoy_prometheus_bind_addr``. Setting
    ``stop`` (e.g. from a SIGTERM handler) stops accepting, drains open connections for up
    to ``drain_timeout_ms`` and returns 0; so does a stop asked through the agent
    (``trellis connect proxy -stop``: the snapshot's ``stop`` or the heartbeat's ``Stop``).
    While the agent is unreachable it keeps serving its last snapshot (and, before the
    first one, keeps waiting for the agent until ``stop``). The caller owns the event loop
    (uvloop or not) and the signal handlers; serve() installs none and logs to ``log``
    (default ``trellis.proxy``).
    """
    agent = AgentClient(agent_url, token=token)
    server = ProxyServer(agent, proxy_id, log=log or logging.getLogger("trellis.proxy"), metrics_addr=metrics_addr)
    try:
        return await server.run(stop or asyncio.Event())
    finally:
        await agent.close()


class ProxyServer:
    def __init__(self, agent: AgentClient, proxy_id: str, *, log: logging.Logger, metrics_addr: str = "",
                 metrics: ProxyMetrics | None = None, timing: Timing = Timing()) -> None:
        self.agent = agent
        self.proxy_id = proxy_id
        self.log = log
        self.metrics = metrics or ProxyMetrics()
        self.metrics_addr = metrics_addr
        self.timing = timing
        self.shared = Shared(service="", metrics=self.metrics, log=log)
        self.applied: ConnectProxySnapshot | None = None
        self.plan: ListenerPlan | None = None
        self.public: PublicListener | None = None
        self.upstreams: dict[str, UpstreamListener] = {}
        self._unbound: set[str] = set()  # upstream keys to (re)try binding (rule 4)
        self._tls_problem = ""  # why TLS is refused or stale (rule 5), or ""
        self._told: set[str] = set()  # of those, the ones whose failure was logged
        self._metrics_server: MetricsServer | None = None
        self._stopping = asyncio.Event()
        self._applied = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> int:
        try:
            first = await self._first_snapshot(stop)
            if first is None:
                return 0
            self.apply(first, starting=True)
        except StartError as exc:
            self.log.error("proxy %s cannot start: %s", self.proxy_id, exc)
            return 1
        tasks = [asyncio.create_task(self._follow(), name=f"proxy-follow:{self.proxy_id}"),
                 asyncio.create_task(self._heartbeat(), name=f"proxy-heartbeat:{self.proxy_id}")]
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self._stopping.wait())]
        try:
            await self._start_metrics()
            self.log.info("proxy %s serving %s: public listener %s, %d upstream(s)", self.proxy_id,
                          first.service, self.plan.public.key if self.plan else "?", len(self.upstreams))
            done, _ = await asyncio.wait([*waits, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*tasks, *waits):
                task.cancel()
            await asyncio.gather(*tasks, *waits, return_exceptions=True)
            await self.shutdown()
        crashed = [t for t in tasks if t in done and not t.cancelled() and t.exception() is not None]
        for task in crashed:  # rule 5: a bug, not a stop
            self.log.error("proxy %s: %s failed", self.proxy_id, task.get_name(), exc_info=task.exception())
        return 1 if crashed else 0

    async def _first_snapshot(self, stop: asyncio.Event) -> ConnectProxySnapshot | None:
        attempt = 0
        while not stop.is_set():
            try:
                return await self.agent.snapshot(self.proxy_id)
            except NotFound as exc:
                raise StartError(f"unknown proxy ID {self.proxy_id!r}: {exc}") from None
            except PermissionDenied as exc:
                raise StartError(f"the agent refused the token: {exc}") from None
            except Unavailable as exc:
                if attempt == 0:
                    self.log.warning("waiting for the agent: %s", exc)
                attempt += 1
                await _first_of(stop.wait(), asyncio.sleep(self._backoff(attempt)))
        return None

    async def shutdown(self) -> None:
        """Stop accepting, let open connections finish within the drain timeout, then cut them."""
        self.shared.draining = True
        listeners = [*self.upstreams.values(), *([self.public] if self.public else [])]
        await asyncio.gather(*(listener.close() for listener in listeners), return_exceptions=True)
        self.upstreams.clear()
        drain = self.plan.settings.drain_timeout if self.plan else 0.0
        pending = set(self.shared.tasks)
        if pending:
            self.log.info("proxy %s draining %d connection(s) for up to %.1fs", self.proxy_id, len(pending), drain)
            _, pending = await asyncio.wait(pending, timeout=drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        self.log.info("proxy %s stopped", self.proxy_id)

    async def _start_metrics(self) -> None:
        address = self.metrics_addr or (self.plan.settings.metrics_addr if self.plan else "")
        if not address:
            return
        server = MetricsServer(self.metrics, address)
        try:
            await server.start()
        except (OSError, ValueError) as exc:
            self.log.error("metrics: cannot serve on %s: %s (the proxy runs without them)", address, exc)
            return
        self._metrics_server = server
        self.log.info("metrics on http://%s/metrics", address)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.timing.retry_max, self.timing.retry_min * 2 ** min(attempt, 16))
        return random.uniform(ceiling / 2, ceiling)

    # -- following the agent ------------------------------------------------------------------------
    async def _follow(self) -> None:
        assert self.applied is not None
        index, failures = self.applied.index, 0
        while True:
            try:
                snap = await self.agent.snapshot(self.proxy_id, index=index, wait=self.timing.blocking_wait)
            except (Unavailable, NotFound, PermissionDenied) as exc:  # rule 3
                if failures == 0:
                    self.log.warning("agent lost (%s); serving the last snapshot (version %s) and retrying",
                                     exc, self.applied.version)
                failures += 1
                index = 0
                await asyncio.sleep(self._backoff(failures))
                continue
            if failures:
                self.log.info("agent back after %d failed attempt(s); following again", failures)
                failures = 0
            index = snap.index
            if snap.version != self.applied.version or snap.stop:
                self.apply(snap)
            if snap.stop:
                self.log.info("proxy %s: the agent asks it to stop", self.proxy_id)
                self._stopping.set()
                return

    async def _heartbeat(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.timing.heartbeat_interval):
                    await self._applied.wait()
            except TimeoutError:
                pass
            self._applied.clear()
            self._bind_unbound()
            self.shared.flush_bytes()
            assert self.applied is not None
            try:
                stop = await self.agent.heartbeat(self.proxy_id, applied_version=self.applied.version,
                                                  connections=self.shared.spliced,
                                                  extra={"problems": self.problems()})
            except TrellisError:
                continue  # the follower reports agent loss
            if stop:
                self.log.info("proxy %s: the agent asks it to stop", self.proxy_id)
                self._stopping.set()
                return

    # -- applying a snapshot (rule 1: no await in here) -------------------------------------------------
    def apply(self, snap: ConnectProxySnapshot, *, starting: bool = False) -> None:
        """Make ``snap`` what new connections get. Raises StartError only when ``starting``."""
        try:
            plan = build_plan(snap)
        except PlanError as exc:
            if starting:
                raise StartError(str(exc)) from None
            self.log.error("snapshot %s ignored: %s", snap.version, exc)
            return
        self._report(plan)
        self.shared.service = snap.service
        self._apply_contexts(snap)
        self._apply_authorizer(snap, plan, starting)
        self._apply_listeners(plan, starting)
        self.plan, self.applied = plan, snap
        self.metrics.snapshot_index.set(snap.index)
        self._applied.set()
        self.log.info("proxy %s applied snapshot %s (index %d)", self.proxy_id, snap.version, snap.index)

    def problems(self) -> list[str]:
        """Rule 5: what the applied plan leaves out or defaults, in the order it was decided."""
        if self.plan is None:
            return []
        found = list(self.plan.warnings)
        found += [f"upstream {r.destination} on {r.key} refused: {r.reason}" for r in self.plan.refused]
        found += [f"upstream {spec.destination}: cannot listen on {key} yet (retrying)"
                  for key in sorted(self._unbound) if (spec := self.plan.upstream(key)) is not None]
        if self._tls_problem:
            found.append(self._tls_problem)
        return found

    def _report(self, plan: ListenerPlan) -> None:
        before = self.plan
        for warning in plan.warnings:
            if before is None or warning not in before.warnings:
                self.log.warning("%s", warning)
        for refused in plan.refused:
            if before is None or refused not in before.refused:
                self.log.error("upstream %s on %s refused: %s", refused.destination, refused.key, refused.reason)

    def _apply_contexts(self, snap: ConnectProxySnapshot) -> None:
        key = context_key(snap)
        current = self.shared.contexts
        if current is not None and current.key == key:
            return
        if key is None or snap.leaf is None:
            self.log.warning("proxy %s: the snapshot has no leaf certificate or roots; TLS is refused", self.proxy_id)
            self.shared.contexts = None
            self._tls_problem = "no leaf certificate or roots in the snapshot yet; TLS is refused"
            return
        try:
            self.shared.contexts = build_contexts(snap.leaf, snap.roots)
        except (ssl.SSLError, OSError) as exc:  # keep the last good ones
            self.log.error("proxy %s: cannot load the leaf certificate %s: %s", self.proxy_id, snap.leaf.serial, exc)
            kept = "the previous one is still served" if self.shared.contexts is not None else "TLS is refused"
            self._tls_problem = f"cannot load the leaf certificate {snap.leaf.serial}: {exc}; {kept}"
        else:
            self._tls_problem = ""

    def _apply_authorizer(self, snap: ConnectProxySnapshot, plan: ListenerPlan, starting: bool) -> None:
        given = authz_input(snap)
        current = self.shared.authorizer
        if current is not None and current.input == given:
            return
        authorizer = self.shared.authorizer = Authorizer(given)
        if starting or not plan.settings.close_denied_connections:
            return
        peers = {conn_id: record.uris for conn_id, record in self.shared.inbound.items()}
        for conn_id, decision in revoked(authorizer, peers):  # rule 2
            record = self.shared.inbound.pop(conn_id)
            self.metrics.revoked.labels(decision.source_service or UNKNOWN, snap.service).inc()
            self.log.warning("%s: closing an open connection", decision.describe())
            record.abort()

    def _apply_listeners(self, plan: ListenerPlan, starting: bool) -> None:
        change = diff_plans(self.plan, plan)
        if change.rebind_public or self.public is None:
            self._bind_public(plan, starting)
        elif self.public.spec != plan.public:
            self.public.spec = plan.public
        for key in change.stop:
            self._unbound.discard(key)
            listener = self.upstreams.pop(key, None)
            if listener is not None:
                self.log.info("%s: removed; its open connections continue", listener.name)
                self.shared.spawn(listener.close(), f"close:{listener.name}")
        for spec in change.update:
            if spec.key in self.upstreams:
                self.upstreams[spec.key].update(spec)
        self._unbound.update(spec.key for spec in change.start)
        self._unbound &= {spec.key for spec in plan.upstreams}
        self._bind_unbound(plan)

    def _bind_public(self, plan: ListenerPlan, starting: bool) -> None:
        spec = plan.public
        try:
            sock = bind(spec.bind_address, spec.bind_port)
        except OSError as exc:
            if starting:
                raise StartError(f"cannot listen on {spec.key}: {exc}") from None
            self.log.error("public listener: cannot move to %s: %s; still on %s", spec.key, exc,
                           self.public.spec.key if self.public else "nothing")
            return
        old, self.public = self.public, PublicListener(self.shared, sock, spec)
        self.public.start()
        if old is not None:
            self.shared.spawn(old.close(), f"close:{old.name}")

    def _bind_unbound(self, plan: ListenerPlan | None = None) -> None:
        """Rule 4."""
        plan = plan or self.plan
        if plan is None or self.shared.draining:
            return
        for key in sorted(self._unbound):
            spec = plan.upstream(key)
            if spec is None:
                continue
            try:
                sock = bind(spec.bind_address, spec.bind_port)
            except OSError as exc:
                if key not in self._told:
                    self.log.error("upstream %s: cannot listen on %s: %s (retrying)", spec.destination, key, exc)
                    self._told.add(key)
                continue
            listener = self.upstreams[key] = UpstreamListener(self.shared, sock, spec)
            listener.start()
            self._unbound.discard(key)
            self._told.discard(key)
            self.log.info("upstream %s listening on %s", spec.destination, key)


async def _first_of(*aws) -> None:
    """Wait until the first of ``aws`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
