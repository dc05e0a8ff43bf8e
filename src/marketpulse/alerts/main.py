"""`marketpulse alerts`: consume ticks, evaluate the rules, emit to the alerts topic, a webhook, a counter."""

from __future__ import annotations

import logging
import time

import httpx
import orjson
from confluent_kafka import Consumer, KafkaError, Producer
from prometheus_client import Counter

from marketpulse.alerts.engine import Alert, AlertEngine
from marketpulse.contract.settings.alerts import AlertsSettings
from marketpulse.runtime.http import serve_metrics_and_health
from marketpulse.runtime.shutdown import Shutdown

log = logging.getLogger(__name__)

FIRED = Counter("marketpulse_alerts_fired_total", "Alerts fired, by rule and kind.", ["rule", "kind"])
WEBHOOK_FAILURES = Counter("marketpulse_alerts_webhook_failures_total", "Webhook deliveries that failed.")


class WebhookSender:
    """POST Slack-compatible JSON; a failure is counted and logged (without the URL, a secret)."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(timeout=5.0) if url else None
        self.url = url

    def send(self, alert: Alert) -> None:
        if self.client is None:
            return
        for attempt in range(3):
            try:
                response = self.client.post(self.url, json={"text": f":rotating_light: {alert.message}"})
                if response.status_code < 500:
                    if response.status_code >= 400:
                        WEBHOOK_FAILURES.inc()
                        log.error("webhook refused the alert", extra={"status": response.status_code})
                    return
            except httpx.HTTPError as exc:
                log.warning(
                    "webhook unreachable", extra={"error": type(exc).__name__, "attempt": attempt + 1}
                )
            time.sleep(0.5 * 2**attempt)
        WEBHOOK_FAILURES.inc()


def run_alerts(settings: AlertsSettings, shutdown: Shutdown) -> int:
    if not settings.alert_rules:
        raise ValueError(
            "MARKETPULSE_ALERT_RULES: no rules; expected a JSON list such as "
            '[{"name": "big-move", "priceMove": {"percent": 5, "windowMinutes": 15}}]'
        )
    engine = AlertEngine(settings.alert_rules, settings.watchlist, time.time_ns() // 1000)
    consumer = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"{settings.topic_prefix}.alerts",
            "auto.offset.reset": settings.alerts_offset_reset,
            "enable.auto.commit": True,
        }
    )
    producer = Producer(
        {
            **settings.kafka_config(),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    webhook = WebhookSender(settings.alerts_webhook_url)
    if settings.metrics_port:
        serve_metrics_and_health(settings.metrics_port, healthy=lambda: True, host=settings.metrics_host)
    consumer.subscribe(
        [settings.resolved_ticks_topic],
        on_assign=lambda _, parts: log.info(
            "partitions assigned", extra={"partitions": [p.partition for p in parts]}
        ),
    )
    log.info(
        "alerts started",
        extra={"rules": [r.name for r in settings.alert_rules], "topic": settings.resolved_alerts_topic},
    )
    next_stale_check = time.monotonic()

    def emit(alerts: list[Alert]) -> None:
        for alert in alerts:
            FIRED.labels(alert.rule, alert.kind).inc()
            log.info("alert fired", extra={f"alert_{k}": v for k, v in alert.to_wire().items()})
            producer.produce(
                settings.resolved_alerts_topic, key=alert.symbol.encode(), value=orjson.dumps(alert.to_wire())
            )
            webhook.send(alert)
        producer.poll(0)

    try:
        while not shutdown.requested:
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error", extra={"kafka_error": str(error)})
                    continue
                try:
                    record = orjson.loads(message.value() or b"")
                    symbol, price = record["symbol"], float(record["price"])
                    event_us = _epoch_us(record["event_time"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # the archive routes invalid records to the dead-letter topic
                emit(engine.observe(symbol, price, event_us, time.time_ns() // 1000))
            if time.monotonic() >= next_stale_check:
                emit(engine.check_stale(time.time_ns() // 1000))
                next_stale_check = time.monotonic() + settings.stale_check_seconds
    finally:
        producer.flush(10)
        consumer.close()
    return 0


def _epoch_us(stamp: str) -> int:
    from marketpulse.contract.ticks.model import parse_time_us

    return parse_time_us(stamp, "event_time")
