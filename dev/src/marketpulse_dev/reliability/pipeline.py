"""One pipeline under test: its topics, its bucket, and its workloads run as `marketpulse <command>`
processes configured only by environment variables, exactly as the executors run them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from minio import Minio

from marketpulse.storage.s3 import minio_client
from marketpulse_dev.reliability.ledger import Identity, read_ledger

MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")
WATCHLIST = ("AAPL", "MSFT", "NVDA", "SPY")


@dataclass
class FlowUnderTest:
    name: str
    env: dict[str, str]
    bucket: str
    ticks_topic: str
    dlq_topic: str
    workdir: Path
    minio: Minio
    bootstrap: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    log_paths: dict[int, Path] = field(default_factory=dict)  # by process id

    @classmethod
    def create(
        cls,
        bootstrap: str,
        s3_settings: Mapping[str, str],
        workdir: Path,
        *,
        partitions: int = 3,
        replicas: int = 1,
        topic_config: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> FlowUnderTest:
        """`replicas` and `topic_config` (min.insync.replicas, say) apply to the ticks and dead letters."""
        name = f"r{uuid.uuid4().hex[:6]}"
        ticks, dlq = f"test.{name}.ticks", f"test.{name}.ticks.dlq"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        config = dict(topic_config or {})
        topics = [
            NewTopic(ticks, partitions, replicas, config=config),
            NewTopic(dlq, 1, replicas, config=config),
        ]
        for future in admin.create_topics(topics).values():
            future.result(timeout=30)
        client = minio_client(
            s3_settings["S3_ENDPOINT"], s3_settings["S3_ACCESS_KEY"], s3_settings["S3_SECRET_KEY"]
        )
        bucket = f"mp-{name}"
        client.make_bucket(bucket)
        workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")},
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            **s3_settings,
            "MARKETPULSE_NAMESPACE": "test",
            "MARKETPULSE_PIPELINE": name,
            "MARKETPULSE_BUCKET": bucket,
            "MARKETPULSE_WATCHLIST": ",".join(WATCHLIST),
            "MARKETPULSE_METRICS_PORT": "0",
            "MARKETPULSE_SYNTHETIC_CLOCK": "simulated",
            "MARKETPULSE_SYNTHETIC_RATE": "0",
            "MARKETPULSE_INGEST_LEDGER": str(workdir / "ledger.txt"),
            "MARKETPULSE_ARCHIVE_MAX_AGE_SECONDS": "0.5",
            "MARKETPULSE_ARCHIVE_MAX_BYTES": "200000",
            # A killed archiver's partitions move to its replacement after this, not after 45 s.
            "MARKETPULSE_ARCHIVE_SESSION_TIMEOUT_SECONDS": "6",
            **(extra_env or {}),
        }
        return cls(name, env, bucket, ticks, dlq, workdir, client, bootstrap)

    @property
    def archive_group(self) -> str:
        return self.env.get("MARKETPULSE_ARCHIVE_GROUP") or f"test.{self.name}.archive"

    @property
    def ledger_path(self) -> Path:
        return Path(self.env["MARKETPULSE_INGEST_LEDGER"])

    def ledger(self) -> list[Identity]:
        return read_ledger(self.ledger_path)

    def run(self, command: str, extra: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        path = self.workdir / f"{command}-{time.monotonic_ns()}.log"
        with path.open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [MARKETPULSE, command],
                env={**self.env, **(extra or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        self.log_paths[process.pid] = path
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        """The output of one process started by `run`."""
        return self.log_paths[process.pid].read_text()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.log_paths.values())

    def log_records(self, process: subprocess.Popen[bytes], message: str) -> list[dict[str, object]]:
        """The structured log lines of `process` whose message is `message`."""
        found = []
        for line in self.log_of(process).splitlines():
            if line.startswith("{") and f'"message":"{message}"' in line:
                found.append(orjson.loads(line))
        return found

    def bronze(self) -> tuple[list[Identity], list[str]]:
        """(producer_id, seq) of every record in every bronze object, and the object keys."""
        identities: list[Identity] = []
        keys = []
        for item in self.minio.list_objects(self.bucket, prefix="bronze/ticks/", recursive=True):
            assert item.object_name is not None
            keys.append(item.object_name)
            response = self.minio.get_object(self.bucket, item.object_name)
            try:
                for line in response.read().splitlines():
                    record = orjson.loads(line)
                    identities.append((record["producer_id"], record["seq"]))
            finally:
                response.close()
                response.release_conn()
        return identities, keys

    def stop_all(self) -> None:
        """SIGKILL whatever this flow started and is still running (test teardown)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]) -> float:
    """Poll until `predicate` holds; returns the monotonic time it did. Raises TimeoutError with the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{logs()}")
