"""An operator's SDS server for ingress tests: Envoy's SecretDiscoveryService over real
gRPC (state of the world, ``StreamSecrets``) on 127.0.0.1, serving the certificates it is
given and pushing a new version to every stream when one changes.

    Envoy ──StreamSecrets [names]──▶ SdsServer ──{the named secrets that exist}──▶ Envoy
    test ──put(name, cert, key)──▶ SdsServer ──new version──▶ every open stream

It stands for the user's own SDS server (Vault, cert-manager, ...), which trellis only
points Envoy at; nothing of trellis runs in it.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from trellis.xds import bootstrap

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
_CHANGED = object()


def grpc_cluster(name: str, port: int) -> dict:
    """The static cluster an operator adds to Envoy's bootstrap to reach this server."""
    return bootstrap.grpc_cluster(name, "127.0.0.1", port)


class SdsServer(sds_pb2_grpc.SecretDiscoveryServiceServicer):
    """``asked``: every resource name a stream asked for, in order."""

    def __init__(self) -> None:
        self._secrets: dict[str, secret_pb2.Secret] = {}
        self._lock = threading.Lock()
        self._streams: list[queue.SimpleQueue] = []
        self._version = 0
        self._nonces = itertools.count(1)
        self.asked: list[str] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def put(self, name: str, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve ``name`` (or replace it), and push the change to every open stream."""
        secret = secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=cert_pem),
            private_key=base_pb2.DataSource(inline_bytes=key_pem)))
        with self._lock:
            self._secrets[name] = secret
            self._version += 1
            streams = list(self._streams)
        for q in streams:
            q.put(_CHANGED)

    def stop(self) -> None:
        self._server.stop(grace=0)

    def StreamSecrets(self, request_iterator: Iterator[discovery_pb2.DiscoveryRequest],  # noqa: N802 (gRPC's name)
                      context: grpc.ServicerContext) -> Iterator[discovery_pb2.DiscoveryResponse]:
        events: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._streams.append(events)

        def read() -> None:
            try:
                for request in request_iterator:
                    events.put(request)
            except grpc.RpcError:
                pass
            events.put(None)

        threading.Thread(target=read, daemon=True).start()
        names: list[str] = []
        sent = (-1, ())
        try:
            while (event := events.get()) is not None:
                if event is not _CHANGED:
                    names = list(event.resource_names)
                    self.asked += names
                with self._lock:
                    version = self._version
                    found = [self._secrets[n] for n in names if n in self._secrets]
                if (version, tuple(names)) == sent:
                    continue  # an ACK, or nothing new for this stream
                sent = (version, tuple(names))
                yield discovery_pb2.DiscoveryResponse(
                    version_info=str(version), type_url=SECRET_TYPE, nonce=str(next(self._nonces)),
                    resources=[_pack(s) for s in found])
        finally:
            with self._lock:
                self._streams.remove(events)


def _pack(secret: secret_pb2.Secret) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(secret)
    return packed
