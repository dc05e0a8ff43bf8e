"""The `marketpulse` command line: one entry point for every workload and tool."""

from __future__ import annotations

import typer

from marketpulse.bench.cli import bench
from marketpulse.cli.dashboard import dashboard
from marketpulse.cli.dev import dev_app
from marketpulse.cli.operator import operator
from marketpulse.cli.run import run
from marketpulse.cli.workloads import alerts, archive, ingest, transform

app = typer.Typer(
    name="marketpulse",
    help="Real-time stock-market analytics on Kubernetes: operator, workloads and local tooling.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev_app, name="dev")
app.command()(run)
app.command()(operator)
app.command()(ingest)
app.command()(archive)
app.command()(transform)
app.command()(alerts)
app.command()(dashboard)
app.command()(bench)


@app.command()
def version() -> None:
    """Print the MarketPulse version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("marketpulse"))
