"""`marketpulse operator run|cleanup`: the kopf operator that reconciles StockPipelines, and the
uninstall step that deletes the pipelines it serves while it still runs to finalize them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic_settings import BaseSettings
from rich.markup import escape

from marketpulse.cli.settings_help import group_with_settings, with_settings
from marketpulse.cli.workloads import err, load_settings

if TYPE_CHECKING:
    from marketpulse.operator.settings import OperatorSettings


def _readers() -> list[type[BaseSettings]]:
    from marketpulse.operator.settings import OperatorSettings

    return [OperatorSettings]


operator_app = typer.Typer(
    name="operator",
    help="Run the StockPipeline operator (`run`), or delete its pipelines before an uninstall (`cleanup`).",
    no_args_is_help=True,
    cls=group_with_settings(_readers),
)

Namespaces = Annotated[
    list[str] | None,
    typer.Option(
        "--namespace",
        "-n",
        metavar="NAMESPACE",
        help="Serve this namespace (repeatable); default: all namespaces.",
    ),
]


def _settings() -> OperatorSettings:
    from marketpulse.operator.settings import OperatorSettings

    settings = load_settings(OperatorSettings, "operator")
    if settings.kubeconfig is not None and not settings.kubeconfig.is_file():
        err.print(f"[bold red]error[/] operator: KUBECONFIG: {settings.kubeconfig} is not a file")
        raise typer.Exit(code=2)
    return settings


@operator_app.command(cls=with_settings(_readers))
def run(
    namespace: Namespaces = None,
    peering: Annotated[str, typer.Option(help="Peering object shared by replicas so that only one acts.")] = (
        "marketpulse-operator"
    ),
    standalone: Annotated[
        bool, typer.Option(help="No peering, for a single replica, development and tests.")
    ] = False,
    priority: Annotated[
        int | None,
        typer.Option(
            help="Peering priority; the highest live replica acts. Default: random, so replicas never tie."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at DEBUG, kopf's records too.")
    ] = False,
) -> None:
    """Run the StockPipeline operator: reconcile every StockPipeline in the served namespaces."""
    settings = _settings()
    from marketpulse.operator.main import run as run_operator

    run_operator(
        settings,
        namespaces=namespace or [],
        peering=peering,
        standalone=standalone,
        priority=priority,
        verbose=verbose,
    )


@operator_app.command("cleanup", cls=with_settings(_readers))
def cleanup_command(
    namespace: Namespaces = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=1, help="Seconds to wait for the operator to finalize every pipeline before failing."
        ),
    ] = 240.0,
) -> None:
    """Delete every StockPipeline in the served namespaces and wait until the running operator has
    finalized them (the chart's pre-delete hook)."""
    raise typer.Exit(code=cleanup(_settings(), namespace or [], timeout))


def cleanup(settings: OperatorSettings, namespaces: list[str], timeout: float) -> int:
    """0 when no pipeline is left; 1 when the operator did not finalize them in time or the API refused."""
    from kubernetes.config import ConfigException

    from marketpulse.operator.cleanup import delete_pipelines, timeout_message
    from marketpulse.operator.kube import KubeApi, load_configuration

    try:
        configuration = load_configuration(settings.kubeconfig)
    except ConfigException as exc:
        err.print(
            "[bold red]error[/] operator cleanup: no cluster to talk to: set KUBECONFIG or run in a pod "
            f"({escape(str(exc))})"
        )
        return 2
    where = ", ".join(namespaces) if namespaces else "every namespace"
    typer.echo(f"cleanup: deleting the StockPipelines in {where}; timeout {timeout:g}s")
    kube = KubeApi(configuration, workers=4)
    try:
        report = asyncio.run(delete_pipelines(kube, namespaces, timeout=timeout, say=typer.echo))
    finally:
        kube.close()
    if report.remaining:
        err.print(f"[bold red]error[/] operator cleanup: {escape(timeout_message(report, timeout))}")
    if report.error:
        err.print(f"[bold red]error[/] operator cleanup: {escape(report.error)}")
    if not report.ok:
        return 1
    typer.echo(f"cleanup: done; {len(report.finalized)} StockPipeline(s) finalized by the operator")
    return 0
