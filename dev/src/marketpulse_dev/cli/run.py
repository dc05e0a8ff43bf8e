"""`marketpulse run -f pipeline.yaml`: a whole pipeline on this machine, on the local Kafka and S3."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.api.validation import validate_stockpipeline
from marketpulse.contract.workloads import SecretRef
from marketpulse.runtime.logs import readable
from marketpulse.runtime.shutdown import Shutdown
from marketpulse_dev.cli.batch import BatchInterruptedError, progress_bars, run_batch
from marketpulse_dev.local import backfill
from marketpulse_dev.local.executor import (
    LocalRun,
    LocalRunError,
    ensure_port_free,
    reset_data_dir,
    schedule_seconds,
)
from marketpulse_dev.local.pipeline_file import PipelineFileError, load_pipeline
from marketpulse_dev.local.secrets import MissingSecretError, secret_env_name
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.paths import state_dir

out = Console(highlight=False, soft_wrap=True)
COLORS = {
    "ingest": "cyan",
    "archive": "magenta",
    "transform": "yellow",
    "alerts": "red",
    "dashboard": "green",
}


def _printer(name: str, line: str) -> None:
    # The workloads log JSON into their files (as in pods); the terminal gets the readable lines,
    # unless MARKETPULSE_LOG_FORMAT=json asks for JSON there too.
    shown = line if os.environ.get("MARKETPULSE_LOG_FORMAT") == "json" else readable(line)
    out.print(Text.assemble((f"{name:>9}", COLORS.get(name, "white")), " | ", Text.from_ansi(shown)))


def _fail(message: str, code: int = 1) -> typer.Exit:
    out.print(f"[bold red]error[/] {escape(message)}")
    return typer.Exit(code=code)


def run(
    file: Annotated[Path, typer.Option("--file", "-f", help="The StockPipeline YAML file to run.")],
    once: Annotated[
        bool, typer.Option("--once", help="Run until the source ends, transform once, exit.")
    ] = False,
    ticks: Annotated[
        int | None, typer.Option(help="With --once and a synthetic source: how many ticks.")
    ] = None,
    days: Annotated[
        int, typer.Option(min=1, help="With --ticks: trading days the ticks are spread over.")
    ] = 5,
    data_dir: Annotated[Path | None, typer.Option(help="Default: .marketpulse/data/<pipeline name>.")] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start from empty Kafka, S3 and warehouse (deletes the data directory, only one it made).",
        ),
    ] = False,
    dashboard_port: Annotated[int, typer.Option(help="Where the dashboard listens (127.0.0.1).")] = 8501,
    status_every: Annotated[float, typer.Option(help="Seconds between status lines.")] = 5.0,
    source: Annotated[
        str | None,
        typer.Option(help="Replace the file's source: 'finnhub' reads live trades with FINNHUB_API_KEY."),
    ] = None,
    backfill_days: Annotated[
        int,
        typer.Option(
            min=0,
            max=backfill.MAX_DAYS,
            help="Synthetic source: first seed this many trading days of history through the pipeline "
            "(once per data directory), then stream live.",
        ),
    ] = 0,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="The transform's next run rebuilds silver and gold from bronze (dbt build --full-refresh), "
            "once: what the annotation marketpulse.io/full-refresh=true does on a cluster.",
        ),
    ] = False,
) -> None:
    """Run a StockPipeline's workloads as supervised processes, with the environment the operator sets."""
    try:
        pipeline = load_pipeline(file)
    except PipelineFileError as exc:
        raise _fail(str(exc), code=2) from None
    if source is not None:
        pipeline = with_source(pipeline, source)
    spec = pipeline.spec
    if once and spec.source.type == "synthetic" and ticks is None:
        raise _fail(
            "--once needs a finite source: a replay file, or --ticks N for the synthetic source", code=2
        )
    if once and spec.source.type == "replay" and spec.source.replay and spec.source.replay.loop:
        raise _fail("--once needs a finite source, but spec.source.replay.loop is true", code=2)
    if backfill_days and once:
        raise _fail("--backfill-days comes before live ticks; --once takes --ticks and --days", code=2)
    if backfill_days and spec.source.type != "synthetic":
        raise _fail(f"--backfill-days needs the synthetic source, not {spec.source.type}", code=2)
    directory = data_dir or state_dir() / "data" / pipeline.metadata.name
    run = LocalRun(pipeline, directory, _printer, dashboard_port=dashboard_port)
    if full_refresh:
        run.full_refresh = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        run.check_secrets()  # before any server starts: a missing credential is named at once
    except MissingSecretError as exc:
        raise _fail(str(exc), code=2) from None
    try:
        if not once and spec.dashboard.enabled:
            ensure_port_free(dashboard_port, "--dashboard-port")
        if fresh:
            reset_data_dir(directory)
        out.print(f"[bold]{pipeline.metadata.name}[/]: {', '.join(spec.watchlist)} · data in {directory}")
        shutdown = Shutdown().install()
        run.start_infrastructure()
        if once:
            code = _run_once(run, ticks, days, shutdown)
        else:
            if backfill_days:
                _seed_history(run, backfill_days, shutdown)
            code = _run_forever(run, status_every, shutdown)
    except BatchInterruptedError:
        out.print("stopping …")
        code = 130
    except (LocalRunError, MissingSecretError, ComponentError) as exc:
        raise _fail(str(exc)) from None
    finally:
        run.stop()
    raise typer.Exit(code=code)


FINNHUB_SECRET = SecretRef("finnhub", "api-key")  # names a Secret key; holds no secret


def with_source(pipeline: StockPipeline, source: str) -> StockPipeline:
    """`--source finnhub`: the same pipeline fed by Finnhub, its key from FINNHUB_API_KEY (checked early)."""
    if source != "finnhub":
        raise _fail(f"--source: {source!r} is not supported; expected finnhub", code=2)
    key = os.environ.get("FINNHUB_API_KEY") or os.environ.get(secret_env_name(FINNHUB_SECRET))
    if not key:
        raise _fail(
            "--source finnhub needs a Finnhub API key: set FINNHUB_API_KEY in the environment", code=2
        )
    os.environ[secret_env_name(FINNHUB_SECRET)] = key  # where the local executor resolves the Secret from
    document = pipeline.model_dump(mode="json", by_alias=True, exclude_none=True)
    document["spec"]["source"] = {
        "type": "finnhub",
        "finnhub": {"apiKey": {"secretKeyRef": {"name": FINNHUB_SECRET.name, "key": FINNHUB_SECRET.key}}},
    }
    document.pop("status", None)
    return validate_stockpipeline(document, source="--source finnhub")


def _seed_history(run: LocalRun, days: int, shutdown: Shutdown) -> None:
    """History before the live ticks, once per data directory (see marketpulse_dev.local.backfill)."""
    spec = run.pipeline.spec
    seed = spec.source.synthetic_settings.seed
    today = dt.datetime.now(backfill.NEW_YORK).date()
    wanted = backfill.plan_backfill(days, spec.watchlist, today=today, seed=seed)
    decision = backfill.decide(wanted, backfill.recorded(run.data_dir), has_data=bool(run.gold_rows()))
    out.print(f"[bold]history[/] {decision.reason}")
    plan = decision.plan
    if plan is None:
        return
    backfill.record(run.data_dir, plan, backfill.State.STARTED)
    started = time.monotonic()
    with progress_bars(out) as progress:
        run_batch(run, progress, shutdown, ingest_env=plan.ingest_env(), total_ticks=plan.ticks)
    backfill.record(run.data_dir, plan, backfill.State.DONE)
    out.print(f"[bold green]history[/] seeded in {time.monotonic() - started:.0f}s; going live")


def _run_forever(run: LocalRun, status_every: float, shutdown: Shutdown) -> int:
    scheduled = []
    for workload in run.workloads():
        process = run.supervised(workload, restart=workload.mode != "cron")
        if workload.mode == "cron":
            scheduled.append(process)
        process.start()
    period = schedule_seconds(run.pipeline.spec.transform.schedule)
    last_scheduled = time.monotonic()
    announced = False
    previous: tuple[float, float] | None = None
    while not shutdown.wait(status_every):
        for process in run.processes.values():
            report = process.check()
            if report:
                out.print(f"[bold yellow]supervisor[/] {report}")
        if scheduled and time.monotonic() - last_scheduled >= period:
            last_scheduled = time.monotonic()
            for process in scheduled:
                if not process.running:
                    process.start()
        acked = run.ticks_acked()
        rate = ""
        if acked is not None:
            now = time.monotonic()
            if previous is not None and now > previous[0]:
                rate = f"{(acked - previous[1]) / (now - previous[0]):.0f} ticks/s · "
            previous = (now, acked)
        if run.on_snowflake:
            rows = run.snowflake_gold_rows()
            gold = f"gold in Snowflake: {rows.get('ohlc_1m', 0)} 1-minute bars" if rows else "no gold yet"
        else:
            manifest = run.gold_manifest()
            gold = f"gold published {manifest['published_at']}" if manifest else "no gold yet"
            published = manifest.get("rows") if manifest else None
            rows = published if isinstance(published, dict) else None
        lag = run.consumer_lag()
        out.print(f"[bold]status[/] {rate}lag {lag if lag is not None else '?'} · {gold}")
        has_bars = bool(rows and rows.get("ohlc_1m"))
        if has_bars and not announced and run.pipeline.spec.dashboard.enabled:
            out.print(f"[bold green]dashboard[/] http://127.0.0.1:{run.dashboard_port}")
            announced = True
    out.print("stopping …")
    return 0


def _run_once(run: LocalRun, ticks: int | None, days: int, shutdown: Shutdown) -> int:
    env: dict[str, str] = {}
    if ticks is not None:
        # A backfill: a simulated trading-hours clock over `days` sessions of 6.5 h, as fast as possible.
        per_symbol = ticks / (days * 6.5 * 3600 * len(run.pipeline.spec.watchlist))
        env = {
            "MARKETPULSE_TICK_LIMIT": str(ticks),
            "MARKETPULSE_SYNTHETIC_CLOCK": "simulated",
            "MARKETPULSE_SYNTHETIC_RATE": "0",
            "MARKETPULSE_SYNTHETIC_TICKS_PER_SECOND": f"{per_symbol:.6g}",
        }
    with progress_bars(out) as progress:
        run_batch(run, progress, shutdown, ingest_env=env, total_ticks=ticks)
    out.print(
        f"[bold green]done[/] gold rows: {run.gold_rows() or {}} · warehouse {run.warehouse_description()}"
    )
    return 0
