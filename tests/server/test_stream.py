"""The L4 Stream: reading, writing and flow control in both directions, over loopback."""

import asyncio
import hashlib

from propylon.apps import ServerApp
from propylon.protocols.l4 import DEFAULT_HIGH_WATER
from propylon.services import Service

from server_inproc import run, start

# uvloop reads up to 256 KiB per callback, so one read can overshoot the mark by that much.
READ_CHUNK_MAX = 256 * 1024


class HoldThenSum(ServerApp):
    """Waits until released before reading, then answers with the length and digest."""

    def __init__(self):
        self.connected = asyncio.Event()
        self.release = asyncio.Event()
        self.stream = None

    async def process_new(self, stream, shutdown):
        self.stream = stream
        self.connected.set()
        await self.release.wait()
        h, n = hashlib.sha256(), 0
        while data := await stream.read():
            h.update(data)
            n += len(data)
        await stream.write_all(f"{n} {h.hexdigest()}".encode())
        return None


def test_reading_pauses_above_high_water_and_resumes():
    async def main():
        app = HoldThenSum()
        svc = Service("hold", app)
        svc.add_tcp("127.0.0.1:0")
        _, [(host, port)] = await start(svc)
        reader, writer = await asyncio.open_connection(host, port)
        # 32 MiB: more than loopback socket buffers can absorb, even autotuned.
        payload = bytes(range(256)) * (128 * 1024)
        writer.write(payload)
        drained = asyncio.ensure_future(writer.drain())
        await app.connected.wait()
        await asyncio.sleep(0.5)
        proto = app.stream._p
        # The app reads nothing yet: the server stopped reading from the socket,
        # so the client's writes are blocked by TCP instead of filling our memory.
        assert proto.flow.read_paused
        assert len(proto._buf) <= DEFAULT_HIGH_WATER + READ_CHUNK_MAX
        assert not drained.done()
        assert writer.transport.get_write_buffer_size() > 0
        app.release.set()
        await drained
        writer.write_eof()
        answer = await reader.read()
        assert answer.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
        writer.close()
        svc.stop_accepting()
    run(main())


class Flood(ServerApp):
    """Writes 8 MiB with write_all; records how far it got."""

    def __init__(self):
        self.sent = 0
        self.done = asyncio.Event()

    async def process_new(self, stream, shutdown):
        chunk = b"x" * 65536
        for _ in range(128):
            await stream.write_all(chunk)
            self.sent += len(chunk)
        self.done.set()
        return None


def test_writes_wait_for_slow_reader():
    async def main():
        app = Flood()
        svc = Service("flood", app)
        svc.add_tcp("127.0.0.1:0")
        _, [(host, port)] = await start(svc)
        reader, writer = await asyncio.open_connection(host, port, limit=1024)
        await asyncio.sleep(0.5)
        # The client has not read: drain() held the app back well short of 8 MiB.
        assert 0 < app.sent < 8 * 1024 * 1024
        assert not app.done.is_set()
        total = 0
        while data := await reader.read(1 << 20):
            total += len(data)
        assert total == 8 * 1024 * 1024 and app.done.is_set()
        writer.close()
        svc.stop_accepting()
    run(main())


class KeepAlive(ServerApp):
    """Answers one line per call and returns the stream to be called again."""

    def __init__(self):
        self.calls = 0

    async def process_new(self, stream, shutdown):
        self.calls += 1
        line = await stream.read()
        if not line:
            return None
        await stream.write_all(b"call %d: " % self.calls + line)
        return stream


def test_returned_stream_is_processed_again_until_shutdown():
    async def main():
        app = KeepAlive()
        svc = Service("ka", app)
        svc.add_tcp("127.0.0.1:0")
        shutdown, [(host, port)] = await start(svc)
        reader, writer = await asyncio.open_connection(host, port)
        for i in (1, 2, 3):
            writer.write(b"ping\n")
            assert await reader.read(100) == b"call %d: ping\n" % i
        assert app.live_connections() == 1
        drained = asyncio.ensure_future(app.wait_drained())
        await asyncio.sleep(0.05)
        assert not drained.done()
        shutdown.trigger()
        writer.write(b"last\n")
        # The reply to the call in progress still arrives, then the server closes.
        assert await reader.read(100) == b"call 4: last\n"
        assert await reader.read(100) == b""
        await asyncio.wait_for(drained, 2)
        assert app.live_connections() == 0
        writer.close()
        svc.stop_accepting()
    run(main())


class Boom(ServerApp):
    async def process_new(self, stream, shutdown):
        raise RuntimeError("app bug")


def test_exception_in_app_aborts_connection(caplog):
    async def main():
        svc = Service("boom", Boom())
        svc.add_tcp("127.0.0.1:0")
        _, [(host, port)] = await start(svc)
        reader, writer = await asyncio.open_connection(host, port)
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
        writer.close()
        svc.stop_accepting()
    run(main())
    assert any("error while serving" in r.getMessage() and r.exc_info for r in caplog.records)


class Digest(ServerApp):
    async def process_new(self, stream, shutdown):
        d = stream.digest.socket
        await stream.write_all(f"{d.peer_addr} {d.local_addr}".encode())
        return None


def test_digest_has_addresses():
    async def main():
        svc = Service("digest", Digest())
        svc.add_tcp("127.0.0.1:0")
        _, [(host, port)] = await start(svc)
        reader, writer = await asyncio.open_connection(host, port)
        local = writer.get_extra_info("sockname")
        assert (await reader.read()).decode() == f"{local} ('127.0.0.1', {port})"
        writer.close()
        svc.stop_accepting()
    run(main())


class HalfClose(ServerApp):
    """Reads to EOF, answers after the peer's half-close, then waits for the close."""

    def __init__(self):
        self.closed = asyncio.Event()

    async def process_new(self, stream, shutdown):
        data = b""
        while chunk := await stream.read(3):  # small reads: the rest stays buffered
            data += chunk
        assert stream.at_eof()
        await stream.write_all(data[::-1])
        stream.write_eof()
        stream.close()
        await stream.wait_closed()
        assert stream.is_closing()
        self.closed.set()
        return None


def test_half_close_and_wait_closed():
    async def main():
        app = HalfClose()
        svc = Service("half", app)
        svc.add_tcp("127.0.0.1:0")
        _, [(host, port)] = await start(svc)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"abcdefgh")
        writer.write_eof()
        # The server can still write after our EOF: the connection is half-open.
        assert await reader.read() == b"hgfedcba"
        await asyncio.wait_for(app.closed.wait(), 2)
        writer.close()
        svc.stop_accepting()
    run(main())
