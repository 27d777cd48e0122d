"""Random walks over the delta state machine (hypothesis): snapshots change, Envoy ACKs,
NACKs and (un)subscribes in any order, and the protocol's invariants hold at every step."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from xds_fakes import cla, cluster, request, secret, tcp_listener

from trellis.xds import delta
from trellis.xds.delta import StreamState
from trellis.xds.types import CLUSTER, ENDPOINT, LISTENER, SECRET

NAMES = ("a", "b", "c")


@st.composite
def resources(draw: st.DrawFn) -> dict:
    """A snapshot: some upstreams, each with a cluster, its endpoints, a listener, a secret."""
    names = draw(st.lists(st.sampled_from(NAMES), unique=True))
    port = draw(st.integers(1, 3))
    return {
        SECRET: {f"leaf/{n}": secret(f"leaf/{n}", str(port)) for n in names},
        CLUSTER: {n: cluster(n, timeout_s=draw(st.integers(1, 2))) for n in names},
        ENDPOINT: {n: cla(n, port) for n in names},
        LISTENER: {n: tcp_listener(n, 9000 + port, n) for n in names},
    }


steps = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), resources()),
        st.tuples(st.just("answer"), st.sampled_from([CLUSTER, ENDPOINT, LISTENER, SECRET]), st.booleans()),
        st.tuples(st.just("subscribe"), st.sampled_from([ENDPOINT, SECRET]), st.sampled_from(NAMES)),
        st.tuples(st.just("unsubscribe"), st.sampled_from([ENDPOINT, SECRET]), st.sampled_from(NAMES)),
    ),
    max_size=30,
)


def wanted_names(type_url: str, name: str) -> str:
    return f"leaf/{name}" if type_url == SECRET else name


@settings(max_examples=500, deadline=None)
@given(first=resources(), script=steps)
def test_invariants_hold_and_acking_everything_converges(first: dict, script: list) -> None:
    state, desired = StreamState(), delta.version_resources(first)
    seen = {r.version: r for by_name in desired.values() for r in by_name.values()}
    for type_url in (CLUSTER, LISTENER):
        state, _ = delta.receive(state, request(type_url))
    in_flight: dict[str, str] = {}
    answered: set[str] = set()
    for step in script:
        if step[0] == "snapshot":
            desired = delta.version_resources(step[1])
            seen.update((r.version, r) for by_name in desired.values() for r in by_name.values())
        elif step[0] == "answer" and step[1] in in_flight:
            error = "" if step[2] else "rejected"
            state, _ = delta.receive(state, request(step[1], nonce=in_flight.pop(step[1]), error=error))
        elif step[0] in ("subscribe", "unsubscribe"):
            names = (wanted_names(step[1], step[2]),)
            kw = {"subscribe": names} if step[0] == "subscribe" else {"unsubscribe": names}
            state, _ = delta.receive(state, request(step[1], **kw))
        while True:
            state, resp = delta.next_response(state, desired)
            if resp is None:
                break
            assert resp.type_url not in in_flight, "two unacknowledged responses of one type"
            if resp.type_url == LISTENER:
                assert CLUSTER not in in_flight and ENDPOINT not in in_flight, "listeners before clusters"
            assert resp.resources or resp.removed_resources or (
                resp.type_url == CLUSTER and resp.type_url not in answered), "an empty response"
            answered.add(resp.type_url)  # delta.py rule 8: only the first CDS answer may be empty
            assert not {r.name for r in resp.resources} & set(resp.removed_resources)
            in_flight[resp.type_url] = resp.nonce
    # Envoy now ACKs everything and asks again for what it rejected: it converges.
    for type_url in (ENDPOINT, SECRET):
        ts = state.of(type_url)
        if ts.rejected:
            state, _ = delta.receive(state, request(type_url, subscribe=tuple(ts.rejected)))
    for type_url in (CLUSTER, LISTENER):  # wildcard types: a next snapshot goes back to what Envoy has
        ts = state.of(type_url)
        fixed = {n: r for n, r in desired.get(type_url, {}).items() if n not in ts.rejected}
        fixed.update((n, seen[ts.acked[n]]) for n in ts.rejected if n in ts.acked)
        desired = {**desired, type_url: fixed}
    for _ in range(20):
        for type_url, nonce in list(in_flight.items()):
            state, _ = delta.receive(state, request(type_url, nonce=nonce))
            del in_flight[type_url]
        state, resp = delta.next_response(state, desired)
        while resp is not None:
            in_flight[resp.type_url] = resp.nonce
            state, resp = delta.next_response(state, desired)
        if not in_flight:
            break
    assert delta.in_sync(state, desired)
