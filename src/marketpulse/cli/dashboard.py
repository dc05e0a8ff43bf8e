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


# Streamlit's options for a dashboard that visitors see. "none", not the legacy `false`: since
# Streamlit 1.5x `false` means "stacktrace", which still shows the traceback in the browser; "none"
# shows a generic message and leaves the details to the log.
STREAMLIT_OPTIONS = {
    "server.headless": "true",
    # Installed code does not change under a running pod: no file watcher, no rerun-on-save.
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "browser.gatherUsageStats": "false",
    "global.developmentMode": "false",
    "client.toolbarMode": "viewer",
    # A visitor never sees a traceback, an exception's message or its type: they may name files,
    # hosts or queries. The pages show their own messages for the problems they expect.
    "client.showErrorDetails": "none",
}


def streamlit_argv(script: Path, address: str, port: int) -> list[str]:
    options = {"server.address": address, "server.port": str(port), **STREAMLIT_OPTIONS}
    flags = [part for key, value in options.items() for part in (f"--{key}", value)]
    return [sys.executable, "-m", "streamlit", "run", str(script), *flags]


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
