"""Alert rules: price moves and stale feeds, fired once per episode, delivered to Kafka and a webhook."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import REGISTRY
from pydantic import ValidationError

from marketpulse.alerts.engine import Alert, AlertEngine
from marketpulse.alerts.main import WebhookSender
from marketpulse.contract.api import AlertRule
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse_dev.localenv.kafka import KafkaServer

MINUTE = 60_000_000


def move_rule(percent: float = 5, minutes: int = 15) -> AlertRule:
    return AlertRule.model_validate(
        {"name": "move", "priceMove": {"percent": percent, "windowMinutes": minutes}}
    )


def test_a_move_beyond_the_threshold_within_the_window_fires_once_until_it_clears() -> None:
    engine = AlertEngine([move_rule(5, 15)], ["AAPL"], 0)
    assert engine.observe("AAPL", 100.0, 0, 0) == []
    assert engine.observe("AAPL", 104.0, 1 * MINUTE, 0) == []
    fired = engine.observe("AAPL", 106.0, 2 * MINUTE, 0)
    assert [(a.kind, a.symbol, a.value) for a in fired] == [("priceMove", "AAPL", 6.0)]
    assert "up 6.00%" in fired[0].message
    assert engine.observe("AAPL", 107.0, 3 * MINUTE, 0) == [], "still the same episode: no repeat"
    # 20 minutes later the low of 100 has left the window: the condition clears and the rule re-arms.
    assert engine.observe("AAPL", 107.0, 23 * MINUTE, 0) == []
    assert engine.observe("AAPL", 100.0, 24 * MINUTE, 0)[0].message.startswith("AAPL moved down")


def test_a_slow_drift_outside_the_window_does_not_fire() -> None:
    engine = AlertEngine([move_rule(5, 10)], ["AAPL"], 0)
    alerts = [a for step in range(60) for a in engine.observe("AAPL", 100.0 * 1.002**step, step * MINUTE, 0)]
    assert alerts == []  # 0.2 % a minute is 2 % per 10-minute window


def test_a_silent_symbol_is_reported_stale_once_and_rearmed_by_a_tick() -> None:
    rule = AlertRule.model_validate({"name": "stale", "staleFeed": {"seconds": 30}})
    engine = AlertEngine([rule], ["AAPL", "MSFT"], started_us=0)
    engine.observe("AAPL", 1.0, 0, 20_000_000)
    assert [a.symbol for a in engine.check_stale(40_000_000)] == ["MSFT"]  # never ticked since start
    assert [a.symbol for a in engine.check_stale(60_000_000)] == ["AAPL"]
    assert engine.check_stale(90_000_000) == []
    engine.observe("AAPL", 1.0, 0, 91_000_000)
    assert [a.symbol for a in engine.check_stale(125_000_000)] == ["AAPL"]


def test_a_rule_must_set_exactly_one_condition() -> None:
    with pytest.raises(ValidationError, match="exactly one of priceMove or staleFeed"):
        AlertRule.model_validate({"name": "both", "priceMove": {}, "staleFeed": {}})


@pytest.mark.kafka
def test_the_alerts_workload_publishes_to_the_alerts_topic_and_posts_to_the_webhook(
    kafka_server: KafkaServer, tmp_path: Path
) -> None:
    received: list[dict[str, str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    name = f"a{uuid.uuid4().hex[:6]}"
    ticks_topic, alerts_topic = f"test.{name}.ticks", f"test.{name}.alerts"
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers})
    for future in admin.create_topics([NewTopic(ticks_topic, 1, 1), NewTopic(alerts_topic, 1, 1)]).values():
        future.result(timeout=30)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")},
        "KAFKA_BOOTSTRAP_SERVERS": kafka_server.bootstrap_servers,
        "MARKETPULSE_NAMESPACE": "test",
        "MARKETPULSE_PIPELINE": name,
        "MARKETPULSE_WATCHLIST": "AAPL",
        "MARKETPULSE_METRICS_PORT": "0",
        "MARKETPULSE_ALERTS_OFFSET_RESET": "earliest",
        "MARKETPULSE_ALERT_RULES": '[{"name":"move","priceMove":{"percent":5,"windowMinutes":15}}]',
        "MARKETPULSE_ALERTS_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/hook",
    }
    log = (tmp_path / "alerts.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "marketpulse"), "alerts"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        producer = Producer({"bootstrap.servers": kafka_server.bootstrap_servers})
        start = time.time_ns() // 1000
        for i, price in enumerate([100.0, 101.0, 107.0, 108.0]):
            tick = Tick("AAPL", price, 1, start + i * 1_000_000, start, "synthetic", "p", i)
            producer.produce(ticks_topic, key=b"AAPL", value=encode_tick(tick))
        assert producer.flush(30) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_server.bootstrap_servers,
                "group.id": f"r-{name}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([alerts_topic])
        alerts = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not alerts:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                alerts.append(orjson.loads(message.value() or b""))
        consumer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, (tmp_path / "alerts.log").read_text()
        server.shutdown()
    assert [(a["rule"], a["symbol"], a["value"]) for a in alerts] == [("move", "AAPL", 7.0)], (
        tmp_path / "alerts.log"
    ).read_text()
    assert len(received) == 1
    assert "AAPL moved up 7.00%" in received[0]["text"]
    assert "/hook" not in (tmp_path / "alerts.log").read_text(), "the webhook URL is a secret: never logged"


class ScriptedHook:
    """A real HTTP webhook that answers each POST with the next status of `statuses` (the last one
    repeats), and records when each arrived."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.arrivals = statuses, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                hook.arrivals.append(time.monotonic())
                status = hook.statuses[min(len(hook.arrivals), len(hook.statuses)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook-secret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook_for() -> Iterator[type[ScriptedHook]]:
    hooks: list[ScriptedHook] = []

    class Started(ScriptedHook):
        def __init__(self, statuses: list[int]) -> None:
            super().__init__(statuses)
            hooks.append(self)

    yield Started
    for hook in hooks:
        hook.server.shutdown()
        hook.server.server_close()


ALERT = Alert(
    rule="move",
    kind="priceMove",
    symbol="AAPL",
    message="AAPL moved up 7.00%",
    value=7.0,
    threshold=5.0,
    at_us=0,
)
FAILURES = "marketpulse_alerts_webhook_failures_total"


@contextlib.contextmanager
def socket_nobody_listens_on() -> Iterator[int]:
    """A port bound but not listening: a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def failures() -> float:
    return REGISTRY.get_sample_value(FAILURES) or 0.0


def webhook_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "marketpulse.alerts.main"]


def leaks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Our lines that carry the URL, in their message or any field (httpx's own are off in a workload)."""
    return [r for r in webhook_lines(caplog) if "hook-secret" in str(vars(r))]


def test_a_webhook_that_fails_twice_then_answers_gets_the_alert_with_the_waits_growing(
    hook_for: type[ScriptedHook], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hook, before = hook_for([503, 502, 200]), failures()
    WebhookSender(hook.url, first_wait=0.1).send(ALERT)
    assert len(hook.arrivals) == 3
    first_gap, second_gap = hook.arrivals[1] - hook.arrivals[0], hook.arrivals[2] - hook.arrivals[1]
    assert 0.1 <= first_gap < second_gap, "exponential: 0.1 s, then 0.2 s"
    assert failures() == before, "delivered in the end: not a failure"
    lines = webhook_lines(caplog)
    assert [(r.levelname, r.getMessage(), r.error, r.attempt) for r in lines] == [  # type: ignore[attr-defined]
        ("WARNING", "webhook delivery failed; retrying", "HTTP 503", 1),
        ("WARNING", "webhook delivery failed; retrying", "HTTP 502", 2),
    ]
    assert [r.retry_in_s for r in lines] == [0.1, 0.2]  # type: ignore[attr-defined]


def test_a_webhook_that_keeps_failing_is_given_up_after_three_tries_counted_once_and_logged(
    hook_for: type[ScriptedHook], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hook, before = hook_for([500]), failures()
    started = time.monotonic()
    WebhookSender(hook.url, first_wait=0.1).send(ALERT)  # never raises: the alert is on Kafka anyway
    assert len(hook.arrivals) == 3
    assert time.monotonic() - started < 2, "no wait after the last try"
    assert failures() == before + 1
    given_up = [r for r in webhook_lines(caplog) if r.levelname == "ERROR"]
    assert [(r.getMessage(), r.error, r.attempts) for r in given_up] == [  # type: ignore[attr-defined]
        ("webhook delivery given up", "HTTP 500", 3)
    ]
    assert not leaks(caplog), "the webhook URL is a secret: never logged"


def test_an_unreachable_webhook_is_tried_three_times_then_counted_without_its_url_in_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with socket_nobody_listens_on() as port:
        before = failures()
        WebhookSender(f"http://127.0.0.1:{port}/hook-secret", first_wait=0.05).send(ALERT)
    lines = webhook_lines(caplog)
    assert [(r.levelname, r.error) for r in lines] == [  # type: ignore[attr-defined]
        ("WARNING", "ConnectError"),
        ("WARNING", "ConnectError"),
        ("ERROR", "ConnectError"),
    ]
    assert failures() == before + 1
    assert not leaks(caplog)


def test_a_webhook_that_refuses_the_alert_is_not_retried_and_counts_as_a_failure(
    hook_for: type[ScriptedHook], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hook, before = hook_for([404, 200]), failures()
    WebhookSender(hook.url, first_wait=0.05).send(ALERT)
    assert len(hook.arrivals) == 1, "a 4xx does not change by asking again"
    assert failures() == before + 1
    assert [(r.getMessage(), r.status) for r in webhook_lines(caplog)] == [  # type: ignore[attr-defined]
        ("webhook refused the alert", 404)
    ]
