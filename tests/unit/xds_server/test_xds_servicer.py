"""XdsServer with a fake stream and a fake snapshot source (STYLE §2): the first request,
snapshots in and responses out, ACK/NACK reporting, stream endings, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
import pytest
from xds_fakes import (
    FakeSource,
    FakeStream,
    build_from_snapshot,
    cla,
    cluster,
    request,
    sidecar,
)

from trellis.errors import InvalidInput, NotFound
from trellis.xds import delta
from trellis.xds.server import StreamTimeout, XdsServer, whole
from trellis.xds.types import CLUSTER, ENDPOINT, LISTENER, SECRET

PROXY = "web-sidecar-proxy"
LOG = logging.getLogger("test.xds")


def make_server(source: FakeSource, build=build_from_snapshot, **kw: Any) -> XdsServer:
    return XdsServer(source, whole(build), log=LOG, **kw)


class Session:
    """A served stream in a task, with Envoy's side of the conversation."""

    def __init__(self, server: XdsServer) -> None:
        self.server = server
        self.stream = FakeStream()
        self.task: asyncio.Task | None = None

    def start(self, first: Any) -> Session:
        self.stream.put(first)
        self.task = asyncio.create_task(self.server.serve(self.stream))
        return self

    async def expect(self, kind: str, names: list[str], removals: list[str] | None = None) -> Any:
        resp = await self.stream.next_response()
        assert (delta.SHORT[resp.type_url], [r.name for r in resp.resources], list(resp.removed_resources)) == (
            kind, names, removals or [])
        return resp

    def ack(self, resp: Any, **kw: Any) -> None:
        self.stream.put(request(resp.type_url, nonce=resp.nonce, **kw))

    async def close(self) -> None:
        self.stream.put(None)
        await asyncio.wait_for(self.task, 2)


async def until(predicate, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def handshake(source: FakeSource, **kw: Any) -> Session:
    """Envoy's opening as Envoy 1.40 does it: CDS, EDS by name, ACKs, LDS, SDS."""
    s = Session(make_server(source, **kw)).start(request(CLUSTER, node=PROXY))
    cds = await s.expect("cds", ["db", "local_app"])
    s.stream.put(request(ENDPOINT, subscribe=("db",)))
    eds = await s.expect("eds", ["db"])
    s.ack(cds)
    s.stream.put(request(LISTENER))
    s.ack(eds)
    lds = await s.expect("lds", ["db:127.0.0.1:9191", "public_listener"])
    s.stream.put(request(SECRET, subscribe=("leaf/default/web", "roots")))
    sds = await s.expect("sds", ["leaf/default/web", "roots"])
    s.ack(lds)
    s.ack(sds)
    return s


# -- the happy path ---------------------------------------------------------------------------


async def test_a_stream_serves_the_snapshot_and_reports_it_applied() -> None:
    source = FakeSource()
    source.publish("v1", sidecar())
    s = await handshake(source)
    await until(lambda: source.applied == "v1")
    last = source.reports[-1]
    assert last["data_plane"] == "envoy"
    assert last["extra"]["acked"] == {"sds": 2, "cds": 2, "eds": 1, "lds": 2}
    assert last["extra"]["sent_version"] == "v1"
    assert last["extra"]["agent"] == "envoy 1.40.0"
    await s.close()


async def test_a_new_snapshot_sends_only_what_changed() -> None:
    source = FakeSource()
    source.publish("v1", sidecar())
    s = await handshake(source)
    source.publish("v2", sidecar(db_port=9999))
    eds = await s.expect("eds", ["db"])
    assert eds.system_version_info == "v2"
    assert source.applied == "v1"
    s.ack(eds)
    await until(lambda: source.applied == "v2")
    assert await s.stream.quiet()
    await s.close()


async def test_snapshots_are_latest_value_wins() -> None:
    source = FakeSource()
    source.publish("v1", sidecar())
    s = await handshake(source)
    for port in range(1, 6):
        source.publish(f"v{port + 1}", sidecar(db_port=port))
    resp = await s.expect("eds", ["db"])  # the burst is one push of the newest
    assert resp.system_version_info == "v6"
    assert resp.resources[0].version == delta.version_of(cla("db", 5))
    s.ack(resp)
    await until(lambda: source.applied == "v6")
    assert await s.stream.quiet()
    await s.close()


async def test_nothing_is_sent_before_the_first_snapshot() -> None:
    source = FakeSource()
    held = {"db": delta.version_of(cluster("db")), "gone": "old"}
    s = Session(make_server(source)).start(request(CLUSTER, node=PROXY, initial=held))
    assert await s.stream.quiet(0.1)  # not even the removal of "gone"
    source.publish("v1", sidecar())
    cds = await s.expect("cds", ["local_app"])
    s.ack(cds)
    await s.expect("cds", [], ["gone"])
    await s.close()


async def test_a_reconnect_holding_everything_gets_nothing_and_counts_as_applied() -> None:
    source = FakeSource()
    versions = delta.version_resources(sidecar())
    held = {t: {n: r.version for n, r in by_name.items()} for t, by_name in versions.items()}
    source.publish("v1", sidecar())
    s = Session(make_server(source)).start(request(CLUSTER, node=PROXY, initial=held[CLUSTER]))
    s.stream.put(request(ENDPOINT, subscribe=("db",), initial=held[ENDPOINT]))
    s.stream.put(request(LISTENER, initial=held[LISTENER]))
    s.stream.put(request(SECRET, subscribe=("leaf/default/web", "roots"), initial=held[SECRET]))
    await until(lambda: source.applied == "v1")
    assert s.stream.sent == []
    await s.close()


# -- NACK -------------------------------------------------------------------------------------


async def test_a_nack_is_logged_reported_and_not_resent(caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource()
    source.publish("v1", sidecar())
    s = await handshake(source)
    bad = sidecar()
    bad[CLUSTER]["local_app"] = cluster("local_app", eds=False, timeout_s=-1)
    source.publish("v2", bad)
    cds = await s.expect("cds", ["local_app"])
    with caplog.at_level(logging.WARNING, logger="test.xds"):
        s.ack(cds, error="Proto constraint validation failed (ClusterValidationError.ConnectTimeout)")
        await until(lambda: "rejected" in caplog.text)
    assert f"{PROXY} (envoy 1.40.0) rejected cds local_app (nonce {cds.nonce}, snapshot v2)" in caplog.text
    assert "ConnectTimeout" in caplog.text
    await until(lambda: source.reports[-1]["extra"].get("rejected") == {"cds": 1})
    assert source.applied == "v1"
    assert source.reports[-1]["extra"]["last_nack"]["names"] == ["local_app"]
    bad[ENDPOINT]["db"] = cla("db", 4242)
    source.publish("v3", bad)  # an unrelated change: only it goes
    s.ack(await s.expect("eds", ["db"]))
    assert await s.stream.quiet()
    await s.close()


# -- how streams end ----------------------------------------------------------------------------


async def test_envoy_hanging_up_ends_the_stream_and_its_tasks() -> None:
    source = FakeSource()
    source.publish("v1", sidecar())
    before = asyncio.all_tasks()
    s = await handshake(source)
    await s.close()
    assert asyncio.all_tasks() - before == set()


async def test_an_unknown_node_ends_the_stream_with_not_found() -> None:
    s = Session(make_server(FakeSource())).start(request(CLUSTER, node="nobody"))
    with pytest.raises(NotFound, match="'nobody'"):
        await asyncio.wait_for(s.task, 2)


async def test_a_first_request_without_a_node_is_invalid() -> None:
    s = Session(make_server(FakeSource())).start(request(CLUSTER))
    with pytest.raises(InvalidInput, match="node.id"):
        await asyncio.wait_for(s.task, 2)


async def test_a_silent_stream_times_out() -> None:
    s = Session(make_server(FakeSource(), first_request_timeout=0.05))
    s.task = asyncio.create_task(s.server.serve(s.stream))
    with pytest.raises(StreamTimeout, match="no request"):
        await asyncio.wait_for(s.task, 2)


async def test_an_unanswered_response_times_out() -> None:
    source = FakeSource()
    source.publish("v1", sidecar())
    s = Session(make_server(source, ack_timeout=0.1)).start(request(CLUSTER, node=PROXY))
    await s.expect("cds", ["db", "local_app"])
    with pytest.raises(StreamTimeout, match="nonce 00000001"):
        await asyncio.wait_for(s.task, 2)


async def test_a_peer_that_does_not_read_times_out() -> None:
    source = FakeSource()
    source.publish("v1", sidecar())
    s = Session(make_server(source, send_timeout=0.05))
    s.stream.block_send = True
    s.start(request(CLUSTER, node=PROXY))
    with pytest.raises(StreamTimeout, match="did not take a response"):
        await asyncio.wait_for(s.task, 2)


@pytest.mark.parametrize("where", ["recv", "send", "snapshot_wait"])
async def test_cancelling_a_stream_leaves_no_task_behind(where: str) -> None:
    source = FakeSource()
    if where != "snapshot_wait":
        source.publish("v1", sidecar())
    before = asyncio.all_tasks()
    s = Session(make_server(source))
    s.stream.block_send = where == "send"
    s.start(request(CLUSTER, node=PROXY))
    await asyncio.sleep(0.05)
    assert not s.task.done()
    s.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await s.task
    assert asyncio.all_tasks() - before == set()


async def test_a_failing_translation_keeps_the_stream_and_the_last_resources(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = FakeSource()
    source.publish("v1", sidecar())

    def build(snap):
        if snap.version == "v2":
            raise ValueError("boom")
        return snap.resources

    s = await handshake(source, build=build)
    with caplog.at_level(logging.ERROR, logger="test.xds"):
        source.publish("v2", sidecar(db_port=1))
        await until(lambda: "translating snapshot v2" in caplog.text)
    await until(lambda: "build_error" in source.reports[-1]["extra"])
    assert source.applied == "v1"
    assert await s.stream.quiet()
    source.publish("v3", sidecar(db_port=3))
    s.ack(await s.expect("eds", ["db"]))
    await until(lambda: source.applied == "v3")
    assert "build_error" not in source.reports[-1]["extra"]
    await s.close()


# -- the gRPC method: status by error type -------------------------------------------------------


class Aborted(Exception):
    pass


class FakeContext:
    """grpc.aio's servicer context, reduced to what the servicer uses."""

    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream
        self.code: grpc.StatusCode | None = None
        self.details = ""

    async def read(self) -> Any:
        req = await self.stream.recv()
        return grpc.aio.EOF if req is None else req

    async def write(self, response: Any) -> None:
        await self.stream.send(response)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


class BrokenSource(FakeSource):
    async def get(self, proxy_id: str, *, index: int = 0, wait: float = 0.0) -> Any:
        if proxy_id == "broken":
            raise RuntimeError("a bug")
        return await super().get(proxy_id, index=index, wait=wait)


@pytest.mark.parametrize(
    ("first", "code", "details"),
    [
        (request(CLUSTER, node="nobody"), grpc.StatusCode.NOT_FOUND, "nobody"),
        (request(CLUSTER), grpc.StatusCode.INVALID_ARGUMENT, "node.id"),
        (request("", node=PROXY), grpc.StatusCode.INVALID_ARGUMENT, "type_url"),
        (request(CLUSTER, node="broken"), grpc.StatusCode.INTERNAL, "a bug"),
    ],
    ids=["unknown_node", "no_node", "no_type", "bug"],
)
async def test_the_grpc_method_maps_errors_to_a_status(first: Any, code: grpc.StatusCode, details: str) -> None:
    source = BrokenSource()
    source.publish("v1", sidecar())
    stream = FakeStream()
    stream.put(first)
    context = FakeContext(stream)
    with pytest.raises(Aborted):
        await asyncio.wait_for(make_server(source).DeltaAggregatedResources(None, context), 2)
    assert context.code is code
    assert details in context.details


async def test_a_bug_in_one_stream_leaves_the_others_serving() -> None:
    source = BrokenSource()
    source.publish("v1", sidecar())
    server = make_server(source)
    broken = FakeStream()
    broken.put(request(CLUSTER, node="broken"))
    good = Session(server).start(request(CLUSTER, node=PROXY))
    with pytest.raises(Aborted):
        await asyncio.wait_for(server.DeltaAggregatedResources(None, FakeContext(broken)), 2)
    await good.expect("cds", ["db", "local_app"])
    await good.close()


async def test_state_of_the_world_is_unimplemented() -> None:
    context = FakeContext(FakeStream())
    with pytest.raises(Aborted):
        await make_server(FakeSource()).StreamAggregatedResources(None, context)
    assert context.code is grpc.StatusCode.UNIMPLEMENTED
    assert "DELTA_GRPC" in context.details
