"""Pipeline suite: the real `ingest`, `archive` and continuous `transform` over our own broker and S3.

Each run renders the pipeline's workloads from a StockPipeline exactly as the local executor does
(`marketpulse_dev.local.executor.LocalRun`) and starts them as processes, then:

- throughput: acknowledged ticks/s from ingest's own counter, archived ticks/s from the archive's
  committed offsets, both over the steady part of the run (the first fifth is warm-up);
- CPU: utime+stime of every process tree (broker JVM, versitygw, ingest, archive, transform) over the
  window from ingest being up to gold holding the last tick, divided by the ticks Kafka holds. The
  window opens once the archive has joined its group and the transform has finished its first (full)
  build, as in a pipeline that has been running for a while; ingest is measured by wait4 when it
  exits, less what it had used when the window opened;
- memory: VmHWM of each process (peak RSS from wait4 for ingest, which has exited);
- tick→bronze: for every tick, the modification time of its object's file in versitygw's POSIX
  backend minus the tick's `ingest_time`. That is the object's Last-Modified at full precision
  (S3's header rounds it to whole seconds, too coarse for a 2 s target), read after the run;
- tick→gold: for every tick, the `published_at` of the first gold manifest at or after the moment
  its row was loaded into the warehouse (`_loaded_at`), minus its `ingest_time`. The manifest is
  written last in a cycle, so that is when gold holding the tick became visible. The manifest is
  sampled from the S3 server's disk every half second, which costs the servers nothing;
- archive lag: committed offsets against high watermarks, sampled through one consumer every second.

Observing costs a little: ingest's metrics are scraped every half second and the broker answers an
offsets query every second; both are inside the CPU figures. The transform runs continuously with
a cycle started every second, or at once after a longer one (the shortest interval the spec allows),
so tick→gold is bounded by its cycles.

Ceiling: Kafka's ProducerPerformance/ConsumerPerformance with the same records, on the same broker.
Floor: a naive archiver (auto-commit, one S3 object per tick) draining the as-fast-as-possible topic;
it cannot keep up with either run, so it has no latency figure of its own (its backlog only grows).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx
import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse_dev.bench.kafka_tools import (
    ConsumerCeiling,
    ProducerCeiling,
    consumer_ceiling,
    producer_ceiling,
)
from marketpulse_dev.bench.naive import naive_archive_command
from marketpulse_dev.bench.procstat import (
    ExitUsage,
    stop_and_measure,
    tree_cpu_seconds,
    vm_hwm_mib,
    wait_and_measure,
)
from marketpulse_dev.bench.report import ResultRow, result_row
from marketpulse_dev.local.executor import LocalRun, by_component, cli_executable
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.metrics_text import scrape

SUITE = "pipeline"
WATCHLIST = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY"]
# The shortest pause the spec allows: tick→gold in continuous mode is then bounded by one cycle.
TRANSFORM_INTERVAL_SECONDS = 1
WARMUP_FRACTION = 0.2
TARGET_RATE = "≥ 50000"
TARGET_CPU = "≤ 30"
TARGET_BRONZE_P99 = "≤ 2"
TARGET_GOLD_P99 = "≤ 10"
WORKLOADS = ("ingest", "archive", "transform")
SERVERS = ("kafka", "s3")


class PipelineBenchError(RuntimeError):
    """A stage of the pipeline benchmark failed; the message names it and carries the logs' tails."""


@dataclass(frozen=True)
class PipelineSizes:
    duration: float
    rate: int
    ceiling_records: int
    naive_seconds: float
    drain_timeout: float = 120.0
    gold_timeout: float = 180.0


SHORT_SIZES = PipelineSizes(duration=8.0, rate=5_000, ceiling_records=200_000, naive_seconds=4.0)
FULL_SIZES = PipelineSizes(duration=60.0, rate=50_000, ceiling_records=3_000_000, naive_seconds=20.0)


def run_labels(rate: int) -> tuple[str, str]:
    return f"rate={rate}", "max"


def expected_metrics(rate: int) -> list[str]:
    """Every metric the suite reports for a target `rate` (the short test checks each is present)."""
    names = []
    for label in run_labels(rate):
        names += [
            f"ticks_acked_per_s[{label}]",
            f"ticks_archived_per_s[{label}]",
            f"cpu_us_per_tick[{label}]",
            *(f"cpu_us_per_tick[{label}][{process}]" for process in (*SERVERS, *WORKLOADS)),
            *(f"memory_hwm_mib[{label}][{process}]" for process in (*SERVERS, *WORKLOADS)),
            *(f"tick_to_bronze_{q}_s[{label}]" for q in ("p50", "p95", "p99")),
            *(f"tick_to_gold_{q}_s[{label}]" for q in ("p50", "p95", "p99")),
            f"archive_lag_max_records[{label}]",
            f"archive_lag_growth_records_per_s[{label}]",
        ]
    return names


def bench_pipeline(name: str, rate: int) -> StockPipeline:
    per_symbol = max(1, math.ceil(rate / len(WATCHLIST))) if rate > 0 else 5
    return StockPipeline.model_validate(
        {
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {
                "watchlist": WATCHLIST,
                "source": {"type": "synthetic", "synthetic": {"seed": 42, "ticksPerSecond": per_symbol}},
                "transform": {"mode": "continuous", "intervalSeconds": TRANSFORM_INTERVAL_SECONDS},
                "dashboard": {"enabled": False},
            },
        }
    )


# -- observation during a run ---------------------------------------------------------------------
@dataclass
class Samples:
    acked: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, ticks acked)
    offsets: list[tuple[float, int, int]] = field(default_factory=list)  # (monotonic, committed, high)
    manifests: set[str] = field(default_factory=set)  # published_at of every gold manifest seen


class Observer(threading.Thread):
    """Samples ingest's ack counter, the archive group's offsets and the gold manifest."""

    def __init__(self, run: LocalRun, manifest_file: Path, metrics_port: int) -> None:
        super().__init__(daemon=True, name="bench-observer")
        assert run.kafka is not None
        self.run_ = run
        self.manifest_file = manifest_file
        self.metrics_port = metrics_port
        self.samples = Samples()
        self.stopped = threading.Event()
        names = run.names
        self.topic = names.ticks_topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": run.kafka.bootstrap_servers,
                "group.id": f"{names.topic_prefix}.archive",
                "enable.auto.commit": False,
            }
        )
        metadata = self.consumer.list_topics(self.topic, timeout=10)
        self.partitions = [TopicPartition(self.topic, p) for p in metadata.topics[self.topic].partitions]
        self.lock = threading.Lock()

    def offsets(self) -> tuple[int, int]:
        """(committed, high watermark), summed over the partitions of the ticks topic."""
        with self.lock:
            committed = self.consumer.committed(self.partitions, timeout=10)
            high_total = committed_total = 0
            for tp in committed:
                low, high = self.consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=10
                )
                high_total += high
                committed_total += tp.offset if tp.offset >= 0 else low
        return committed_total, high_total

    def read_manifest(self) -> None:
        try:
            manifest = orjson.loads(self.manifest_file.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return  # not published yet, or caught mid-write: the next sample sees it
        published = manifest.get("published_at") if isinstance(manifest, dict) else None
        if isinstance(published, str):
            self.samples.manifests.add(published)

    def run(self) -> None:
        next_offsets = 0.0
        while not self.stopped.is_set():
            now = time.monotonic()
            try:
                acked = scrape(self.metrics_port, timeout=1).get("marketpulse_ingest_ticks_acked_total")
                if acked:
                    self.samples.acked.append((now, acked[0][1]))
            except httpx.HTTPError:
                pass
            if now >= next_offsets:
                next_offsets = now + 1.0
                try:
                    committed, high = self.offsets()
                    self.samples.offsets.append((time.monotonic(), committed, high))
                except KafkaException:
                    pass
            self.read_manifest()
            self.stopped.wait(0.5)

    def close(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.join(timeout=10)
        self.read_manifest()
        self.consumer.close()


# -- one run ------------------------------------------------------------------------------------
@dataclass
class RunResult:
    label: str
    acked_per_s: float
    archived_per_s: float
    ticks: int
    cpu_seconds: dict[str, float]
    memory_mib: dict[str, float]
    bronze_latency: dict[str, float]
    gold_latency: dict[str, float]
    gold_unmatched: int
    lag_max: int
    lag_growth: float
    ingest_seconds: float
    drain_seconds: float
    topic: str
    bucket: str


def rate_between(points: list[tuple[float, float]], start: float, end: float) -> float:
    """Average slope of a cumulative counter between the samples nearest `start` and `end`."""
    inside = [(t, v) for t, v in points if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return float("nan")
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per second."""
    if len(points) < 2:
        return float("nan")
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else float("nan")


def wait_until(predicate: object, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.25)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in logs if p.exists())
    raise PipelineBenchError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")


CYCLE_START_MARGIN = dt.timedelta(seconds=1)


def cycle_starts(transform_log: Path) -> list[dt.datetime]:
    """When each finished transform cycle began: its log time less the durations of its stages."""
    starts = []
    for line in transform_log.read_text(errors="replace").splitlines():
        if '"transform cycle done"' not in line:
            continue
        try:
            entry = orjson.loads(line)
            ended = dt.datetime.fromisoformat(entry["time"])
            spent = sum(float(value) for value in entry["seconds"].values())
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        starts.append(ended - dt.timedelta(seconds=spent))
    return starts


def _epoch_us(published_at: str) -> int:
    moment = dt.datetime.fromisoformat(published_at)
    return int(moment.timestamp() * 1_000_000)


def bronze_latency(bronze_dir: Path) -> dict[str, float]:
    """Quantiles of (object file mtime - ingest_time) over every tick in bronze, in seconds."""
    files = sorted(bronze_dir.rglob("*.ndjson"))
    if not files:
        raise PipelineBenchError(f"no bronze objects under {bronze_dir}")
    with duckdb.connect() as con:
        con.execute("create table objects (path varchar, written_us bigint)")
        con.executemany(
            "insert into objects values (?, ?)", [(str(f), f.stat().st_mtime_ns // 1000) for f in files]
        )
        row = con.execute(
            """
            select quantile_cont(lat, 0.5), quantile_cont(lat, 0.95), quantile_cont(lat, 0.99), count(*)
            from (
                select (o.written_us - epoch_us(t.ingest_time)) / 1e6 as lat
                from read_json(?, format = 'newline_delimited', columns = {'ingest_time': 'TIMESTAMPTZ'},
                               filename = true) t
                join objects o on o.path = t.filename
            )
            """,
            [[str(f) for f in files]],
        ).fetchone()
    assert row is not None
    return {"p50": row[0], "p95": row[1], "p99": row[2], "ticks": row[3]}


def gold_latency(warehouse: Path, manifests: set[str]) -> tuple[dict[str, float], int]:
    """Quantiles of (first manifest published at or after the tick's load - ingest_time), and the
    number of loaded ticks no observed manifest covers."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("create temp table published (published_us bigint)")
        con.executemany("insert into published values (?)", [(_epoch_us(m),) for m in sorted(manifests)])
        row = con.execute(
            """
            with ticks as (
                select epoch_us(ingest_time) as ingest_us, epoch_us(_loaded_at) as loaded_us
                from bronze.raw_ticks
            ), matched as (
                select (p.published_us - t.ingest_us) / 1e6 as lat
                from ticks t asof join published p on p.published_us >= t.loaded_us
            )
            select quantile_cont(lat, 0.5), quantile_cont(lat, 0.95), quantile_cont(lat, 0.99),
                   count(*), (select count(*) from ticks)
            from matched
            """
        ).fetchone()
    assert row is not None
    return {"p50": row[0], "p95": row[1], "p99": row[2]}, int(row[4]) - int(row[3])


def start_workload(
    run: LocalRun, workloads: dict[str, object], component: str, extra: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    from marketpulse.contract.workloads import Workload

    workload = workloads[component]
    assert isinstance(workload, Workload)
    env = {**os.environ, **run.environment(workload), **extra}
    log = run.data_dir / "logs" / f"{component}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [cli_executable(), *workload.command[1:]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return popen, log


def run_pipeline_once(
    kafka: KafkaServer, s3: S3Server, workdir: Path, *, label: str, rate: int, sizes: PipelineSizes
) -> RunResult:
    name = "rate" if rate > 0 else "max"
    run = LocalRun(
        bench_pipeline(name, rate),
        data_dir=workdir / name,
        printer=lambda _component, _line: None,
        kafka=kafka,
        s3=s3,
        extra_env={
            # dbt's artefacts go with the run, not into the project folder other runs share.
            "DBT_TARGET_PATH": str(workdir / name / "dbt-target"),
            "DBT_LOG_PATH": str(workdir / name / "dbt-logs"),
        },
    )
    run.data_dir.mkdir(parents=True, exist_ok=True)
    run.provision()
    names = run.names
    workloads: dict[str, object] = dict(by_component(run.workloads()))
    bucket_dir = s3.workdir.resolve() / "data" / names.bucket
    assert kafka.process is not None
    assert s3.process is not None
    server_pids = {"kafka": kafka.process.pid, "s3": s3.process.pid}

    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs: list[Path] = []
    usage: dict[str, ExitUsage] = {}
    observer: Observer | None = None
    try:
        for component in ("transform", "archive"):
            processes[component], log = start_workload(run, workloads, component, {})
            logs.append(log)
        transform_log, archive_log = logs
        # Steady state: the archive is in its group and the transform has done its first (full) build,
        # as a long-running pipeline has, before the first tick is produced.
        wait_until(
            lambda: "partitions assigned" in archive_log.read_text(errors="replace"),
            120,
            "the archive to join its group",
            logs,
        )
        wait_until(lambda: bool(cycle_starts(transform_log)), 600, "the first transform cycle", logs)
        ingest_env = {"MARKETPULSE_SYNTHETIC_RATE": str(rate)}
        processes["ingest"], log = start_workload(run, workloads, "ingest", ingest_env)
        logs.append(log)
        # The run's clock starts when ingest is up (imports take seconds on a busy machine).
        wait_until(lambda: "ingest started" in log.read_text(errors="replace"), 120, "ingest to start", logs)
        observer = Observer(run, bucket_dir / "gold" / "_manifest.json", run.metrics_ports["ingest"])
        observer.start()
        pids = {**server_pids, **{name: popen.pid for name, popen in processes.items()}}
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(sizes.duration)
        ingest_end = time.monotonic()
        usage["ingest"] = stop_and_measure(processes.pop("ingest"), timeout=120)
        if usage["ingest"].returncode != 0:
            raise PipelineBenchError(f"ingest exited with {usage['ingest'].returncode}; see {logs[-1]}")

        def drained() -> bool:
            assert observer is not None
            committed, high = observer.offsets()
            return committed >= high

        wait_until(drained, sizes.drain_timeout, "the archive to commit every tick", logs)
        drained_at = time.monotonic()
        drained_wall = dt.datetime.now(dt.UTC)
        _, ticks = observer.offsets()

        def gold_caught_up() -> bool:
            # A cycle that began after the drain has loaded every tick into gold.
            return any(start > drained_wall + CYCLE_START_MARGIN for start in cycle_starts(transform_log))

        wait_until(gold_caught_up, sizes.gold_timeout, "gold to include every tick", logs)
        live = {name: pid for name, pid in pids.items() if name != "ingest"}
        cpu = {name: tree_cpu_seconds(pid) - cpu_before[name] for name, pid in live.items()}
        memory = {name: vm_hwm_mib(pid) for name, pid in live.items()}
        observer.close()
    finally:
        if observer is not None:
            observer.close()
        for popen in processes.values():
            stop_and_measure(popen, timeout=60)

    # ingest has exited: its whole life (wait4) less what it had used when the window opened.
    cpu["ingest"] = usage["ingest"].cpu_seconds - cpu_before["ingest"]
    memory["ingest"] = usage["ingest"].max_rss_mib
    samples = observer.samples
    steady_from = started + WARMUP_FRACTION * (ingest_end - started)
    acked_rate = rate_between(samples.acked, steady_from, ingest_end)
    committed_points = [(t, float(c)) for t, c, _ in samples.offsets]
    archived_rate = rate_between(committed_points, steady_from, ingest_end)
    lags = [(t, float(h - c)) for t, c, h in samples.offsets if t <= ingest_end]
    bronze = bronze_latency(bucket_dir / "bronze")
    gold, unmatched = gold_latency(run.warehouse_path, samples.manifests)
    return RunResult(
        label=label,
        acked_per_s=acked_rate,
        archived_per_s=archived_rate,
        ticks=int(ticks),
        cpu_seconds=cpu,
        memory_mib=memory,
        bronze_latency=bronze,
        gold_latency=gold,
        gold_unmatched=unmatched,
        lag_max=int(max((lag for _, lag in lags), default=0)),
        lag_growth=slope([(t, lag) for t, lag in lags if t >= steady_from]),
        ingest_seconds=ingest_end - started,
        drain_seconds=drained_at - ingest_end,
        topic=names.ticks_topic,
        bucket=names.bucket,
    )


# -- ceiling and floor ----------------------------------------------------------------------------
def write_payload_file(path: Path, records: int = 2000) -> float:
    """Real tick JSON lines, as our ingest encodes them, for ProducerPerformance; returns mean bytes."""
    source = SyntheticSource(
        symbols=WATCHLIST, producer_id=f"bench-{os.getpid()}-abc123", seed=42, clock="wall"
    )
    lines: list[bytes] = []
    for batch in source.batches():
        lines += [encode_tick(record) for record in batch if isinstance(record, Tick)]
        if len(lines) >= records:
            break
    path.write_bytes(b"\n".join(lines[:records]) + b"\n")
    return sum(len(line) for line in lines[:records]) / records


@dataclass
class Ceiling:
    producer: ProducerCeiling
    consumer: ConsumerCeiling
    record_bytes: float

    @property
    def cpu_us_per_record(self) -> float:
        total = (
            self.producer.tool_cpu_seconds
            + self.producer.broker_cpu_seconds
            + self.consumer.tool_cpu_seconds
            + self.consumer.broker_cpu_seconds
        )
        return total / self.producer.records * 1e6


def measure_ceiling(kafka: KafkaServer, workdir: Path, records: int) -> Ceiling:
    topic = "bench.ceiling.ticks"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result(timeout=30)
    payload = workdir / "ticks-payload.ndjson"
    record_bytes = write_payload_file(payload)
    producer = producer_ceiling(kafka, topic, payload, records, workdir / "producer-perf.log")
    consumer = consumer_ceiling(kafka, topic, producer.records, workdir / "consumer-perf.log")
    return Ceiling(producer, consumer, record_bytes)


@dataclass(frozen=True)
class NaiveFloor:
    ticks: int
    ticks_per_second: float
    cpu_us_per_tick: float


def measure_naive_archive(
    kafka: KafkaServer, s3: S3Server, run: RunResult, seconds: float, log: Path
) -> NaiveFloor:
    """The naive archiver drains the as-fast-as-possible run's topic (a backlog) for `seconds`."""
    assert kafka.process is not None
    assert s3.process is not None
    servers = {"kafka": kafka.process.pid, "s3": s3.process.pid}
    env = {
        **os.environ,
        **kafka.settings(),
        **s3.settings(),
        "MARKETPULSE_BUCKET": run.bucket,
        "MARKETPULSE_TICKS_TOPIC": run.topic,
        "NAIVE_GROUP": f"{run.topic}.naive",
    }
    before = {n: tree_cpu_seconds(pid) for n, pid in servers.items()}
    with log.open("wb") as out:
        popen = subprocess.Popen(
            naive_archive_command(seconds),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        usage = wait_and_measure(popen, timeout=seconds + 120)
    servers_cpu = sum(tree_cpu_seconds(pid) - before[n] for n, pid in servers.items())
    text = log.read_text(errors="replace")
    if usage.returncode != 0:
        raise PipelineBenchError(f"the naive archiver exited with {usage.returncode}:\n{text[-3000:]}")
    summary = orjson.loads(text.strip().splitlines()[-1])
    ticks, elapsed = int(summary["ticks"]), float(summary["seconds"])
    if ticks == 0 or elapsed <= 0:
        raise PipelineBenchError(f"the naive archiver wrote nothing:\n{text[-3000:]}")
    return NaiveFloor(ticks, ticks / elapsed, (usage.cpu_seconds + servers_cpu) / ticks * 1e6)


# -- rows ---------------------------------------------------------------------------------------
def rows_for_run(result: RunResult, ceiling: Ceiling, naive: NaiveFloor) -> list[ResultRow]:
    label = result.label
    naive_name = "naive archiver: auto-commit, one S3 object per tick"
    total_cpu = sum(result.cpu_seconds.values())
    per_tick = {name: seconds / result.ticks * 1e6 for name, seconds in result.cpu_seconds.items()}
    biggest = max(per_tick, key=lambda name: per_tick[name])
    growth_bounded = not math.isfinite(result.lag_growth) or result.lag_growth < 0.01 * max(
        result.acked_per_s, 1
    )
    rows = [
        result_row(
            SUITE,
            f"ticks_acked_per_s[{label}]",
            result.acked_per_s,
            "ticks/s",
            target=TARGET_RATE,
            baseline=naive.ticks_per_second,
            baseline_name=naive_name,
            ceiling=ceiling.producer.records_per_second,
            ceiling_name="Kafka ProducerPerformance, acks=all, same records",
            notes=f"ingest counter, {result.ingest_seconds:.0f} s run less {WARMUP_FRACTION:.0%} warm-up; "
            f"{result.ticks} ticks in Kafka",
        ),
        result_row(
            SUITE,
            f"ticks_archived_per_s[{label}]",
            result.archived_per_s,
            "ticks/s",
            target=TARGET_RATE,
            baseline=naive.ticks_per_second,
            baseline_name=naive_name,
            ceiling=ceiling.consumer.records_per_second,
            ceiling_name="Kafka ConsumerPerformance (fetch rate)",
            notes=f"archive's committed offsets over the same window; drained {result.drain_seconds:.1f} s "
            "after ingest stopped",
        ),
        result_row(
            SUITE,
            f"cpu_us_per_tick[{label}]",
            total_cpu / result.ticks * 1e6,
            "CPU-µs/tick",
            target=TARGET_CPU,
            baseline=naive.cpu_us_per_tick,
            baseline_name="naive archiver + broker + S3",
            ceiling=ceiling.cpu_us_per_record,
            ceiling_name="Kafka perf tools: producer + consumer + broker",
            notes=f"all of kafka, s3, ingest, archive, transform; biggest: {biggest} "
            f"({per_tick[biggest]:.1f} µs)",
        ),
    ]
    for process in (*SERVERS, *WORKLOADS):
        how = "utime+stime over the window" + (" (wait4 total less the start)" if process == "ingest" else "")
        rows.append(
            result_row(
                SUITE, f"cpu_us_per_tick[{label}][{process}]", per_tick[process], "CPU-µs/tick", notes=how
            )
        )
    for process in (*SERVERS, *WORKLOADS):
        how = "peak RSS (wait4)" if process == "ingest" else "VmHWM"
        rows.append(
            result_row(
                SUITE, f"memory_hwm_mib[{label}][{process}]", result.memory_mib[process], "MiB", notes=how
            )
        )
    for quantile in ("p50", "p95", "p99"):
        rows.append(
            result_row(
                SUITE,
                f"tick_to_bronze_{quantile}_s[{label}]",
                result.bronze_latency[quantile],
                "s",
                target=TARGET_BRONZE_P99 if quantile == "p99" else None,
                notes="object file mtime (Last-Modified at full precision) - ingest_time, "
                f"{int(result.bronze_latency['ticks'])} ticks; no naive figure: it cannot keep up",
            )
        )
    for quantile in ("p50", "p95", "p99"):
        rows.append(
            result_row(
                SUITE,
                f"tick_to_gold_{quantile}_s[{label}]",
                result.gold_latency[quantile],
                "s",
                target=TARGET_GOLD_P99 if quantile == "p99" else None,
                notes="first gold manifest published_at after the tick's _loaded_at - ingest_time; "
                f"continuous, {TRANSFORM_INTERVAL_SECONDS} s interval; "
                f"{result.gold_unmatched} loaded ticks not covered",
            )
        )
    rows += [
        result_row(
            SUITE,
            f"archive_lag_max_records[{label}]",
            result.lag_max,
            "records",
            notes="high watermark - committed, sampled every second while ingest ran",
        ),
        result_row(
            SUITE,
            f"archive_lag_growth_records_per_s[{label}]",
            result.lag_growth,
            "records/s",
            notes=("bounded" if growth_bounded else "NOT bounded")
            + " (least-squares slope of the lag over the steady window; bounded = under 1% of the ack rate)",
        ),
    ]
    return rows


def run_pipeline_suite(workdir: Path, *, rate: int, sizes: PipelineSizes) -> list[ResultRow]:
    kafka = KafkaServer(workdir / "kafka", heap="1g")
    s3 = S3Server(workdir / "s3")
    try:
        kafka.start()
        s3.start()
        ceiling = measure_ceiling(kafka, workdir, sizes.ceiling_records)
        results = []
        for label, target_rate in zip(run_labels(rate), (rate, 0), strict=True):
            results.append(run_pipeline_once(kafka, s3, workdir, label=label, rate=target_rate, sizes=sizes))
        naive = measure_naive_archive(
            kafka, s3, results[-1], sizes.naive_seconds, workdir / "naive-archive.log"
        )
    finally:
        s3.stop()
        kafka.stop()
    rows: list[ResultRow] = []
    for result in results:
        rows += rows_for_run(result, ceiling, naive)
    return rows
