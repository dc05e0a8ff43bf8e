"""A TCP proxy that misbehaves on demand: latency, stalls and dropped connections between a client
(e.g. the archiver) and a server (e.g. the S3 gateway), without touching either of them.

    with FaultProxy("127.0.0.1", s3_port) as proxy:     # point the client at proxy.port
        proxy.latency = 0.2                              # every chunk, either way, waits 200 ms
        proxy.stall()                                    # bytes stop flowing (connections stay open)
        proxy.resume()
        proxy.drop_connections()                         # reset every open connection

The proxy runs an asyncio loop in a daemon thread; the controls are safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from types import TracebackType

_CHUNK = 64 * 1024


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, listen_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host = listen_host
        self.port = 0
        self.latency = 0.0  # seconds added before each chunk is forwarded
        self.connections = 0  # accepted so far
        self.dropped = 0  # connections reset by drop_connections()
        self._flowing = threading.Event()
        self._flowing.set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    # -- faults --------------------------------------------------------------------------------
    def stall(self) -> None:
        """Stop forwarding bytes; open connections stay open and new ones are accepted but starve."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def drop_connections(self) -> int:
        """Reset (RST, not FIN) every open connection on both sides; returns how many were open."""
        future = asyncio.run_coroutine_threadsafe(self._drop(), self._loop)
        return future.result(timeout=10)

    # -- the loop's side -----------------------------------------------------------------------
    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, self.listen_host, 0)

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._drop()
        await self._server.wait_closed()

    async def _drop(self) -> int:
        open_pairs = len(self._writers) // 2
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() sends a reset, which is what a crashed peer or middlebox looks like.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()
        self.dropped += open_pairs
        return open_pairs

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.transport.abort()
            return
        pair = (client_writer, server_writer)
        self._writers.update(pair)
        await asyncio.gather(
            self._pump(client_reader, server_writer), self._pump(server_reader, client_writer)
        )
        for writer in pair:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(_CHUNK):
                if self.latency > 0:
                    await asyncio.sleep(self.latency)
                while not self._flowing.is_set():
                    await asyncio.sleep(0.05)
                sink.write(data)
                await sink.drain()
            if sink.can_write_eof():
                sink.write_eof()  # half-close: the other direction may still be talking
        except (ConnectionError, OSError):
            sink.transport.abort()  # one side failed: the other sees a reset, as through a real hop
