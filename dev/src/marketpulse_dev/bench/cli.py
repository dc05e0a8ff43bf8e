"""`marketpulse bench`: run the benchmark suites and write JSON and Markdown results."""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console

from marketpulse_dev.bench.report import ResultRow, check_row, write_results

SUITES = ("pipeline", "loader", "dbt", "operator")
err = Console(stderr=True, highlight=False, soft_wrap=True)

REMARKS = (
    "Measured on a shared machine that other work was using at the same time: the figures are noisy, "
    "so compare ratios measured in the same run rather than absolute figures across runs. "
    "CPU is utime+stime of every process (broker JVM and versitygw included); latencies use the "
    "producer's ingest_time as the tick's start."
)


class OperatorSuiteUnavailableError(RuntimeError):
    """The operator benchmark module is not part of this installation."""


def parse_suites(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SUITES]
    if unknown or not chosen:
        raise typer.BadParameter(
            f"{', '.join(unknown) or 'nothing'} is not a suite; expected a comma-separated list of "
            f"{', '.join(SUITES)}",
            param_hint="--suite",
        )
    return [name for name in SUITES if name in chosen]


OPERATOR_MODULE = "marketpulse_dev.bench.operator_bench"


class OperatorRunner(Protocol):
    def __call__(self, *, short: bool, workdir: Path) -> list[dict[str, object]]: ...


def operator_runner() -> OperatorRunner:
    """The operator suite's entry point, imported only when that suite is asked for."""
    try:
        module = importlib.import_module(OPERATOR_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != OPERATOR_MODULE:
            raise
        raise OperatorSuiteUnavailableError(
            f"operator suite not available: {OPERATOR_MODULE} does not exist"
        ) from None
    runner: OperatorRunner = module.run_operator_bench
    return runner


SUITE_MODULES = {
    "pipeline": "marketpulse_dev.bench.pipeline",
    "loader": "marketpulse_dev.bench.loader",
    "dbt": "marketpulse_dev.bench.dbt_runs",
    "operator": OPERATOR_MODULE,
}


def method_text(suite: str) -> str:
    """How a suite measures: its module's docstring, written for the reader of the results."""
    return importlib.import_module(SUITE_MODULES[suite]).__doc__ or ""


def run_suite(
    name: str, workdir: Path, *, short: bool, rate: int | None, duration: float | None
) -> list[ResultRow]:
    if name == "pipeline":
        from dataclasses import replace

        from marketpulse_dev.bench import pipeline

        sizes = pipeline.SHORT_SIZES if short else pipeline.FULL_SIZES
        sizes = replace(sizes, rate=rate or sizes.rate, duration=duration or sizes.duration)
        return pipeline.run_pipeline_suite(workdir, rate=sizes.rate, sizes=sizes)
    if name == "loader":
        from marketpulse_dev.bench import loader

        return loader.run_loader_suite(workdir, sizes=loader.SHORT_SIZES if short else loader.FULL_SIZES)
    if name == "dbt":
        from marketpulse_dev.bench import dbt_runs

        return dbt_runs.run_dbt_suite(workdir, sizes=dbt_runs.SHORT_SIZES if short else dbt_runs.FULL_SIZES)
    rows = operator_runner()(short=short, workdir=workdir)
    return [check_row(row) for row in rows]


def bench(
    suite: Annotated[
        str, typer.Option("--suite", help="Comma-separated suites: pipeline, loader, dbt, operator.")
    ] = ",".join(SUITES),
    short: Annotated[
        bool, typer.Option("--short", help="CI mode: small sizes, the whole run in about two minutes.")
    ] = False,
    rate: Annotated[
        int | None,
        typer.Option(
            "--rate", min=1, help="Target ticks/s of the paced pipeline run (an unpaced run follows)."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", min=1, help="Seconds each pipeline run produces ticks.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the JSON and Markdown results.")] = Path(
        "bench/results"
    ),
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Scratch folder for servers and logs (default: a temporary one)."),
    ] = None,
) -> None:
    """Measure throughput, CPU, latency and load speed against docs/architecture.md's targets."""
    from marketpulse_dev.bench.machine import describe_machine

    suites = parse_suites(suite)
    if "operator" in suites:
        try:
            operator_runner()
        except OperatorSuiteUnavailableError as exc:
            err.print(f"[bold red]error[/] bench: {exc}; run the other suites with --suite")
            raise typer.Exit(code=2) from None
    started = dt.datetime.now(dt.UTC)
    machine = describe_machine()
    scratch = workdir or Path(tempfile.mkdtemp(prefix="marketpulse-bench-"))
    rows: list[ResultRow] = []
    for name in suites:
        err.print(f"bench: running the {name} suite{' (short)' if short else ''}")
        folder = scratch / name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            rows += run_suite(name, folder, short=short, rate=rate, duration=duration)
        except Exception as exc:
            err.print(f"[bold red]error[/] bench: the {name} suite failed: {exc}\n(logs kept in {folder})")
            raise typer.Exit(code=1) from None
    mode = "short (CI sizes)" if short else "full"
    json_path, md_path = write_results(
        rows,
        machine,
        out=out,
        suites=suites,
        remarks=f"Mode: {mode}. {REMARKS}",
        started=started,
        methods={name: method_text(name) for name in suites},
    )
    if workdir is None:
        shutil.rmtree(scratch, ignore_errors=True)
    err.print(f"bench: wrote {json_path} and {md_path} ({len(rows)} rows); {out / 'latest.md'} updated")
