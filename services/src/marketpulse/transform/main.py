"""`marketpulse transform`: load new bronze objects, `dbt build` silver and gold, publish gold.

`once` (the CronJob) runs one cycle and exits non-zero if any stage failed; `continuous` loops
every interval, counting and logging failed cycles without exiting, until SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass

import duckdb
from prometheus_client import Counter, Gauge, Histogram

from marketpulse.runtime.faults import failpoint
from marketpulse.runtime.http import serve_metrics_and_health
from marketpulse.runtime.shutdown import Shutdown
from marketpulse.storage import ObjectStore
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse.transform.publish import publish_gold
from marketpulse.transform.settings import TransformSettings
from marketpulse.warehouse.dbt_project import run_dbt

log = logging.getLogger(__name__)

RUNS = Counter("marketpulse_transform_runs_total", "Transform cycles by result.", ["result"])
STAGE_SECONDS = Histogram(
    "marketpulse_transform_stage_duration_seconds",
    "Duration of each transform stage.",
    ["stage"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
ROWS_LOADED = Counter("marketpulse_transform_rows_loaded_total", "Bronze rows loaded into the warehouse.")
LAST_SUCCESS = Gauge("marketpulse_transform_last_success_timestamp_seconds", "When the last cycle succeeded.")


@dataclass(frozen=True)
class CycleResult:
    objects: int
    rows: int
    gold_rows: dict[str, int]
    seconds: dict[str, float]


def run_cycle(settings: TransformSettings, store: ObjectStore) -> CycleResult:
    database = settings.duckdb_path.resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    # The transform is the warehouse file's only writer; each stage opens it and closes it again.
    with duckdb.connect(str(database)) as con:
        load = DuckDBBronzeLoader(con, store, schema=settings.bronze_schema).load_new()
    seconds["load"] = time.perf_counter() - started
    ROWS_LOADED.inc(load.rows)

    failpoint("transform.before-dbt")
    started = time.perf_counter()
    dbt_vars = {
        "watchlist": settings.watchlist,
        "bronze_schema": settings.bronze_schema,
        "gold_schema": settings.gold_schema,
    }
    run_dbt(
        ["build", "--vars", json.dumps(dbt_vars)],
        target="duckdb",
        env={"MARKETPULSE_DUCKDB_PATH": str(database)},
    )
    seconds["dbt"] = time.perf_counter() - started

    gold_rows: dict[str, int] = {}
    if settings.publish_gold:
        started = time.perf_counter()
        with duckdb.connect(str(database)) as con:
            gold_rows = publish_gold(con, store, settings.gold_schema)
        seconds["publish"] = time.perf_counter() - started
    for stage, value in seconds.items():
        STAGE_SECONDS.labels(stage).observe(value)
    return CycleResult(load.objects, load.rows, gold_rows, seconds)


def run_transform(settings: TransformSettings, store: ObjectStore, shutdown: Shutdown) -> int:
    # dbt's own console output is one line per node per cycle; our structured lines report each cycle,
    # and dbt's errors still reach the log through the failure message. Plain text, no colour codes.
    os.environ.setdefault("DBT_QUIET", "true")
    os.environ.setdefault("DBT_USE_COLORS", "false")
    last_ok = [True]
    if settings.metrics_port:
        serve_metrics_and_health(settings.metrics_port, healthy=lambda: last_ok[0])
    while True:
        try:
            result = run_cycle(settings, store)
        except Exception as exc:  # a failed cycle is reported; continuous mode tries again next interval
            RUNS.labels("failure").inc()
            last_ok[0] = False
            log.error("transform cycle failed", extra={"error": str(exc)})
            if settings.transform_mode == "once":
                return 1
        else:
            RUNS.labels("success").inc()
            LAST_SUCCESS.set_to_current_time()
            last_ok[0] = True
            log.info(
                "transform cycle done",
                extra={
                    "objects": result.objects,
                    "rows": result.rows,
                    "gold_rows": result.gold_rows,
                    "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
                },
            )
            if settings.transform_mode == "once":
                return 0
        if shutdown.wait(settings.transform_interval_seconds):
            return 0
