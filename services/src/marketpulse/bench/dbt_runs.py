"""dbt suite: `dbt build` in-process (the transform's way) against the `dbt` command line, same warehouse.

The warehouse is filled through the real loader from the real S3 server, built once (the full
build), then rebuilt `runs` times each way, alternating so that machine noise hits both alike.
With no new bronze rows in between, each rebuild is what a steady transform cycle pays in dbt.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from marketpulse.bench.bronze_data import SYMBOLS, bronze_objects, upload
from marketpulse.bench.naive import dbt_cli
from marketpulse.bench.report import ResultRow, result_row
from marketpulse.localenv.s3 import S3Server
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse.warehouse.dbt_project import find_project_dir, run_dbt

SUITE = "dbt"
BUCKET = "bench-dbt"
METRICS = ["dbt_build_first_seconds", "dbt_build_in_process_median_seconds", "dbt_build_cli_median_seconds"]


@dataclass(frozen=True)
class DbtSizes:
    rows: int
    runs: int


SHORT_SIZES = DbtSizes(rows=20_000, runs=1)
FULL_SIZES = DbtSizes(rows=500_000, runs=5)


def run_dbt_suite(workdir: Path, *, sizes: DbtSizes) -> list[ResultRow]:
    database = workdir / "warehouse.duckdb"
    s3 = S3Server(workdir / "s3")
    try:
        s3.start()
        client = minio_client(s3.endpoint, s3.access_key, s3.secret_key)
        client.make_bucket(BUCKET)
        store = S3ObjectStore(client, BUCKET)
        upload(store, bronze_objects(sizes.rows, 20_000))
        with duckdb.connect(str(database)) as con:
            DuckDBBronzeLoader(con, store).load_new()
    finally:
        s3.stop()

    env = {
        "MARKETPULSE_DUCKDB_PATH": str(database),
        "DBT_TARGET_PATH": str(workdir / "dbt-target"),
        "DBT_LOG_PATH": str(workdir / "dbt-logs"),
        "DBT_QUIET": "true",
        "DBT_USE_COLORS": "false",
    }
    # The same arguments the transform passes (transform/main.py).
    dbt_vars = {"watchlist": SYMBOLS, "bronze_schema": "bronze", "gold_schema": "gold"}
    args = ["build", "--vars", json.dumps(dbt_vars)]
    project = find_project_dir()

    started = time.perf_counter()
    run_dbt(args, target="duckdb", env=env)
    first = time.perf_counter() - started
    in_process: list[float] = []
    cli: list[float] = []
    for _ in range(sizes.runs):
        started = time.perf_counter()
        run_dbt(args, target="duckdb", env=env)
        in_process.append(time.perf_counter() - started)
        cli.append(dbt_cli(args, project_dir=project, target="duckdb", env=env))
    in_median, cli_median = statistics.median(in_process), statistics.median(cli)
    runs = f"median of {sizes.runs}, alternating with the other way; {sizes.rows} ticks in bronze"
    return [
        result_row(
            SUITE,
            "dbt_build_first_seconds",
            first,
            "s",
            notes="in-process build of an empty silver/gold (full build, includes dbt's first parse)",
        ),
        result_row(
            SUITE,
            "dbt_build_in_process_median_seconds",
            in_median,
            "s",
            baseline=cli_median,
            baseline_name="dbt CLI subprocess per run",
            notes=f"run_dbt (dbtRunner); {runs}; all: {', '.join(f'{s:.2f}' for s in in_process)}",
        ),
        result_row(
            SUITE,
            "dbt_build_cli_median_seconds",
            cli_median,
            "s",
            notes=f"`dbt build` child process; {runs}; all: {', '.join(f'{s:.2f}' for s in cli)}",
        ),
    ]
