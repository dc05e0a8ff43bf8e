"""An HTTP proxy in front of the S3 server that answers some requests itself, as a throttling S3 or
the load balancer before it would: 503 SlowDown with S3's XML, an HTML error page, an empty body,
500s. Everything else is forwarded to the real server unchanged.

    with HttpFaultProxy("127.0.0.1", s3_port) as proxy:        # point the client at proxy.endpoint
        proxy.fail(times=5, status=503, body="html", methods={"PUT"})
        ...
        proxy.clear()

It speaks HTTP/1.1 with keep-alive, as the SDK expects; the controls are safe from any thread.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal

Body = Literal["xml", "html", "empty"]
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


@dataclass
class _Fault:
    times: int
    status: int
    body: Body
    methods: frozenset[str] | None
    query: str | None  # e.g. "list-type=2": only listings


@dataclass
class HttpFaultProxy:
    upstream_host: str
    upstream_port: int
    listen_host: str = "127.0.0.1"
    answered: int = 0  # requests answered with a fault so far
    forwarded: int = 0
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://{self.listen_host}:{self._server.server_address[1]}"

    def fail(
        self,
        *,
        times: int,
        status: int = 503,
        body: Body = "xml",
        methods: set[str] | None = None,
        query: str | None = None,
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(times, status, body, frozenset(methods) if methods else None, query))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times <= 0:
                    continue
                if fault.methods is not None and method not in fault.methods:
                    continue
                if fault.query is not None and fault.query not in path:
                    continue
                fault.times -= 1
                self.answered += 1
                return fault
        return None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> HttpFaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                fault = proxy._take(self.command, self.path)
                if fault is not None:
                    self._answer(fault)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=payload or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                with proxy._lock:
                    proxy.forwarded += 1
                self.send_response(response.status, response.reason)
                # A HEAD's Content-Length is the object's size, not that of the (empty) body.
                keep_length = self.command == "HEAD"
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP and (keep_length or key.lower() != "content-length"):
                        self.send_header(key, value)
                if not keep_length:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _answer(self, fault: _Fault) -> None:
                if fault.body == "xml":
                    code = "SlowDown" if fault.status == 503 else "InternalError"
                    data = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>Please reduce your request rate.</Message></Error>"
                    ).encode()
                    kind = "application/xml"
                elif fault.body == "html":
                    data = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
                    kind = "text/html"
                else:
                    data, kind = b"", "text/plain"
                self.send_response(fault.status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815 - http.server's names

        self._server = ThreadingHTTPServer((self.listen_host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="http-faults", daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
