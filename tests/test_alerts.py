"""Alert rules: price moves and stale feeds, fired once per episode, delivered to Kafka and a webhook."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import ValidationError

from marketpulse.alerts.engine import AlertEngine
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
