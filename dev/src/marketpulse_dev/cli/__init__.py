"""The development commands `marketpulse-dev` adds to the `marketpulse` command line."""

from __future__ import annotations

import typer

from marketpulse_dev.bench.cli import bench
from marketpulse_dev.cli.dev import dev_app
from marketpulse_dev.cli.run import run


def register(app: typer.Typer) -> None:
    """Entry point of the `marketpulse.cli` group: `dev`, `run` and `bench`."""
    app.add_typer(dev_app, name="dev")
    app.command()(run)
    app.command()(bench)
