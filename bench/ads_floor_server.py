"""Baseline (c) of bench_envoy.py part 4: the least a Python grpc.aio delta ADS server can
do for one change that touches every stream.

    python bench/ads_floor_server.py PORT

No agent, no store, no snapshots, no translation, no protocol state beyond a nonce: each
stream answers the simulated Envoy's CDS and LDS requests and its EDS and SDS
subscriptions with resources made once at start, so the clients of bench_envoy.py get in
sync exactly as with the agent. On SIGUSR1 every open stream gets one EDS response (the
same assignment with one more endpoint each time), queued to the stream's own writer task,
as the agent's xDS sessions push. What this costs is the floor the agent's figure is
compared with: gRPC's send and receive of one response and its ACK per stream, on the same
loop (uvloop, as the agent), the same GC thresholds and the same machine. SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from typing import Any

import grpc
import uvloop
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from trellis.cli.agent import tune_gc  # noqa: E402
from trellis.xds.types import CLUSTER, ENDPOINT, LISTENER, LOCAL_APP, SECRET  # noqa: E402

API = "api.default.dc1.internal.bench.consul"


def assignment(n: int) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=API, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(
        lb_endpoints=[endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(socket_address=address_pb2.SocketAddress(
                address="10.9.0.1", port_value=21000 + k)))) for k in range(n)])])


def response(type_url: str, nonce: int, named: list[tuple[str, Any]]) -> discovery_pb2.DeltaDiscoveryResponse:
    out = discovery_pb2.DeltaDiscoveryResponse(type_url=type_url, nonce=f"{nonce:08x}")
    for name, message in named:
        packed = any_pb2.Any()
        packed.Pack(message)
        out.resources.add(name=name, version=str(hash(message.SerializeToString())), resource=packed)
    return out


class Floor(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue] = set()
        self.endpoints = 3

    def change(self) -> None:
        self.endpoints += 1
        for q in self.queues:
            q.put_nowait((ENDPOINT, [(API, assignment(self.endpoints))]))

    async def DeltaAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        queue: asyncio.Queue = asyncio.Queue()
        self.queues.add(queue)
        nonces = itertools.count(1)

        async def write() -> None:
            while True:
                type_url, named = await queue.get()
                await context.write(response(type_url, next(nonces), named))

        writer = asyncio.create_task(write())
        try:
            while True:
                request = await context.read()
                if request is grpc.aio.EOF:
                    return
                if request.response_nonce:
                    continue  # an ACK
                if request.type_url == CLUSTER:
                    queue.put_nowait((CLUSTER, [(LOCAL_APP, cluster_pb2.Cluster(name=LOCAL_APP)), (API, cluster_pb2.Cluster(
                        name=API, type=cluster_pb2.Cluster.EDS))]))
                elif request.type_url == LISTENER:
                    queue.put_nowait((LISTENER, [("public_listener", listener_pb2.Listener(name="public_listener"))]))
                elif request.type_url == ENDPOINT:
                    queue.put_nowait((ENDPOINT, [(API, assignment(self.endpoints))]))
                elif request.type_url == SECRET:
                    queue.put_nowait((SECRET, [(n, secret_pb2.Secret(name=n)) for n in request.resource_names_subscribe]))
        finally:
            self.queues.discard(queue)
            writer.cancel()


async def main(port: int) -> None:
    server = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
    floor = Floor()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(floor, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, floor.change)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    tune_gc()  # as the agent does
    uvloop.run(main(int(sys.argv[1])))
