"""The `helm test` pod's script, run as the pod runs it (`python -c`), against real HTTP servers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = (Path(__file__).parents[1] / "marketpulse" / "files" / "tests" / "dashboard_health.py").read_text()


class Dashboard(BaseHTTPRequestHandler):
    """/_stcore/health as Streamlit answers it; /starting answers 503 twice, then ok; /wrong says no."""

    starts = 0

    def do_GET(self) -> None:
        body, status = b"ok", 200
        if self.path == "/starting":
            type(self).starts += 1
            if self.starts <= 2:
                body, status = b"starting", 503
        elif self.path == "/wrong":
            body = b"not streamlit"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Dashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_every_dashboard_answering_ok_passes(dashboard: str) -> None:
    result = probe("5", f"{dashboard}/_stcore/health", f"{dashboard}/_stcore/health?again")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 dashboards answer" in result.stdout


def test_a_dashboard_still_starting_is_waited_for_within_the_timeout(dashboard: str) -> None:
    Dashboard.starts = 0
    result = probe("20", f"{dashboard}/starting")
    assert result.returncode == 0, result.stdout
    assert Dashboard.starts == 3


def test_each_dashboard_that_does_not_answer_ok_is_named_and_fails_the_test(dashboard: str) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/_stcore/health"
    result = probe("0", f"{dashboard}/_stcore/health", f"{dashboard}/wrong", refused)

    assert result.returncode == 1
    assert f"ok {dashboard}/_stcore/health" in result.stdout
    assert f"FAILED {dashboard}/wrong: HTTP 200 'not streamlit'" in result.stdout
    assert f"FAILED {refused}: " in result.stdout
    assert "Connection refused" in result.stdout
    assert "1/3 dashboards answer" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_an_error_status_is_reported_with_its_code(dashboard: str) -> None:
    Dashboard.starts = 0
    result = probe("0", f"{dashboard}/starting")
    assert result.returncode == 1
    assert "HTTP Error 503" in result.stdout


@pytest.mark.parametrize("args", [("5",), ("soon", "http://127.0.0.1/"), ("-1", "http://127.0.0.1/")])
def test_without_urls_or_a_number_of_seconds_it_says_how_to_call_it(args: tuple[str, ...]) -> None:
    result = probe(*args)
    assert result.returncode == 2
    assert "usage: dashboard_health.py SECONDS URL..." in result.stderr
    assert "Traceback" not in result.stderr
