"""The byte pump over real loopback TCP: bytes both ways, early bytes, end of stream,
flow control with a slow reader, and cancellation leaving nothing open."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from trellis.proxy.pump import Pipe, splice


async def pipe_pair() -> tuple[Pipe, asyncio.StreamReader, asyncio.StreamWriter]:
    """A Pipe owning one end of a loopback connection; the far end is a stream."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        lsock.setblocking(False)
        reader, writer = await asyncio.open_connection(*lsock.getsockname()[:2])
        conn, _ = await loop.sock_accept(lsock)
    conn.setblocking(False)
    pipe = Pipe()
    await loop.connect_accepted_socket(lambda: pipe, conn)
    return pipe, reader, writer


async def read_exactly(reader: asyncio.StreamReader, n: int) -> bytes:
    async with asyncio.timeout(10):
        return await reader.readexactly(n)


async def at_eof(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(10):
        try:
            return await reader.read(1) == b""
        except ConnectionResetError:
            return True


async def test_bytes_flow_both_ways_and_are_counted():
    (a, ra, wa), (b, rb, wb) = await pipe_pair(), await pipe_pair()
    task = asyncio.create_task(splice(a, b))
    wa.write(b"ping")
    assert await read_exactly(rb, 4) == b"ping"
    wb.write(b"pong!")
    assert await read_exactly(ra, 5) == b"pong!"
    assert (a.read_bytes, b.read_bytes) == (4, 5)
    wa.close()
    async with asyncio.timeout(10):
        await task
    assert await at_eof(rb)
    wb.close()


async def test_bytes_sent_before_linking_are_delivered():
    (a, _, wa), (b, rb, wb) = await pipe_pair(), await pipe_pair()
    wa.write(b"early bytes")
    await asyncio.sleep(0.05)  # let them reach the paused pipe
    task = asyncio.create_task(splice(a, b))
    assert await read_exactly(rb, 11) == b"early bytes"
    wa.close()
    wb.close()
    async with asyncio.timeout(10):
        await task


async def test_an_eof_before_linking_still_delivers_and_closes():
    (a, _, wa), (b, rb, wb) = await pipe_pair(), await pipe_pair()
    wa.write(b"last words")
    wa.close()
    await asyncio.sleep(0.05)
    async with asyncio.timeout(10):
        await splice(a, b)
    assert await read_exactly(rb, 10) == b"last words"
    assert await at_eof(rb)
    wb.close()


@pytest.mark.parametrize("closing_side", ["initiator", "other"])
async def test_end_of_stream_on_either_side_ends_the_splice_after_flushing(closing_side):
    (a, ra, wa), (b, rb, wb) = await pipe_pair(), await pipe_pair()
    task = asyncio.create_task(splice(a, b))
    closer, closer_r, survivor_r = (wa, ra, rb) if closing_side == "initiator" else (wb, rb, ra)
    closer.write(b"bye")
    closer.close()
    assert await read_exactly(survivor_r, 3) == b"bye"
    assert await at_eof(survivor_r)
    async with asyncio.timeout(10):
        await task
    (wb if closing_side == "initiator" else wa).close()


async def test_a_slow_reader_holds_back_the_writer_without_losing_bytes():
    (a, _, wa), (b, rb, wb) = await pipe_pair(), await pipe_pair()
    task = asyncio.create_task(splice(a, b))
    payload = os.urandom(32 * 1024 * 1024)

    async def write():
        wa.write(payload)
        await wa.drain()

    writer = asyncio.create_task(write())
    await asyncio.sleep(0.3)  # nobody reads yet: the pipe must pause instead of buffering it all
    assert b.transport.get_write_buffer_size() < 1024 * 1024
    assert await read_exactly(rb, len(payload)) == payload
    async with asyncio.timeout(10):
        await writer
    wa.close()
    wb.close()
    async with asyncio.timeout(10):
        await task


async def test_cancelling_a_splice_aborts_both_sides():
    (a, ra, wa), (b, rb, wb) = await pipe_pair(), await pipe_pair()
    task = asyncio.create_task(splice(a, b))
    wa.write(b"x")
    assert await read_exactly(rb, 1) == b"x"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await at_eof(ra) and await at_eof(rb)
    async with asyncio.timeout(10):
        await a.closed
        await b.closed
    wa.close()
    wb.close()
