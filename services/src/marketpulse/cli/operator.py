"""`marketpulse operator`: the kopf operator that reconciles StockPipelines."""

from __future__ import annotations

from typing import Annotated

import typer

from marketpulse.cli.workloads import err, load_settings


def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Serve this namespace (repeatable); default: all namespaces."),
    ] = None,
    peering: Annotated[
        str, typer.Option(help="Peering object shared by replicas so that only one acts.")
    ] = "marketpulse-operator",
    standalone: Annotated[
        bool, typer.Option(help="No peering: for a single replica, development and tests.")
    ] = False,
    priority: Annotated[
        int | None,
        typer.Option(
            help="Peering priority; the highest live replica acts. Default: random, so replicas never tie."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the StockPipeline operator (settings: MARKETPULSE_IMAGE, S3_*, KUBECONFIG, MARKETPULSE_*)."""
    from marketpulse.operator.main import run
    from marketpulse.operator.settings import OperatorSettings

    settings = load_settings(OperatorSettings, "operator")
    if settings.kubeconfig is not None and not settings.kubeconfig.is_file():
        err.print(f"[bold red]error[/] operator: KUBECONFIG: {settings.kubeconfig} is not a file")
        raise typer.Exit(code=2)
    run(
        settings,
        namespaces=namespace or [],
        peering=peering,
        standalone=standalone,
        priority=priority,
        verbose=verbose,
    )
