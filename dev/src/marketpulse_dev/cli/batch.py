"""One batch through a local pipeline, with progress bars: a finite ingest, the archive draining the
ticks topic, then one transform. `marketpulse run --once` is one; a demo's history backfill another."""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from marketpulse.runtime.shutdown import Shutdown
from marketpulse_dev.local.executor import LocalRun, LocalRunError, by_component
from marketpulse_dev.local.supervisor import Supervised

DRAIN_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.5


class BatchInterruptedError(Exception):
    """Ctrl-C or SIGTERM during a batch: the caller stops the run."""


def progress_bars(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )


def run_batch(
    run: LocalRun,
    progress: Progress,
    shutdown: Shutdown,
    *,
    ingest_env: Mapping[str, str] | None = None,
    total_ticks: int | None = None,
) -> None:
    """Ingest until the source ends, wait for the archive to commit every tick, transform once.

    Raises LocalRunError naming the stage that failed, BatchInterruptedError on a shutdown request."""
    workloads = by_component(run.workloads())
    archive = run.supervised(workloads["archive"], restart=True)
    archive.start()
    env = run.environment(workloads["ingest"]) | dict(ingest_env or {})
    ingest = run.supervised(workloads["ingest"], restart=False, env=env)
    ingest.start()
    sent = progress.add_task("ingest", total=total_ticks, note="ticks acked by Kafka")
    archived = progress.add_task("archive", total=total_ticks, note="ticks committed to S3 bronze")
    acked = 0.0
    while ingest.running:
        acked = max(acked, run.ticks_acked() or 0.0)
        progress.update(sent, completed=acked)
        _show_archived(run, progress, archived, acked)
        _poll(shutdown, archive)
    if (code := ingest.wait()) != 0:
        raise LocalRunError(f"ingest failed with exit code {code}; see {ingest.log_path}")
    # Exit code 0 means every tick was acknowledged; the last scrape may predate the last ones.
    acked = float(total_ticks) if total_ticks is not None else acked
    progress.update(sent, completed=acked, total=acked)
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while _show_archived(run, progress, archived, acked) != 0:
        if time.monotonic() > deadline:
            raise LocalRunError(
                f"the archive did not drain the ticks topic within {DRAIN_TIMEOUT_SECONDS:.0f}s; "
                f"see {archive.log_path}"
            )
        _poll(shutdown, archive)
    progress.update(archived, completed=acked, total=acked)
    archive.stop()
    transform_env = run.environment(workloads["transform"]) | {"MARKETPULSE_TRANSFORM_MODE": "cron"}
    transform = run.supervised(workloads["transform"], restart=False, env=transform_env)
    building = progress.add_task("transform", total=1, note="dbt build: bronze → silver → gold")
    transform.start()
    while transform.running:
        _poll(shutdown, transform)
    if (code := transform.wait()) != 0:
        raise LocalRunError(f"transform failed with exit code {code}; see {transform.log_path}")
    progress.update(building, completed=1)


def _show_archived(run: LocalRun, progress: Progress, task: TaskID, acked: float) -> int | None:
    """Archived = acknowledged less what the archive has not committed yet; returns the lag."""
    lag = run.consumer_lag()
    if lag is not None:
        progress.update(task, completed=max(0.0, acked - lag))
    return lag


def _poll(shutdown: Shutdown, process: Supervised) -> None:
    process.check()  # a crashed archive restarts and resumes from its committed offsets
    if shutdown.wait(POLL_SECONDS):
        raise BatchInterruptedError
