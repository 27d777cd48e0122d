"""The proxy's Prometheus metrics and the ``/metrics`` endpoint that serves them (shell).

Rules:
1. Each proxy has its own ``CollectorRegistry`` (several proxies may share a process,
   as in tests); nothing is registered globally.
2. ``source`` and ``destination`` are service names: on the public listener the peer's
   service and ours, on an upstream listener ours and the upstream's. A peer without a
   service identity is counted as ``source="unknown"``.
3. Bytes ``in`` are those the connection's initiator sent, ``out`` those sent back to it.
4. The endpoint is an aiohttp app on the proxy's own loop (``MetricsServer``), started
   and stopped by the proxy; it listens where ``-metrics-addr`` or
   ``envoy_prometheus_bind_addr`` says.
"""

from __future__ import annotations

import prometheus_client as prom
from aiohttp import web

UNKNOWN = "unknown"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProxyMetrics:
    """Every metric the proxy exports (rule 1-3)."""

    def __init__(self, registry: prom.CollectorRegistry | None = None) -> None:
        self.registry = registry or prom.CollectorRegistry(auto_describe=True)
        pair = ("source", "destination")
        r = self.registry
        self.opened = prom.Counter("trellis_proxy_connections_opened", "Connections spliced through the proxy.",
                                   pair, registry=r)
        self.closed = prom.Counter("trellis_proxy_connections_closed", "Spliced connections that ended.",
                                   pair, registry=r)
        self.denied = prom.Counter("trellis_proxy_connections_denied",
                                   "Inbound connections refused by intentions.", pair, registry=r)
        self.revoked = prom.Counter("trellis_proxy_connections_revoked",
                                    "Open inbound connections closed because intentions turned to deny.",
                                    pair, registry=r)
        self.bytes = prom.Counter("trellis_proxy_bytes", "Bytes spliced, by direction (in: from the initiator).",
                                  (*pair, "direction"), registry=r)
        self.handshake_failures = prom.Counter("trellis_proxy_handshake_failures", "Failed TLS handshakes.",
                                               ("listener", "reason"), registry=r)
        self.upstream_failures = prom.Counter("trellis_proxy_upstream_connect_failures",
                                              "Failed connection attempts to an upstream instance.",
                                              ("destination", "reason"), registry=r)
        self.connect_latency = prom.Histogram("trellis_proxy_upstream_connect_seconds",
                                              "TCP connect + TLS handshake to an upstream instance.",
                                              ("destination",), buckets=_LATENCY_BUCKETS, registry=r)
        self.open = prom.Gauge("trellis_proxy_open_connections", "Connections open now.", registry=r)
        self.snapshot_index = prom.Gauge("trellis_proxy_snapshot_index", "Index of the applied snapshot.",
                                         registry=r)

    def render(self) -> bytes:
        return prom.generate_latest(self.registry)


class MetricsServer:
    """Rule 4: ``GET /metrics`` on ``host:port``."""

    def __init__(self, metrics: ProxyMetrics, address: str) -> None:
        self.metrics = metrics
        self.address = address
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Raises OSError when the address cannot be bound, ValueError when it is not host:port."""
        host, sep, port = self.address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"metrics address {self.address!r} is not host:port")
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port)).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": prom.CONTENT_TYPE_LATEST})
