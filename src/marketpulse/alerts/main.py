"""`marketpulse alerts`: consume ticks, evaluate the rules, emit to the alerts topic, a webhook, a counter."""

from __future__ import annotations

import logging
import time

import httpx
import orjson
import tenacity
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
    """POST Slack-compatible JSON. No answer or a server error (5xx) is tried again, `attempts` tries in
    all, `first_wait` seconds apart and then twice as long each time (3 tries: 0.5 s, then 1 s); a
    refusal (4xx) is not. A delivery that fails is counted and logged, never raised: the alert is on
    the alerts topic whatever the webhook does. The URL is a secret: no log line carries it."""

    def __init__(self, url: str, *, attempts: int = 3, first_wait: float = 0.5) -> None:
        self.client = httpx.Client(timeout=5.0) if url else None
        self.url = url
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(httpx.HTTPError) | tenacity.retry_if_result(_server_error),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=first_wait),
            before_sleep=_log_retry,
            retry_error_callback=_log_given_up,
        )

    def send(self, alert: Alert) -> None:
        if self.client is None:
            return
        response = self._retrying(
            self.client.post, self.url, json={"text": f":rotating_light: {alert.message}"}
        )
        if response is not None and response.status_code >= 400:
            WEBHOOK_FAILURES.inc()
            log.error("webhook refused the alert", extra={"status": response.status_code})


def _server_error(response: httpx.Response) -> bool:
    return response.status_code >= 500


def _failure(state: tenacity.RetryCallState) -> str:
    """What the last try met: the exception's type (its text may hold the URL) or the HTTP status."""
    assert state.outcome is not None
    error = state.outcome.exception()
    return type(error).__name__ if error is not None else f"HTTP {state.outcome.result().status_code}"


def _log_retry(state: tenacity.RetryCallState) -> None:
    log.warning(
        "webhook delivery failed; retrying",
        extra={
            "error": _failure(state),
            "attempt": state.attempt_number,
            "retry_in_s": round(state.upcoming_sleep, 3),
        },
    )


def _log_given_up(state: tenacity.RetryCallState) -> None:
    WEBHOOK_FAILURES.inc()
    log.error("webhook delivery given up", extra={"error": _failure(state), "attempts": state.attempt_number})


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
