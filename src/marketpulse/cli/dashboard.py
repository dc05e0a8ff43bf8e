"""`marketpulse dashboard`: serve the Streamlit app (MARKETPULSE_*, S3_* and SNOWFLAKE_* variables)."""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path

import typer

from marketpulse.cli.workloads import err, load_settings


def entrypoint() -> Path:
    spec = find_spec("marketpulse.dashboard.app")
    if spec is None or spec.origin is None:
        err.print("[bold red]error[/] dashboard: the marketpulse.dashboard package is not installed")
        raise typer.Exit(code=2)
    return Path(spec.origin)


def streamlit_argv(script: Path, address: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        # Installed code does not change under a running pod: no file watcher, no rerun-on-save.
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]


def dashboard() -> None:
    """Serve the analytics dashboard on MARKETPULSE_DASHBOARD_ADDRESS:MARKETPULSE_DASHBOARD_PORT."""
    from marketpulse.contract.settings.dashboard import DashboardSettings

    # Validated here so a bad variable fails the pod at start with its name, not in a browser later.
    settings = load_settings(DashboardSettings, "dashboard")
    argv = streamlit_argv(entrypoint(), settings.dashboard_address, settings.dashboard_port)
    sys.stdout.flush()
    # Replace this process, so the kubelet's SIGTERM reaches Streamlit directly and no idle parent
    # process stays around.
    os.execv(sys.executable, argv)  # noqa: S606
