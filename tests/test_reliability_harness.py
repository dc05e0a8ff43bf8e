"""The reliability harness itself: the ledger reader and the TCP fault proxy do what the suite relies on."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpulse_dev.reliability.checks import diff_rows
from marketpulse_dev.reliability.fault_proxy import FaultProxy
from marketpulse_dev.reliability.ledger import read_ledger

pytestmark = pytest.mark.reliability


def test_the_ledger_ignores_a_last_line_cut_by_a_kill_and_refuses_garbage(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.write_text("p-1 0\np-1 1\np-2 7\np-2 12")  # the kill cut "p-2 123\n"
    assert read_ledger(ledger) == [("p-1", 0), ("p-1", 1), ("p-2", 7)]
    assert read_ledger(tmp_path / "missing.txt") == []
    ledger.write_text("p-1 0\nnot a ledger line\n")
    with pytest.raises(ValueError, match=r"ledger.txt:2: expected 'producer_id seq'"):
        read_ledger(ledger)


def test_row_diffs_tolerate_float_rounding_but_not_a_different_value() -> None:
    assert diff_rows([("A", 1, 0.1 + 0.2)], [("A", 1, 0.3)], key_width=2) == []
    assert diff_rows([("A", 1, 0.31)], [("A", 1, 0.3)], key_width=2) == ["('A', 1, 0.31) != ('A', 1, 0.3)"]
    assert diff_rows([], [("A", 1, 0.3)], key_width=2) == ["0 rows where a rebuild has 1"]
    assert diff_rows([("B", 1, 0.3)], [("A", 1, 0.3)], key_width=2) == [
        "missing ('A', 1)",
        "unexpected ('B', 1)",
    ]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_the_fault_proxy_forwards_delays_stalls_and_resets(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(16) == b"ping"

            proxy.latency = 0.2  # each direction waits: a round trip takes at least 0.4 s
            started = time.monotonic()
            client.sendall(b"slow")
            assert client.recv(16) == b"slow"
            assert time.monotonic() - started >= 0.4
            proxy.latency = 0.0

            proxy.stall()
            client.sendall(b"held")
            client.settimeout(0.5)
            with pytest.raises(TimeoutError):
                client.recv(16)
            proxy.resume()
            client.settimeout(5)
            assert client.recv(16) == b"held"

            assert proxy.drop_connections() == 1
            with pytest.raises(ConnectionResetError):
                client.recv(16)
        assert proxy.connections == 1
        assert proxy.dropped == 1
