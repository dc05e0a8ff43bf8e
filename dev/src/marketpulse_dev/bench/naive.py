"""Naive baselines: the obvious way to build each stage, measured beside ours in the same run.

These are deliberately simple yardsticks, not product code:
- archive: a consumer with auto-commit that writes one S3 object per tick;
- load: one INSERT statement per row into DuckDB;
- dbt: a `dbt` command-line process per run instead of the in-process runner.

The archive baseline runs as its own process (`python -m marketpulse_dev.bench.naive`) so that its
CPU time is measured the same way as our workloads'.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson

from marketpulse_dev.bench.bronze_data import BRONZE_COLUMNS


def naive_archive_command(seconds: float) -> list[str]:
    return [sys.executable, "-m", "marketpulse_dev.bench.naive", str(seconds)]


def naive_archive(seconds: float) -> int:
    """Auto-commit consumer, one object per tick, for `seconds`; prints the ticks written as JSON."""
    from confluent_kafka import Consumer

    from marketpulse.storage.s3 import minio_client

    env = os.environ
    client = minio_client(env["S3_ENDPOINT"], env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"])
    bucket = env["MARKETPULSE_BUCKET"]
    consumer = Consumer(
        {
            "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": env["NAIVE_GROUP"],
            "enable.auto.commit": True,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([env["MARKETPULSE_TICKS_TOPIC"]])
    written, first = 0, None
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            if first is None:
                first = time.monotonic()
                deadline = first + seconds  # time spent joining the group is not archiving time
            value = message.value() or b""
            key = f"naive/ticks/{message.partition()}/{message.offset()}.json"
            client.put_object(bucket, key, io.BytesIO(value), len(value), content_type="application/json")
            written += 1
    finally:
        consumer.close()
    elapsed = time.monotonic() - first if first is not None else 0.0
    print(orjson.dumps({"ticks": written, "seconds": elapsed}).decode())
    return 0


def insert_row_by_row(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> float:
    """One INSERT per tick into `table` (created like bronze.raw_ticks' contract); returns seconds."""
    columns = list(BRONZE_COLUMNS)
    con.execute(
        f"create or replace table {table} ("
        + ", ".join(f"{name} {kind}" for name, kind in BRONZE_COLUMNS.items())
        + ")"
    )
    # `table` is the benchmark's own identifier; every value is bound.
    statement = f"insert into {table} values ({', '.join('?' for _ in columns)})"  # noqa: S608
    started = time.perf_counter()
    for row in rows:
        con.execute(statement, [row[name] for name in columns])
    return time.perf_counter() - started


def dbt_cli(args: Sequence[str], *, project_dir: Path, target: str, env: dict[str, str]) -> float:
    """`dbt <args>` as a child process, as a shell or a per-run container would; returns seconds."""
    dbt = Path(sys.executable).parent / "dbt"
    command = [
        str(dbt) if dbt.exists() else "dbt",
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target",
        target,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} exited with {done.returncode}:\n{done.stdout[-3000:]}")
    return elapsed


if __name__ == "__main__":
    raise SystemExit(naive_archive(float(sys.argv[1])))
