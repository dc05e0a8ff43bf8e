"""One small HTTP endpoint per workload: `/metrics` for Prometheus, `/healthz` for probes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest


def serve_metrics_and_health(
    port: int,
    healthy: Callable[[], bool],
    registry: CollectorRegistry = REGISTRY,
    host: str = "127.0.0.1",
) -> ThreadingHTTPServer:
    """Serve in a daemon thread on `host` (a workload passes its `metrics_host` setting: 0.0.0.0 in
    pods); returns the server (its `server_port` is the bound port, for port 0)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, status, kind = generate_latest(registry), 200, CONTENT_TYPE_LATEST
            elif path in ("/healthz", "/readyz"):
                ok = healthy()
                body, status, kind = (b"ok\n" if ok else b"unhealthy\n"), (200 if ok else 503), "text/plain"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: stay quiet
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
