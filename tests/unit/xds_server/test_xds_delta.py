"""The delta ADS state machine (trellis/xds/delta.py) without I/O: what goes out, in which
order, and what ACKs, NACKs, subscriptions and reconnects change."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2
from xds_fakes import cla, cluster, http_listener, request, route, secret, sidecar, tcp_listener

from trellis.errors import InvalidInput
from trellis.xds import delta
from trellis.xds.delta import Kind, StreamState
from trellis.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET

S, C, E, L, R = "sds", "cds", "eds", "lds", "rds"
URL = {S: SECRET, C: CLUSTER, E: ENDPOINT, L: LISTENER, R: ROUTE}
EDS_NAMES = ("db",)
SDS_NAMES = ("leaf/default/web", "roots")


@dataclass
class Envoy:
    """A scripted Envoy against the pure state machine."""

    desired: delta.Desired
    state: StreamState = field(default_factory=StreamState)
    version: str = "v1"

    def ask(self, kind: str, **kw) -> delta.Received:
        self.state, received = delta.receive(self.state, request(URL[kind], **kw))
        return received

    def subscribe_all(self) -> None:
        self.ask(C)
        self.ask(L)
        self.ask(E, subscribe=EDS_NAMES)
        self.ask(S, subscribe=SDS_NAMES)

    def next(self) -> discovery_pb2.DeltaDiscoveryResponse | None:
        self.state, resp = delta.next_response(self.state, self.desired, system_version=self.version)
        return resp

    def drain(self) -> list[discovery_pb2.DeltaDiscoveryResponse]:
        out = []
        while (resp := self.next()) is not None:
            out.append(resp)
        return out

    def ack(self, resp: discovery_pb2.DeltaDiscoveryResponse) -> delta.Received:
        self.state, received = delta.receive(
            self.state, request(resp.type_url, nonce=resp.nonce))
        return received

    def nack(self, resp: discovery_pb2.DeltaDiscoveryResponse, message: str = "bad") -> delta.Received:
        self.state, received = delta.receive(
            self.state, request(resp.type_url, nonce=resp.nonce, error=message))
        return received

    def settle(self) -> list[tuple[str, list[str], list[str]]]:
        """Send and ACK until nothing is left; the responses as (type, names, removals)."""
        log = []
        while batch := self.drain():
            for resp in batch:
                log.append(summary(resp))
                self.ack(resp)
        return log

    def set(self, resources: dict) -> None:
        self.desired = delta.version_resources(resources)


def summary(resp: discovery_pb2.DeltaDiscoveryResponse) -> tuple[str, list[str], list[str]]:
    return delta.SHORT[resp.type_url], [r.name for r in resp.resources], list(resp.removed_resources)


def kinds(responses) -> list[str]:
    return [delta.SHORT[r.type_url] for r in responses]


def envoy(resources: dict | None = None) -> Envoy:
    return Envoy(delta.version_resources(resources if resources is not None else sidecar()))


# -- versions -----------------------------------------------------------------------------


def test_version_is_a_content_hash_equal_for_equal_messages() -> None:
    assert delta.version_of(cluster("db")) == delta.version_of(cluster("db"))
    assert delta.version_of(cluster("db")) != delta.version_of(cluster("db", timeout_s=2))
    assert len(delta.version_of(cluster("db"))) == 64


# -- order and hold-back ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subscribed", "first_wave"),
    [
        ((C, L, E, S), [S, C, E]),
        ((C, L), [C]),
        ((L,), [L]),
        ((L, E), [E]),
        ((S, L), [S, L]),
    ],
    ids=["everything_asked", "wildcards_only", "listeners_alone", "pending_endpoints_hold_listeners",
         "secrets_never_hold_listeners"],
)
def test_first_wave_goes_in_make_before_break_order(subscribed: tuple[str, ...], first_wave: list[str]) -> None:
    e = envoy()
    for kind in subscribed:
        e.ask(kind, subscribe={E: EDS_NAMES, S: SDS_NAMES}.get(kind, ()))
    assert kinds(e.drain()) == first_wave


def test_listeners_wait_until_clusters_and_endpoints_are_acked() -> None:
    e = envoy()
    e.subscribe_all()
    sds, cds, eds = e.drain()
    assert e.next() is None  # lds held: cds and eds unacknowledged
    e.ack(cds)
    assert e.next() is None  # eds still unacknowledged
    e.ack(sds)
    assert e.next() is None
    e.ack(eds)
    lds = e.next()
    assert summary(lds) == (L, ["db:127.0.0.1:9191", "public_listener"], [])


def test_responses_carry_names_versions_nonces_and_the_snapshot_version() -> None:
    e = envoy()
    e.ask(C)
    resp = e.next()
    assert resp.nonce == "00000001"
    assert resp.system_version_info == "v1"
    assert [(r.name, r.version) for r in resp.resources] == [
        ("db", delta.version_of(cluster("db"))), ("local_app", delta.version_of(cluster("local_app", eds=False)))]
    unpacked = cluster_pb2.Cluster()
    assert resp.resources[0].resource.Unpack(unpacked) and unpacked == cluster("db")
    e.ask(L)
    assert e.next() is None  # one unacknowledged response per type, and lds is held
    e.ack(resp)
    assert e.next().nonce == "00000002"


def test_nothing_goes_for_a_type_envoy_has_not_asked_for() -> None:
    e = envoy()
    assert e.next() is None
    e.ask(E, subscribe=("db",))
    assert summary(e.next()) == (E, ["db"], [])


# -- ACK and NACK ---------------------------------------------------------------------------


def test_ack_commits_the_sent_versions_and_an_unchanged_snapshot_sends_nothing() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    assert delta.in_sync(e.state, e.desired)
    assert delta.acked_counts(e.state) == {S: 2, C: 2, E: 1, L: 2}  # rds never asked for
    e.set(sidecar())  # rebuilt, identical
    assert e.next() is None


def test_only_the_changed_resource_is_sent() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    e.set(sidecar(db_port=9090))
    assert e.settle() == [(E, ["db"], [])]


def test_nack_keeps_the_last_good_versions_and_is_not_resent() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    good = dict(e.state.of(CLUSTER).acked)
    e.set({**sidecar(), CLUSTER: {"db": cluster("db", timeout_s=-1), "local_app": cluster("local_app", eds=False)}})
    cds, eds = e.drain()  # the endpoints follow their cluster (rule 6), before any answer
    assert summary(eds) == (E, ["db"], [])
    e.ack(eds)
    received = e.nack(cds, "Proto constraint validation failed: connect_timeout")
    assert received == delta.Received(Kind.NACK, CLUSTER, cds.nonce, ("db",),
                                      "Proto constraint validation failed: connect_timeout")
    assert e.state.of(CLUSTER).acked == good
    assert e.state.of(CLUSTER).pending is None
    assert e.next() is None  # not resent
    assert not delta.in_sync(e.state, e.desired)
    assert delta.rejected_counts(e.state) == {C: 1}
    e.set({**sidecar(), CLUSTER: {"db": cluster("db", timeout_s=-1), "local_app": cluster("local_app", eds=False)},
           ENDPOINT: {"db": cla("db", 9999)}})
    assert e.settle() == [(E, ["db"], [])]  # an unrelated change does not resend the rejected one


def test_a_new_version_of_a_rejected_resource_is_sent() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    e.set({**sidecar(), CLUSTER: {"db": cluster("db", timeout_s=-1), "local_app": cluster("local_app", eds=False)}})
    cds, eds = e.drain()
    e.nack(cds)
    e.ack(eds)
    e.set({**sidecar(), CLUSTER: {"db": cluster("db", timeout_s=3), "local_app": cluster("local_app", eds=False)}})
    assert e.settle() == [(C, ["db"], []), (E, ["db"], [])]  # the cluster, then its endpoints again
    assert delta.in_sync(e.state, e.desired)
    assert delta.rejected_counts(e.state) == {}


def test_a_stale_nonce_changes_nothing_but_its_subscriptions() -> None:
    e = envoy()
    e.ask(E, subscribe=("db",))
    first = e.next()
    e.ack(first)
    e.set(sidecar(db_port=1))
    second = e.next()
    received = e.ask(E, nonce=first.nonce, subscribe=("other",))
    assert received.kind is Kind.STALE
    assert e.state.of(ENDPOINT).pending.nonce == second.nonce
    assert e.state.of(ENDPOINT).names == {"db", "other"}


@pytest.mark.parametrize(
    ("type_url", "kind"),
    [("type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", Kind.IGNORED), (CLUSTER, Kind.SUBSCRIBE)],
    ids=["unknown_type_ignored", "known_type"],
)
def test_request_kinds(type_url: str, kind: Kind) -> None:
    _, received = delta.receive(StreamState(), request(type_url))
    assert received.kind is kind


def test_a_request_without_a_type_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="type_url"):
        delta.receive(StreamState(), request(""))


# -- removals -------------------------------------------------------------------------------


def test_removals_go_last_cluster_then_endpoints_then_secrets() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    res = sidecar()
    res[CLUSTER].pop("db")
    res[ENDPOINT].pop("db")
    res[LISTENER].pop("db:127.0.0.1:9191")
    res[SECRET].pop("leaf/default/web")
    res[SECRET]["leaf/default/web2"] = secret("leaf/default/web2")
    e.set(res)
    e.ask(S, subscribe=("leaf/default/web2",))
    assert e.settle() == [
        (S, ["leaf/default/web2"], []),
        (L, [], ["db:127.0.0.1:9191"]),
        (C, [], ["db"]),
        (E, [], ["db"]),
        (S, [], ["leaf/default/web"]),
    ]
    assert delta.in_sync(e.state, e.desired)


def test_cluster_removals_wait_for_the_listener_ack() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    res = sidecar()
    res[CLUSTER].pop("db")
    res[LISTENER].pop("db:127.0.0.1:9191")
    e.set(res)
    lds = e.next()
    assert summary(lds) == (L, [], ["db:127.0.0.1:9191"])
    assert e.next() is None
    e.ack(lds)
    assert summary(e.next()) == (C, [], ["db"])


def test_a_rejected_removal_is_not_resent_until_the_name_comes_back() -> None:
    e = envoy({CLUSTER: {"a": cluster("a", eds=False), "b": cluster("b", eds=False)}})
    e.ask(C)
    e.settle()
    e.set({CLUSTER: {"b": cluster("b", eds=False)}})
    e.nack(e.next())
    assert e.next() is None
    assert not delta.in_sync(e.state, e.desired)
    e.set({CLUSTER: {"a": cluster("a", eds=False, timeout_s=9), "b": cluster("b", eds=False)}})
    assert e.settle() == [(C, ["a"], [])]


def test_unsubscribed_names_are_forgotten_not_removed() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    e.ask(E, unsubscribe=("db",))
    e.set({**sidecar(), ENDPOINT: {}})
    assert e.settle() == []
    assert delta.in_sync(e.state, e.desired)


# -- subscriptions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "subscribe", "sent"),
    [
        (E, ("db",), ["db"]),
        (E, ("db", "missing"), ["db"]),
        (E, (), []),
        (S, ("roots",), ["roots"]),
        (S, ("leaf/default/web",), ["leaf/default/web"]),
        (S, ("*",), ["leaf/default/web", "roots"]),
        (C, (), ["db", "local_app"]),
        (C, ("*",), ["db", "local_app"]),
        (C, ("db",), ["db"]),
    ],
    ids=["eds_by_name", "eds_unknown_name_not_invented", "eds_empty_is_not_wildcard", "sds_roots_only",
         "sds_leaf_only", "sds_explicit_wildcard", "cds_legacy_wildcard", "cds_explicit_wildcard", "cds_by_name"],
)
def test_exactly_the_subscribed_names_are_sent(kind: str, subscribe: tuple[str, ...], sent: list[str]) -> None:
    e = envoy()
    e.ask(kind, subscribe=subscribe)
    resp = e.next()
    assert ([r.name for r in resp.resources] if resp else []) == sent


def test_a_later_subscription_sends_the_new_name_only() -> None:
    e = envoy({**sidecar(), ENDPOINT: {"db": cla("db"), "api": cla("api")}})
    e.ask(E, subscribe=("db",))
    e.settle()
    e.ask(E, subscribe=("api",))
    assert e.settle() == [(E, ["api"], [])]


def test_resubscribing_a_name_envoy_has_sends_it_again() -> None:
    e = envoy()
    e.ask(E, subscribe=("db",))
    e.settle()
    e.ask(E, subscribe=("db",))
    assert e.settle() == [(E, ["db"], [])]


def test_unsubscribing_the_wildcard_forgets_what_is_not_named() -> None:
    e = envoy()
    e.ask(C)
    e.settle()
    e.ask(C, unsubscribe=("*",), subscribe=("db",))
    assert not e.state.of(CLUSTER).wildcard
    assert e.state.of(CLUSTER).acked == {}  # local_app: no longer wanted; db: asked for again (rule 7)
    assert e.settle() == [(C, ["db"], [])]


# -- reconnect --------------------------------------------------------------------------------


def test_reconnect_with_initial_versions_sends_only_the_difference() -> None:
    old = envoy()
    old.subscribe_all()
    old.settle()
    held = {t: dict(old.state.of(t).acked) for t in (CLUSTER, ENDPOINT, LISTENER, SECRET)}
    e = envoy(sidecar(db_port=7070))  # the endpoints changed while Envoy was away
    e.ask(C, initial=held[CLUSTER])
    e.ask(L, initial=held[LISTENER])
    e.ask(E, subscribe=EDS_NAMES, initial=held[ENDPOINT])
    e.ask(S, subscribe=SDS_NAMES, initial=held[SECRET])
    assert e.settle() == [(E, ["db"], [])]
    assert delta.in_sync(e.state, e.desired)


def test_a_fresh_envoy_gets_an_empty_cds_answer_but_no_empty_lds_one() -> None:
    """Rule 8: Envoy asks for listeners only once its first CDS request is answered, so a
    gateway with no cluster still gets one empty CDS answer; an empty LDS answer would let
    it call itself ready with no listener."""
    e = envoy({CLUSTER: {}, ENDPOINT: {}, LISTENER: {}, SECRET: {}})
    e.ask(C)
    e.ask(L)
    assert e.settle() == [(C, [], [])]
    assert e.settle() == []  # once per stream


def test_a_reconnecting_envoy_is_owed_no_empty_answer() -> None:
    e = envoy({CLUSTER: {}, ENDPOINT: {}, LISTENER: {}, SECRET: {}})
    e.ask(C, initial={"gone": "v0"})
    assert e.settle() == [(C, [], ["gone"])]  # only the difference
    e = envoy({CLUSTER: {}, ENDPOINT: {}, LISTENER: {}, SECRET: {}})
    e.ask(C, initial={})
    assert e.settle() == [(C, [], [])]  # nothing held: a fresh start after all


def test_reconnect_removes_what_envoy_has_and_trellis_no_longer_wants() -> None:
    e = envoy()
    e.ask(C, initial={"db": delta.version_of(cluster("db")), "gone": "abc"})
    assert e.settle() == [(C, ["local_app"], []), (C, [], ["gone"])]


def test_initial_versions_count_only_on_the_first_request_of_a_type() -> None:
    e = envoy()
    e.ask(C)
    e.ask(C, initial={"db": delta.version_of(cluster("db"))})
    assert summary(e.next()) == (C, ["db", "local_app"], [])


# -- parents and children -----------------------------------------------------------------------


def test_a_resent_cluster_resends_its_endpoints() -> None:
    e = envoy()
    e.subscribe_all()
    e.settle()
    e.set({**sidecar(), CLUSTER: {"db": cluster("db", timeout_s=5), "local_app": cluster("local_app", eds=False)}})
    assert e.settle() == [(C, ["db"], []), (E, ["db"], [])]


def test_a_resent_listener_resends_its_routes() -> None:
    res = {LISTENER: {"http": http_listener("http", 8080, "db")}, ROUTE: {"db": route("db")}}
    e = envoy(res)
    e.ask(L)
    e.ask(R, subscribe=("db",))
    assert e.settle() == [(L, ["http"], []), (R, ["db"], [])]
    e.set({LISTENER: {"http": http_listener("http", 8081, "db")}, ROUTE: {"db": route("db")}})
    assert e.settle() == [(L, ["http"], []), (R, ["db"], [])]


@pytest.mark.parametrize(
    ("message", "children"),
    [
        (cluster("db"), ("db",)),
        (cluster("local_app", eds=False), ()),
        (tcp_listener("l", 1, "db"), ()),
        (http_listener("l", 1, "routes"), ("routes",)),
    ],
    ids=["eds_cluster", "static_cluster", "tcp_listener", "http_listener_over_rds"],
)
def test_children_named_by_a_parent(message, children: tuple[str, ...]) -> None:
    got = delta.eds_names(message) if isinstance(message, cluster_pb2.Cluster) else delta.rds_names(message)
    assert got == children
