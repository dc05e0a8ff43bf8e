"""The `marketpulse` command line: the operator, every workload, and the commands of installed plugins.

The product's commands live here. Development tooling (`dev`, `run`, `bench`) ships in the separate
`marketpulse-dev` distribution, which the images do not install; it adds its commands through the
`marketpulse.cli` entry-point group, each entry a function that receives the app.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import typer

from marketpulse.cli.dashboard import dashboard
from marketpulse.cli.operator import operator
from marketpulse.cli.workloads import alerts, archive, ingest, transform

PLUGIN_GROUP = "marketpulse.cli"

app = typer.Typer(
    name="marketpulse",
    help="Real-time stock-market analytics on Kubernetes: operator, workloads and local tooling.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(operator)
app.command()(ingest)
app.command()(archive)
app.command()(transform)
app.command()(alerts)
app.command()(dashboard)


@app.command()
def version() -> None:
    """Print the MarketPulse version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("marketpulse"))


for _plugin in entry_points(group=PLUGIN_GROUP):
    _plugin.load()(app)
