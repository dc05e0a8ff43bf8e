"""dbt suite: `dbt build` in-process (the transform's way) against the `dbt` command line, same warehouse;
then steady continuous-mode cycles, the transform's way against a naive one.

The warehouse is filled through the real loader from the real S3 server, built once (the full
build), then rebuilt `runs` times each way, alternating so that machine noise hits both alike.
With no new bronze rows in between, each rebuild is what a periodic full build pays in dbt.

Steady cycles: `cycles` times, `cycle_rows` new ticks are written to S3 as bronze objects, and each
of two warehouses (copies of the first one, after the full build) runs one continuous-mode cycle:
load them, dbt, publish gold to S3. The transform's way (`transform.main.dbt_command`, the manifest
parsed once per process) against the naive way (`dbt run` of every model, the project parsed on every
invocation, dbt's JSON artifacts written), in alternating order. tick→gold in continuous mode is
bounded by this cycle time.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from marketpulse.storage import ObjectStore, S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse.transform.main import dbt_command
from marketpulse.transform.publish import publish_gold
from marketpulse.warehouse.dbt_project import find_project_dir, run_dbt
from marketpulse_dev.bench.bronze_data import SYMBOLS, BronzeObject, bronze_objects, upload
from marketpulse_dev.bench.naive import dbt_cli
from marketpulse_dev.bench.report import ResultRow, result_row
from marketpulse_dev.localenv.s3 import S3Server

SUITE = "dbt"
BUCKET = "bench-dbt"
METRICS = [
    "dbt_build_first_seconds",
    "dbt_build_in_process_median_seconds",
    "dbt_build_cli_median_seconds",
    "steady_cycle_median_seconds",
    "steady_cycle_dbt_median_seconds",
]
# The same vars the transform passes (transform/main.py).
VARS_ARGS = ["--vars", json.dumps({"watchlist": SYMBOLS, "bronze_schema": "bronze", "gold_schema": "gold"})]


@dataclass(frozen=True)
class DbtSizes:
    rows: int
    runs: int
    cycles: int
    cycle_rows: int


SHORT_SIZES = DbtSizes(rows=20_000, runs=1, cycles=2, cycle_rows=5_000)
# 100k new ticks per cycle: 50k ticks/s arriving over a 2 s cycle.
FULL_SIZES = DbtSizes(rows=500_000, runs=5, cycles=6, cycle_rows=100_000)


@dataclass(frozen=True)
class CycleWay:
    """One way of running a steady cycle, on its own warehouse and bucket."""

    name: str
    store: ObjectStore
    env: dict[str, str]
    dbt_args: list[str]
    reuse_manifest: bool


def _env(database: Path, workdir: Path, name: str) -> dict[str, str]:
    return {
        "MARKETPULSE_DUCKDB_PATH": str(database),
        "DBT_TARGET_PATH": str(workdir / f"dbt-target-{name}"),
        "DBT_LOG_PATH": str(workdir / f"dbt-logs-{name}"),
        "DBT_QUIET": "true",
        "DBT_USE_COLORS": "false",
    }


def _load(database: str, store: ObjectStore) -> None:
    with duckdb.connect(database) as con:
        DuckDBBronzeLoader(con, store).load_new()


def _steady_cycle(way: CycleWay) -> tuple[float, float]:
    """One continuous-mode cycle as transform.main runs it; returns (cycle, dbt) seconds."""
    database = way.env["MARKETPULSE_DUCKDB_PATH"]
    started = time.perf_counter()
    _load(database, way.store)
    dbt_started = time.perf_counter()
    run_dbt([*way.dbt_args, *VARS_ARGS], target="duckdb", env=way.env, reuse_manifest=way.reuse_manifest)
    dbt_seconds = time.perf_counter() - dbt_started
    with duckdb.connect(database) as con:
        publish_gold(con, way.store)
    return time.perf_counter() - started, dbt_seconds


def run_dbt_suite(workdir: Path, *, sizes: DbtSizes) -> list[ResultRow]:
    database = workdir / "warehouse.duckdb"
    per_object = min(20_000, sizes.cycle_rows)
    objects = bronze_objects(sizes.rows + sizes.cycles * sizes.cycle_rows, per_object)
    first_objects = sizes.rows // per_object
    s3 = S3Server(workdir / "s3")
    try:
        s3.start()
        client = minio_client(s3.endpoint, s3.access_key, s3.secret_key)
        stores: list[ObjectStore] = []
        for bucket in (BUCKET, f"{BUCKET}-naive"):
            client.make_bucket(bucket)
            stores.append(S3ObjectStore(client, bucket))
            upload(stores[-1], objects[:first_objects])
        _load(str(database), stores[0])
        rows = _full_builds(workdir, database, sizes)
        rows += _steady_cycles(workdir, database, stores, objects[first_objects:], sizes)
    finally:
        s3.stop()
    return rows


def _full_builds(workdir: Path, database: Path, sizes: DbtSizes) -> list[ResultRow]:
    env = _env(database, workdir, "build")
    args = ["build", *VARS_ARGS]
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


def _steady_cycles(
    workdir: Path, database: Path, stores: Sequence[ObjectStore], new: Sequence[BronzeObject], sizes: DbtSizes
) -> list[ResultRow]:
    naive_database = workdir / "warehouse-naive.duckdb"
    shutil.copyfile(database, naive_database)
    ways = [
        CycleWay("transform", stores[0], _env(database, workdir, "transform"), dbt_command(False), True),
        CycleWay("naive", stores[1], _env(naive_database, workdir, "naive"), ["run"], False),
    ]
    # Each way parses (or not) as it would in a transform process that has done its first build.
    for way in ways:
        run_dbt(["build", *VARS_ARGS], target="duckdb", env=way.env, reuse_manifest=way.reuse_manifest)
    cycle: dict[str, list[float]] = {way.name: [] for way in ways}
    dbt: dict[str, list[float]] = {way.name: [] for way in ways}
    per_cycle = len(new) // sizes.cycles
    for index in range(sizes.cycles):
        batch = list(new[index * per_cycle : (index + 1) * per_cycle])
        for store in stores:
            upload(store, batch)
        for way in ways if index % 2 == 0 else reversed(ways):
            cycle_seconds, dbt_seconds = _steady_cycle(way)
            cycle[way.name].append(cycle_seconds)
            dbt[way.name].append(dbt_seconds)
    runs = (
        f"median of {sizes.cycles}, alternating with the naive way; {sizes.cycle_rows} new ticks per cycle "
        f"over {sizes.rows} already built"
    )
    naive = "dbt run of every model, project parsed per invocation"

    def listed(values: list[float]) -> str:
        return ", ".join(f"{value:.2f}" for value in values)

    return [
        result_row(
            SUITE,
            "steady_cycle_median_seconds",
            statistics.median(cycle["transform"]),
            "s",
            baseline=statistics.median(cycle["naive"]),
            baseline_name=f"same cycle with {naive}",
            notes=f"load + dbt + publish gold to S3; {runs}; all: {listed(cycle['transform'])}; "
            f"naive: {listed(cycle['naive'])}",
        ),
        result_row(
            SUITE,
            "steady_cycle_dbt_median_seconds",
            statistics.median(dbt["transform"]),
            "s",
            baseline=statistics.median(dbt["naive"]),
            baseline_name=naive,
            notes=f"the dbt part of the cycle: {' '.join(dbt_command(False))}, manifest parsed once; "
            f"{runs}; all: {listed(dbt['transform'])}; naive: {listed(dbt['naive'])}",
        ),
    ]
