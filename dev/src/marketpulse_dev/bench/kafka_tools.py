"""The ceiling: Kafka's own ProducerPerformance and ConsumerPerformance on the same broker.

Both run from the kafka-tools jar in the broker's cached classpath, with the records our ingest
produces (a payload file of real tick JSON), acks=all and our producer's batching settings.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from marketpulse.ingest.producer import PRODUCER_DEFAULTS
from marketpulse_dev.bench.procstat import tree_cpu_seconds, wait_and_measure
from marketpulse_dev.localenv.kafka import KafkaServer, java_classpath

_PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \([\d.]+ MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, "
    r"(?P<p50>\d+) ms 50th, (?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th"
)


class KafkaToolError(RuntimeError):
    """A Kafka performance tool failed or printed something we cannot read; the message has its output."""


@dataclass(frozen=True)
class ProducerCeiling:
    records: int
    records_per_second: float
    latency_ms: dict[str, float]
    tool_cpu_seconds: float
    broker_cpu_seconds: float


@dataclass(frozen=True)
class ConsumerCeiling:
    records: int
    records_per_second: float
    tool_cpu_seconds: float
    broker_cpu_seconds: float


def _java(main_class: str, *args: str) -> list[str]:
    return [
        "java",
        "-Xmx512m",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        java_classpath(),
        main_class,
        *args,
    ]


def _run(argv: list[str], log: Path, broker_pid: int, timeout: float) -> tuple[str, float, float]:
    broker_before = tree_cpu_seconds(broker_pid)
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        usage = wait_and_measure(popen, timeout=timeout)
    broker_cpu = tree_cpu_seconds(broker_pid) - broker_before
    text = log.read_text(errors="replace")
    if usage.returncode != 0:
        raise KafkaToolError(f"{argv[5]} exited with {usage.returncode}:\n{text[-3000:]}")
    return text, usage.cpu_seconds, broker_cpu


def _broker_pid(kafka: KafkaServer) -> int:
    if kafka.process is None:
        raise KafkaToolError("the broker is not running")
    return kafka.process.pid


def producer_ceiling(
    kafka: KafkaServer, topic: str, payload_file: Path, records: int, log: Path, timeout: float = 600
) -> ProducerCeiling:
    """ProducerPerformance as fast as it goes, with our producer's settings (acks=all, idempotent, lz4)."""
    props = {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in PRODUCER_DEFAULTS.items()
        if key in ("acks", "enable.idempotence", "compression.type", "linger.ms", "batch.size")
    }
    argv = _java(
        "org.apache.kafka.tools.ProducerPerformance",
        "--bootstrap-server",
        kafka.bootstrap_servers,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--throughput",
        "-1",
        "--payload-file",
        str(payload_file),
        "--command-property",
        *(f"{key}={value}" for key, value in props.items()),
    )
    text, tool_cpu, broker_cpu = _run(argv, log, _broker_pid(kafka), timeout)
    summaries = list(_PRODUCER_SUMMARY.finditer(text))
    if not summaries:
        raise KafkaToolError(f"ProducerPerformance printed no summary line:\n{text[-3000:]}")
    last = summaries[-1]
    return ProducerCeiling(
        records=int(last["records"]),
        records_per_second=float(last["rate"]),
        latency_ms={key: float(last[key]) for key in ("avg", "max", "p50", "p95", "p99")},
        tool_cpu_seconds=tool_cpu,
        broker_cpu_seconds=broker_cpu,
    )


def consumer_ceiling(
    kafka: KafkaServer, topic: str, records: int, log: Path, timeout: float = 600
) -> ConsumerCeiling:
    """ConsumerPerformance reading `records` from the start of `topic` in a fresh group."""
    argv = _java(
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        kafka.bootstrap_servers,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--group",
        f"bench-consumer-perf-{topic}",
        "--timeout",
        "30000",
    )
    text, tool_cpu, broker_cpu = _run(argv, log, _broker_pid(kafka), timeout)
    # A header line names the columns, the next line holds the values.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines[:-1]):
        if line.startswith("start.time"):
            columns = [c.strip() for c in line.split(",")]
            values = [v.strip() for v in lines[index + 1].split(",")]
            stats = dict(zip(columns, values, strict=False))
            try:
                return ConsumerCeiling(
                    records=int(stats["data.consumed.in.nMsg"]),
                    # The fetch rate leaves out joining the group, as our steady-state figures do.
                    records_per_second=float(stats["fetch.nMsg.sec"]),
                    tool_cpu_seconds=tool_cpu,
                    broker_cpu_seconds=broker_cpu,
                )
            except (KeyError, ValueError) as exc:
                raise KafkaToolError(
                    f"ConsumerPerformance output not understood ({exc}):\n{text[-3000:]}"
                ) from None
    raise KafkaToolError(f"ConsumerPerformance printed no statistics:\n{text[-3000:]}")
