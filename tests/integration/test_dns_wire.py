"""DnsServer on real loopback sockets, asked by dnspython over UDP and TCP.

Each test starts the server on a free 127.0.0.1 port over a view with instances,
asks as a client would, and stops the server by cancelling its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from trellis.catalog import keys
from trellis.catalog.keys import CheckRef, ServiceRef
from trellis.catalog.model import Check, CheckStatus, Node, Proxy, Service, ServiceKind
from trellis.catalog.tables import catalog_tables
from trellis.dns import DnsConfig, DnsServer
from trellis.store import doc
from trellis.store.backend import Event, EventKind, KeyValue, WatchBatch
from trellis.store.view import View

pytestmark = pytest.mark.integration

MANY = 40  # instances of "many": more than 512 bytes of SRV records


def key_of(v: Node | Service | Check) -> str:
    if isinstance(v, Node):
        return keys.node_key(v.name)
    if isinstance(v, Service):
        return keys.service_key(ServiceRef.of(v.node, v.namespace, v.id))
    return keys.check_key(CheckRef.of(v.node, v.namespace, v.check_id))


def catalog() -> list[Node | Service | Check]:
    values: list[Node | Service | Check] = [
        Node("n1", "10.0.0.1", meta={"rack": "r1"}),
        Node("n2", "10.0.0.2"),
        Service("n1", "web1", "web", port=8080, tags=("v1",)),
        Service("n2", "web2", "web", port=8081, tags=("v2",), address="10.1.0.2"),
        Service(
            "n1",
            "web1-sidecar-proxy",
            "web-sidecar-proxy",
            kind=ServiceKind.CONNECT_PROXY,
            port=21000,
            proxy=Proxy(destination_service_name="web", destination_service_id="web1"),
        ),
        Service("n2", "db", "db", port=5432),
        Check("n2", "db:tcp", "db", CheckStatus.CRITICAL, service_id="db", service_name="db"),
    ]
    for i in range(MANY):
        values += [Node(f"m{i}", f"10.2.0.{i + 1}"), Service(f"m{i}", f"many{i}", "many", port=9000 + i)]
    return values


def make_view() -> View:
    view = View(catalog_tables())
    values = catalog()
    view.load(
        [KeyValue(key_of(v), doc.encode(v), i + 2, i + 2) for i, v in enumerate(values)], len(values) + 2
    )
    return view


def put(view: View, *values: Node | Service | Check) -> None:
    rev = view.revision + 1
    view.apply(WatchBatch(rev, tuple(Event(EventKind.PUT, key_of(v), doc.encode(v), rev) for v in values)))


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    srv = DnsServer(make_view(), DnsConfig(), [("127.0.0.1", 0)])
    task = asyncio.create_task(srv.run())
    async with asyncio.timeout(5):
        await srv.ready.wait()
    try:
        yield srv
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def port(server: DnsServer) -> int:
    return server.bound[0][1]


async def udp(server: DnsServer, name: str, qtype: str = "A", **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, qtype, **kw)  # type: ignore[arg-type]
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port(server), timeout=3)


async def tcp(server: DnsServer, name: str, qtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, qtype)
    return await dns.asyncquery.tcp(q, "127.0.0.1", port=port(server), timeout=3)


async def raw_udp(server: DnsServer, wire: bytes) -> bytes:
    """The reply's bytes as sent (dnspython re-encodes a parsed message differently)."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port(server)))
        await loop.sock_sendall(sock, wire)
        async with asyncio.timeout(3):
            return await loop.sock_recv(sock, 65535)


def rdatas(msg: dns.message.Message, section: str = "answer") -> list[str]:
    return sorted(rd.to_text() for rrset in getattr(msg, section) for rd in rrset)


async def test_a_records_for_healthy_instances(server: DnsServer) -> None:
    msg = await udp(server, "web.service.consul.")
    assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
    assert rdatas(msg) == ["10.0.0.1", "10.1.0.2"]


async def test_srv_with_additionals(server: DnsServer) -> None:
    msg = await udp(server, "web.service.consul.", "SRV")
    assert rdatas(msg) == ["1 1 8080 n1.node.dc1.consul.", "1 1 8081 0a010002.addr.dc1.consul."]
    additional = {(rr.name.to_text(), rd.to_text()) for rr in msg.additional for rd in rr}
    assert additional == {
        ("n1.node.dc1.consul.", "10.0.0.1"),
        ("n1.node.dc1.consul.", '"rack=r1"'),
        ("0a010002.addr.dc1.consul.", "10.1.0.2"),
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("v2.web.service.consul.", ["1 1 8081 0a010002.addr.dc1.consul."]),
        ("_web._v1.service.consul.", ["1 1 8080 n1.node.dc1.consul."]),
        ("_web._tcp.consul.", ["1 1 8080 n1.node.dc1.consul.", "1 1 8081 0a010002.addr.dc1.consul."]),
        ("web.connect.consul.", ["1 1 21000 n1.node.dc1.consul."]),
    ],
    ids=["tag", "rfc2782_tag", "rfc2782_tcp_without_service_label", "connect"],
)
async def test_service_name_forms(server: DnsServer, name: str, expected: list[str]) -> None:
    assert rdatas(await udp(server, name, "SRV")) == expected


async def test_node_lookup_with_meta_txt(server: DnsServer) -> None:
    msg = await udp(server, "n1.node.consul.")
    assert rdatas(msg) == ["10.0.0.1"] and rdatas(msg, "additional") == ['"rack=r1"']
    assert rdatas(await udp(server, "n1.node.dc1.consul.", "TXT")) == ['"rack=r1"']


@pytest.mark.parametrize("name", ["nope.service.consul.", "db.service.consul.", "x.nokind.consul."])
async def test_nxdomain_carries_the_soa(server: DnsServer, name: str) -> None:
    msg = await udp(server, name)
    assert msg.rcode() == dns.rcode.NXDOMAIN and msg.answer == []
    (soa,) = msg.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "consul."


async def test_names_outside_the_domain_are_refused(server: DnsServer) -> None:
    assert (await udp(server, "example.com.")).rcode() == dns.rcode.REFUSED


async def test_reply_echoes_the_question_spelling(server: DnsServer) -> None:
    msg = await udp(server, "WeB.SeRvIcE.CoNsUl.")
    assert msg.question[0].name.to_text() == "WeB.SeRvIcE.CoNsUl."
    assert msg.answer[0].name.to_text() == "WeB.SeRvIcE.CoNsUl."


async def test_udp_truncates_with_tc_and_tcp_gives_everything(server: DnsServer) -> None:
    wire = await raw_udp(server, dns.message.make_query("many.service.consul.", "SRV").to_wire())
    assert len(wire) <= 512
    small = dns.message.from_wire(wire)
    assert small.flags & dns.flags.TC
    kept = rdatas(small)
    assert 0 < len(kept) < MANY
    assert {rr.name for rr in small.additional} == {rd.target for rr in small.answer for rd in rr}

    full = await tcp(server, "many.service.consul.", "SRV")
    assert not full.flags & dns.flags.TC and len(rdatas(full)) == MANY

    edns = await udp(server, "many.service.consul.", "SRV", use_edns=0, payload=1232)
    assert edns.edns == 0 and len(kept) < len(rdatas(edns)) < MANY and edns.flags & dns.flags.TC
    big = await udp(server, "many.service.consul.", "SRV", use_edns=0, payload=8192)
    assert len(rdatas(big)) == MANY and not big.flags & dns.flags.TC


async def test_order_is_shuffled_across_queries(server: DnsServer) -> None:
    orders = set()
    for _ in range(10):
        msg = await udp(server, "many.service.consul.", use_edns=0, payload=4096)
        orders.add(tuple(rd.address for rr in msg.answer for rd in rr))
    assert len(orders) > 1
    assert all(len(o) == MANY for o in orders)


async def test_a_view_change_is_visible_on_the_next_query(server: DnsServer) -> None:
    assert rdatas(await udp(server, "web.service.consul.")) == ["10.0.0.1", "10.1.0.2"]
    put(server.view, Node("n3", "10.0.0.3"), Service("n3", "web3", "web", port=8082))
    assert rdatas(await udp(server, "web.service.consul.")) == ["10.0.0.1", "10.0.0.3", "10.1.0.2"]
    put(server.view, Check("n3", "serfHealth", "Serf Health Status", CheckStatus.CRITICAL))
    assert rdatas(await tcp(server, "web.service.consul.")) == ["10.0.0.1", "10.1.0.2"]


async def test_several_queries_on_one_tcp_connection(server: DnsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port(server))
    try:
        queries = [
            dns.message.make_query(n, "A")
            for n in ("web.service.consul.", "n2.node.consul.", "nope.service.consul.")
        ]
        for q in queries:
            wire = q.to_wire()
            writer.write(len(wire).to_bytes(2) + wire)
        await writer.drain()
        replies = []
        async with asyncio.timeout(3):
            for _ in queries:
                size = int.from_bytes(await reader.readexactly(2))
                replies.append(dns.message.from_wire(await reader.readexactly(size)))
    finally:
        writer.close()
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [r.rcode() for r in replies] == [dns.rcode.NOERROR, dns.rcode.NOERROR, dns.rcode.NXDOMAIN]
    assert rdatas(replies[1]) == ["10.0.0.2"]


async def test_soa_and_ns_for_the_domain(server: DnsServer) -> None:
    msg = await udp(server, "consul.", "SOA")
    assert [rr.rdtype for rr in msg.answer] == [dns.rdatatype.SOA]
    assert (await udp(server, "consul.", "NS")).authority  # no "consul" servers registered: NODATA + SOA


async def test_stopping_closes_the_sockets() -> None:
    srv = DnsServer(make_view(), DnsConfig(), [("127.0.0.1", 0)])
    task = asyncio.create_task(srv.run())
    async with asyncio.timeout(5):
        await srv.ready.wait()
    p = port(srv)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", p)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1 on this machine")
async def test_serves_ipv4_and_ipv6_loopback() -> None:
    srv = DnsServer(make_view(), DnsConfig(), [("127.0.0.1", 0), ("::1", 0)])
    task = asyncio.create_task(srv.run())
    try:
        async with asyncio.timeout(5):
            await srv.ready.wait()
        for host, p in srv.bound:
            q = dns.message.make_query("web.service.consul.", "A")
            assert rdatas(await dns.asyncquery.udp(q, host, port=p, timeout=3)) == ["10.0.0.1", "10.1.0.2"]
            assert rdatas(await dns.asyncquery.tcp(q, host, port=p, timeout=3)) == ["10.0.0.1", "10.1.0.2"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_cancelling_mid_read_closes_open_tcp_connections() -> None:
    srv = DnsServer(make_view(), DnsConfig(), [("127.0.0.1", 0)])
    task = asyncio.create_task(srv.run())
    async with asyncio.timeout(5):
        await srv.ready.wait()
    reader, writer = await asyncio.open_connection("127.0.0.1", port(srv))
    try:
        writer.write(b"\x00")  # half a length prefix: the server is parked in a read
        await writer.drain()
        async with asyncio.timeout(5):
            while not srv._tcp_writers:
                await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            try:
                assert await reader.read() == b""
            except ConnectionResetError:
                pass  # closed with our half frame unread: a reset is a close too
        assert not srv._tcp_writers and srv.bound == []
    finally:
        writer.close()
