"""The `marketpulse` command line: user commands, the pod entrypoints, and the commands of installed plugins.

User commands (`validate`, `render`, `version`) sit in the default panel; the entrypoints the
operator's pods run (the operator itself and every workload) in a panel of their own, each listing
the environment variables it reads. Development tooling (`dev`, `run`, `bench`) ships in the separate
`marketpulse-dev` distribution, which the images do not install; it adds its commands through the
`marketpulse.cli` entry-point group, each entry a function that receives the app.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated

import typer

from marketpulse.cli.dashboard import dashboard
from marketpulse.cli.manifests import render, validate
from marketpulse.cli.operator import operator_app
from marketpulse.cli.settings_help import with_settings, workload_readers
from marketpulse.cli.workloads import alerts, archive, ingest, transform

PLUGIN_GROUP = "marketpulse.cli"
WORKLOADS_PANEL = "Workloads (run in pods, configured by environment variables)"

app = typer.Typer(
    name="marketpulse",
    help="Real-time stock-market analytics on Kubernetes: the operator, its workloads and their tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def version_line() -> str:
    from importlib.metadata import version as dist_version

    return f"marketpulse {dist_version('marketpulse')}"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """The global options (the app's help says what marketpulse is)."""


app.command()(validate)
app.command()(render)


@app.command()
def version() -> None:
    """Print the version (the same as `marketpulse --version`)."""
    typer.echo(version_line())


app.add_typer(operator_app, rich_help_panel=WORKLOADS_PANEL)
for _entrypoint in (ingest, archive, transform, alerts, dashboard):
    app.command(rich_help_panel=WORKLOADS_PANEL, cls=with_settings(workload_readers(_entrypoint.__name__)))(
        _entrypoint
    )


for _plugin in entry_points(group=PLUGIN_GROUP):
    _plugin.load()(app)
