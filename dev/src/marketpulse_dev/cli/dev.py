"""`marketpulse dev`: obtain, start, inspect and stop the real local components."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.image import Target
from marketpulse_dev.localenv.paths import state_dir
from marketpulse_dev.localenv.stack import COMPONENTS, DEFAULT_COMPONENTS, OBTAINABLE, DevStack, parse_only

dev_app = typer.Typer(
    help="Run Kafka, S3, a Kubernetes control plane and fakesnow on this machine.", no_args_is_help=True
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

OnlyOption = Annotated[
    str | None,
    typer.Option(
        "--only",
        help=f"Comma-separated subset of: {', '.join(COMPONENTS)} (cluster: a control plane with a real "
        "node, containerd and kubelet; needs root).",
        show_default=",".join(DEFAULT_COMPONENTS),
    ),
]
ObtainOnlyOption = Annotated[
    str | None,
    typer.Option("--only", help=f"Comma-separated subset of: {', '.join(OBTAINABLE)}.", show_default="all"),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where logs, data and dev.env live.", show_default=".marketpulse"),
]


def _names(
    only: str | None, choices: tuple[str, ...] = COMPONENTS, default: tuple[str, ...] = DEFAULT_COMPONENTS
) -> list[str]:
    try:
        return parse_only(only, choices, default)
    except ValueError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--only: "), param_hint="--only") from exc


def _fail(exc: ComponentError) -> typer.Exit:
    err.print(f"[bold red]error[/] while trying to {exc.step}: {exc.reason}")
    if exc.log_tail:
        err.print("[dim]" + exc.log_tail + "[/]", markup=False)
    return typer.Exit(code=1)


@dev_app.command()
def obtain(only: ObtainOnlyOption = None) -> None:
    """Download and build the components and test tools (cached per machine) without starting them."""
    try:
        DevStack(state_dir()).obtain(_names(only, OBTAINABLE, OBTAINABLE))
    except ComponentError as exc:
        raise _fail(exc) from None


@dev_app.command()
def up(only: OnlyOption = None, state: StateDirOption = None) -> None:
    """Start the components in the background (obtaining them first) and write dev.env."""
    stack = DevStack(state or state_dir())
    try:
        stack.up(_names(only))
    except ComponentError as exc:
        raise _fail(exc) from None
    out.print(f"[green]ready[/]; connection settings are in {stack.env_file} (source it):")
    out.print(stack.env_file.read_text(), markup=False, end="")


@dev_app.command()
def status(state: StateDirOption = None) -> None:
    """Show what runs, with which pids and where to connect."""
    table = Table("component", "state", "pids", "connect with")
    table.columns[3].overflow = "fold"
    for row in DevStack(state or state_dir()).status():
        table.add_row(*row)
    out.print(table)


@dev_app.command()
def down(
    state: StateDirOption = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the components' data.")] = False,
) -> None:
    """Stop everything `dev up` started; keep the data unless --purge."""
    stopped = DevStack(state or state_dir()).down(purge=purge)
    out.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@dev_app.command()
def image(
    target: Annotated[
        list[Target] | None,
        typer.Option(
            "--target",
            help="workloads: every command (the Dockerfile's default target); operator: the operator alone. "
            "Repeatable.",
            show_default="both",
        ),
    ] = None,
) -> None:
    """Build the MarketPulse images with buildah, without Docker (as root; cached by their inputs)."""
    from marketpulse_dev.localenv.image import ensure_image, image_size
    from marketpulse_dev.localenv.node import NODE_NAME, import_into_running_node

    try:
        for built in [ensure_image(t) for t in target or list(Target)]:
            out.print(f"{built.reference}  {image_size(built.reference)}  archive: {built.archive}")
            # With `dev up --only cluster` running, its pods can use the image at once (pullPolicy Never).
            if import_into_running_node(built.archive):
                out.print(f"  imported into node {NODE_NAME}")
    except ComponentError as exc:
        raise _fail(exc) from None
