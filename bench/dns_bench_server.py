"""Serve one SRV answer from trellis' DNS server, for bench_dns.py.

    python bench/dns_bench_server.py PORT

The DNS server alone (bench_dns.py also measures the whole agent): a view holding node n1 (10.0.0.1)
with service web on port 8080, served on 127.0.0.1:PORT (UDP and TCP) under
uvloop, until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys

from trellis.catalog import keys
from trellis.catalog.keys import ServiceRef
from trellis.catalog.model import Node, Service
from trellis.catalog.tables import catalog_tables
from trellis.dns import DnsConfig, DnsServer
from trellis.store import doc
from trellis.store.backend import KeyValue
from trellis.store.view import View


def bench_view() -> View:
    node = Node("n1", "10.0.0.1")
    web = Service("n1", "web", "web", port=8080)
    view = View(catalog_tables())
    view.load(
        [
            KeyValue(keys.node_key(node.name), doc.encode(node), 2, 2),
            KeyValue(keys.service_key(ServiceRef.of("n1", web.namespace, web.id)), doc.encode(web), 3, 3),
        ],
        3,
    )
    return view


async def serve(port: int) -> None:
    server = DnsServer(bench_view(), DnsConfig(), [("127.0.0.1", port)])
    task = asyncio.create_task(server.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.ready.wait()
    gc.freeze()  # everything built so far lives for the whole run: keep it out of GC passes
    print("ready", flush=True)
    await stop.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main()
