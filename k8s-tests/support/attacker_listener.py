"""A listener standing in for a host a hostile StockPipeline names: it records every connection
and what arrived, and answers HTTP requests with a canned response (an HTML error page by default,
with a marker that must never reach a status or an Event)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType

MARKER = "ATTACKER-BODY-7f3a"
HTML_503 = (
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nConnection: close\r\n"
    f"Content-Length: {len(MARKER) + 26}\r\n\r\n<html><body>{MARKER}</body></html>"
).encode()


@dataclass
class AttackerListener:
    """A TCP listener on 127.0.0.1; `received` holds the bytes of each connection."""

    reply: bytes = HTML_503
    received: list[bytes] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="attacker", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1.0)
                data = b""
                try:
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(self.reply)
                except OSError:
                    pass
                self.received.append(data)

    def __enter__(self) -> AttackerListener:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()
