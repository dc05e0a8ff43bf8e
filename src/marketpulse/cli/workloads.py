"""`marketpulse ingest|archive|transform|alerts`: the workloads, configured only by environment variables
(each `--help` lists them, from the settings classes in `marketpulse.contract.settings`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from rich.console import Console

from marketpulse.contract.settings.environment import UnknownVariableError, check_environment, variable_at
from marketpulse.runtime.logs import configure_logging
from marketpulse.runtime.shutdown import Shutdown
from marketpulse.storage import S3ObjectStore

err = Console(stderr=True, highlight=False, soft_wrap=True)
SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(kind: type[SettingsT], workload: str) -> SettingsT:
    """Settings from the environment; a bad or unknown variable is a user error that names it."""
    try:
        check_environment(os.environ, extra=(kind,))
    except UnknownVariableError as exc:
        err.print(f"[bold red]error[/] {workload}: {exc}")
        raise typer.Exit(code=2) from None
    try:
        return kind()
    except ValidationError as exc:
        for problem in exc.errors():
            name = variable_at(kind, str(problem["loc"][0])) if problem["loc"] else "?"
            err.print(
                f"[bold red]error[/] {workload}: {name}: {problem['msg']} (got {problem.get('input')!r})"
            )
        raise typer.Exit(code=2) from None


def exit_with(runner: Callable[[], int], workload: str) -> NoReturn:
    """Run a workload; a ValueError is a configuration mistake found at start-up: say it, exit 2."""
    try:
        code = runner()
    except ValueError as exc:
        err.print(f"[bold red]error[/] {workload}: {exc}")
        raise typer.Exit(code=2) from None
    raise typer.Exit(code=code)


def ingest() -> None:
    """Read the configured source and produce ticks to Kafka."""
    from marketpulse.contract.settings.ingest import IngestSettings
    from marketpulse.ingest.main import run_ingest

    settings = load_settings(IngestSettings, "ingest")
    configure_logging("ingest", settings.log_level, settings.log_format)
    exit_with(lambda: run_ingest(settings, Shutdown().install()), "ingest")


def archive() -> None:
    """Consume ticks and write bronze NDJSON objects to S3."""
    from marketpulse.archive.main import run_archive
    from marketpulse.contract.settings.archive import ArchiveSettings

    settings = load_settings(ArchiveSettings, "archive")
    store = _object_store("archive")
    configure_logging("archive", settings.log_level, settings.log_format)
    raise typer.Exit(code=run_archive(settings, store, Shutdown().install()))


def _object_store(workload: str) -> S3ObjectStore:
    from marketpulse.contract.settings.common import S3Settings
    from marketpulse.storage.s3 import minio_client

    s3 = load_settings(S3Settings, workload)
    if not s3.bucket:
        err.print(
            f"[bold red]error[/] {workload}: MARKETPULSE_BUCKET: not set; expected the pipeline's bucket"
        )
        raise typer.Exit(code=2)
    return S3ObjectStore(
        minio_client(s3.s3_endpoint, s3.s3_access_key, s3.s3_secret_key.get_secret_value(), s3.s3_region),
        s3.bucket,
    )


def transform() -> None:
    """Load new bronze objects, run dbt (silver, gold) and publish gold."""
    from marketpulse.contract.settings.transform import TransformSettings
    from marketpulse.transform.main import run_transform

    settings = load_settings(TransformSettings, "transform")
    store = _object_store("transform")
    configure_logging("transform", settings.log_level, settings.log_format)
    raise typer.Exit(code=run_transform(settings, store, Shutdown().install()))


def alerts() -> None:
    """Evaluate the pipeline's alert rules over the ticks topic."""
    from marketpulse.alerts.main import run_alerts
    from marketpulse.contract.settings.alerts import AlertsSettings

    settings = load_settings(AlertsSettings, "alerts")
    configure_logging("alerts", settings.log_level, settings.log_format)
    exit_with(lambda: run_alerts(settings, Shutdown().install()), "alerts")
