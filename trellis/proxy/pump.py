"""The byte pump: two asyncio transports joined back to back (shell).

Rules:
1. A ``Pipe`` is one side. Until it is linked to its peer it buffers what it reads
   and stops reading (so a client that talks first is never lost, and never floods us).
2. Flow control crosses over: when one side's write buffer is full, the other side
   stops reading, and resumes when it drains (asyncio's pause/resume_writing).
3. End of stream on either side ends the splice, as in Consul's built-in proxy
   (connect/proxy/conn.go ``CopyBytes``): both sides are closed once the bytes already
   read are written. No half-close: asyncio's TLS transport cannot send one, and a
   half-open pair whose server keeps the connection alive would never end.
4. ``splice`` returns when both sides are closed; cancelling it aborts both.
5. Bytes are counted in plain ints on the hot path; the listener moves them into the
   Prometheus counters at the heartbeat and at close (a counter's lock per chunk cost
   ~10% of the proxy's CPU).
"""

from __future__ import annotations

import asyncio


class Pipe(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Pipe | None = None
        self.read_bytes = 0  # bytes read from this side; the listener reports them (rule 5)
        self._pending: list[bytes] = []
        self._eof = False
        self._lost = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport subclasses
        if self.peer is None:
            transport.pause_reading()  # rule 1

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            self._pending.append(data)
            return
        self.peer.transport.write(data)
        self.read_bytes += len(data)

    def eof_received(self) -> bool:
        self._eof = True
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()  # rule 3: after its pending writes
        return False  # and close ours (after its pending writes too)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if not self.closed.done():
            self.closed.set_result(None)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:  # rule 2
        if self.peer is not None and self.peer.transport is not None and not self.peer._lost:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer._lost:
            self.peer.transport.resume_reading()

    # -- ours ---------------------------------------------------------------------------------
    def _start(self) -> None:
        """Flush what arrived before linking, pass on an early EOF or loss, then read."""
        assert self.peer is not None and self.transport is not None and self.peer.transport is not None
        for chunk in self._pending:
            self.data_received(chunk)
        self._pending.clear()
        if self._lost or self._eof:
            self.peer.transport.close()
        else:
            self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def link(a: Pipe, b: Pipe) -> None:
    """Join two connected pipes (rule 1: their buffered bytes go through now)."""
    a.peer, b.peer = b, a
    a._start()
    b._start()


async def splice(a: Pipe, b: Pipe) -> None:
    """Link ``a`` and ``b`` and wait until both are closed (rule 4)."""
    try:
        link(a, b)
        await asyncio.gather(asyncio.shield(a.closed), asyncio.shield(b.closed))
    finally:
        if not (a.closed.done() and b.closed.done()):
            a.abort()
            b.abort()
