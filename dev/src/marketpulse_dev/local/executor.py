"""Run a StockPipeline on one machine: the same workloads the operator creates, as processes.

The workloads come from the same pure renderer as the operator's (`marketpulse.contract.workloads`); only
the values bound to a platform differ (where Kafka and S3 are, the warehouse path, ports), and
Secrets are resolved locally (see `secrets.py`). Kafka and S3 are the project's local servers,
with their data under the run's data directory, so a second run resumes where the first stopped.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from minio import Minio
from minio.error import S3Error

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.layout import MANIFEST_KEY
from marketpulse.contract.topics import plan_topics
from marketpulse.contract.workloads import PipelineNames, Platform, Workload, names_for, render_workloads
from marketpulse.operator.backends.buckets import Ownership, ensure_bucket
from marketpulse.operator.backends.topics import admin_client, ensure_topics
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.local.secrets import LocalSecrets
from marketpulse_dev.local.supervisor import Printer, Supervised
from marketpulse_dev.localenv.files import write_private
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.process import free_port, port_is_open
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.metrics_text import scrape

# Variables whose value is bound to where the workload runs; every other variable is identical
# to what the operator renders for the same spec.
PLATFORM_BOUND = frozenset(
    {
        "KAFKA_BOOTSTRAP_SERVERS",
        "S3_ENDPOINT",
        "MARKETPULSE_DUCKDB_PATH",
        "MARKETPULSE_METRICS_PORT",
        "MARKETPULSE_METRICS_HOST",
        "MARKETPULSE_DASHBOARD_PORT",
        "MARKETPULSE_DASHBOARD_ADDRESS",
        "SNOWFLAKE_PRIVATE_KEY_PATH",
    }
)
LOCAL_BIND_ADDRESS = "127.0.0.1"
# In every data directory `marketpulse run` creates; `--fresh` deletes no directory without it.
DATA_MARKER = ".marketpulse-data"
LOCAL_S3_SECRET = "marketpulse-s3"  # noqa: S105 - the name of the Secret the local platform provides


def cli_executable() -> str:
    """The `marketpulse` of this installation (a virtualenv's bin is often not on PATH)."""
    beside = Path(sys.executable).parent / "marketpulse"
    return str(beside) if beside.exists() else "marketpulse"


class LocalRunError(RuntimeError):
    """A stage of a local run failed; the message names it."""


def schedule_seconds(cron: str) -> float:
    """Locally a cron-mode transform repeats at its schedule's period: `*/N * * * *` is N minutes, else 1."""
    match = re.fullmatch(r"\*/(\d+) \* \* \* \*", cron.strip())
    return 60.0 * int(match[1]) if match else 60.0


@dataclass
class LocalRun:
    pipeline: StockPipeline
    data_dir: Path
    printer: Printer
    dashboard_port: int = 8501
    extra_env: dict[str, str] = field(default_factory=dict)
    # A full refresh for the transform, as the operator's annotation gives one (its token).
    full_refresh: str | None = None
    kafka: KafkaServer | None = None
    s3: S3Server | None = None
    processes: dict[str, Supervised] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)

    @property
    def names(self) -> PipelineNames:
        return names_for(self.pipeline)

    @property
    def secrets_dir(self) -> Path:
        """Where the Secret files of the workloads (the Snowflake key) are, while they run."""
        return self.data_dir / "secrets"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def on_snowflake(self) -> bool:
        return self.pipeline.spec.warehouse.type == "snowflake"

    def check_secrets(self) -> None:
        """Resolve every Secret the workloads reference before any server starts, so that a missing
        one (a Snowflake password, a Finnhub key) is named up front; raises MissingSecretError."""
        platform = Platform(s3_endpoint="http://127.0.0.1", s3_credentials_secret=LOCAL_S3_SECRET)
        secrets = LocalSecrets({})
        for workload in render_workloads(self.pipeline.spec, self.names, platform):
            for var in workload.env:
                if var.secret is not None and var.secret.name != LOCAL_S3_SECRET:
                    secrets.resolve(var.secret, needed_by=f"{workload.component} ({var.name})")
            for secret_file in workload.secret_files:
                secrets.resolve(secret_file.secret, needed_by=workload.component)

    # -- infrastructure -------------------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.data_dir = prepare_data_dir(self.data_dir)
        self.kafka = KafkaServer(self.data_dir / "kafka").start()
        self.s3 = S3Server(self.data_dir / "s3").start()
        self.provision()

    def provision(self) -> None:
        """Create the topics and the bucket with the operator's own `topicBackend: direct` code."""
        assert self.kafka is not None
        assert self.s3 is not None
        spec = self.pipeline.spec
        admin = admin_client(self.kafka.bootstrap_servers)
        topics = ensure_topics(admin, plan_topics(spec, self.names), timeout=30)
        self.printer("kafka", f"topics: {topics.durability()}")
        del admin  # destroys the client now, not when the broker is already stopped (no reconnect noise)
        ensure_bucket(
            self.s3_client(),
            self.names.bucket,
            spec.storage.retention_days,
            # Local mode: the user owns every bucket of its S3 server; older untagged ones are claimed.
            Ownership(self.names.qualified, claim_untagged=True),
        )

    def s3_client(self) -> Minio:
        assert self.s3 is not None
        return minio_client(self.s3.endpoint, self.s3.access_key, self.s3.secret_key)

    def store(self) -> S3ObjectStore:
        return S3ObjectStore(self.s3_client(), self.names.bucket)

    # -- workloads ------------------------------------------------------------------------------
    def workloads(self) -> list[Workload]:
        assert self.s3 is not None
        platform = Platform(s3_endpoint=self.s3.endpoint, s3_credentials_secret=LOCAL_S3_SECRET)
        return render_workloads(self.pipeline.spec, self.names, platform, full_refresh=self.full_refresh)

    def environment(self, workload: Workload) -> dict[str, str]:
        assert self.kafka is not None
        assert self.s3 is not None
        secrets = LocalSecrets(
            {
                (LOCAL_S3_SECRET, "AWS_ACCESS_KEY_ID"): self.s3.access_key,
                (LOCAL_S3_SECRET, "AWS_SECRET_ACCESS_KEY"): self.s3.secret_key,
            }
        )
        env: dict[str, str] = {}
        for var in workload.env:
            needed_by = f"{workload.component} ({var.name})"
            if var.secret is not None:
                env[var.name] = secrets.resolve(var.secret, needed_by=needed_by)
            elif var.value is not None:
                env[var.name] = var.value
        for secret_file in workload.secret_files:
            path = self.secrets_dir / secret_file.file_name
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(path, secrets.resolve(secret_file.secret, needed_by=workload.component))
            env |= {k: str(path) for k, v in env.items() if v == secret_file.path}
        port = self.metrics_ports.setdefault(workload.component, free_port())
        env |= {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "MARKETPULSE_METRICS_PORT": str(port),
            # Every listener of a local run is reachable from this machine only.
            "MARKETPULSE_METRICS_HOST": LOCAL_BIND_ADDRESS,
            "MARKETPULSE_LOG_LEVEL": "INFO",
        }
        if "S3_ENDPOINT" in env:
            env["S3_ENDPOINT"] = self.s3.endpoint
        if "MARKETPULSE_DUCKDB_PATH" in env:
            env["MARKETPULSE_DUCKDB_PATH"] = str(self.warehouse_path)
        if "MARKETPULSE_DASHBOARD_PORT" in env:
            env["MARKETPULSE_DASHBOARD_PORT"] = str(self.dashboard_port)
            env["MARKETPULSE_DASHBOARD_ADDRESS"] = LOCAL_BIND_ADDRESS
        return env | self.extra_env

    def supervised(
        self, workload: Workload, *, restart: bool, env: dict[str, str] | None = None
    ) -> Supervised:
        process = Supervised(
            workload.component,
            [cli_executable(), *workload.command[1:]],
            env or self.environment(workload),
            self.data_dir / "logs" / f"{workload.component}.log",
            self.printer,
            restart=restart,
        )
        self.processes[workload.component] = process
        return process

    # -- observation ----------------------------------------------------------------------------
    def consumer_lag(self) -> int | None:
        """Records the archive has not committed yet, summed over partitions."""
        assert self.kafka is not None
        names = self.names
        consumer = Consumer(
            {
                "bootstrap.servers": self.kafka.bootstrap_servers,
                "group.id": f"{names.topic_prefix}.archive",
                "enable.auto.commit": False,
            }
        )
        try:
            metadata = consumer.list_topics(names.ticks_topic, timeout=5)
            partitions = [
                TopicPartition(names.ticks_topic, p) for p in metadata.topics[names.ticks_topic].partitions
            ]
            committed = consumer.committed(partitions, timeout=5)
            lag = 0
            for tp in committed:
                low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
                position = tp.offset if tp.offset >= 0 else low
                lag += max(0, high - position)
            return lag
        except KafkaException:
            return None
        finally:
            consumer.close()

    def ticks_acked(self) -> float | None:
        port = self.metrics_ports.get("ingest")
        if port is None:
            return None
        try:
            acked = scrape(port, timeout=1).get("marketpulse_ingest_ticks_acked_total")
        except httpx.HTTPError:
            return None
        return acked[0][1] if acked else None

    def snowflake_gold_rows(self, timeout: float = 15) -> dict[str, int] | None:
        """Rows per gold table in Snowflake, read with the transform's connection settings; None
        while the gold schema does not exist or Snowflake cannot be reached."""
        import snowflake.connector

        from marketpulse.contract.settings.transform import TransformSettings

        transform = next(w for w in self.workloads() if w.component == "transform")
        env = self.environment(transform)
        settings = TransformSettings.model_validate(
            {"warehouse": "snowflake", **{k: v for k, v in env.items() if k.startswith("SNOWFLAKE_")}}
        )
        kwargs = settings.snowflake_connect_kwargs() | {"login_timeout": timeout, "network_timeout": timeout}
        schema = settings.gold_schema.upper()
        try:
            with snowflake.connector.connect(**kwargs) as con, con.cursor() as cursor:
                cursor.execute(
                    "select table_name from information_schema.tables where table_schema = %s "
                    "order by table_name",
                    (schema,),
                )
                tables = [str(row[0]).lower() for row in cursor.fetchall()]
                rows = {}
                for table in tables:
                    cursor.execute(f"select count(*) from {schema}.{table}")  # noqa: S608 - catalogue names
                    (count,) = cursor.fetchone() or (0,)
                    rows[table] = int(count)
        except snowflake.connector.errors.Error:
            return None
        return rows or None

    def gold_rows(self) -> dict[str, int] | None:
        """Rows per gold table, where the dashboard reads them: the published manifest or Snowflake."""
        if self.on_snowflake:
            return self.snowflake_gold_rows()
        manifest = self.gold_manifest()
        rows = manifest.get("rows") if manifest else None
        return {str(k): int(v) for k, v in rows.items()} if isinstance(rows, dict) else None

    def warehouse_description(self) -> str:
        snowflake = self.pipeline.spec.warehouse.snowflake
        if self.on_snowflake and snowflake is not None:
            return f"Snowflake {snowflake.account} database {snowflake.database}"
        return f"DuckDB {self.warehouse_path}"

    def gold_manifest(self) -> dict[str, object] | None:
        try:
            manifest: dict[str, object] = orjson.loads(self.store().get(MANIFEST_KEY))
        except (S3Error, orjson.JSONDecodeError):
            return None
        return manifest

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        for server in (self.s3, self.kafka):
            if server is not None:
                server.stop()
        # The workloads that read them have stopped; the next run writes them again.
        shutil.rmtree(self.secrets_dir, ignore_errors=True)


def ensure_port_free(port: int, option: str) -> None:
    if port_is_open(port):
        raise LocalRunError(f"port {port} is already in use; stop what listens there or pass {option} <port>")


def prepare_data_dir(path: Path) -> Path:
    """The data directory, resolved; one that MarketPulse creates (or finds empty) gets the marker
    that later allows `--fresh` to delete it. A directory already holding other files gets none."""
    path = path.resolve()
    if not path.exists() or not any(path.iterdir()):
        path.mkdir(parents=True, exist_ok=True)
        (path / DATA_MARKER).write_text(
            "Created by `marketpulse run`: `marketpulse run --fresh` deletes this directory.\n"
        )
    return path


def reset_data_dir(path: Path) -> None:
    """`--fresh`: delete a data directory MarketPulse created, and nothing else (a mistyped
    --data-dir must not cost anyone their files)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise LocalRunError(f"--data-dir {path} is not a directory; --fresh deletes only data directories")
    if any(path.iterdir()) and not (path / DATA_MARKER).is_file():
        raise LocalRunError(
            f"--fresh would delete {path}, which MarketPulse did not create (there is no {DATA_MARKER} "
            "in it); nothing was deleted. Pass a --data-dir that `marketpulse run` made, or a new one"
        )
    shutil.rmtree(path)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def by_component(workloads: Iterable[Workload]) -> dict[str, Workload]:
    return {w.component: w for w in workloads}
