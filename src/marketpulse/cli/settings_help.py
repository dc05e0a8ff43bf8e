"""The environment variables a pod entrypoint reads, listed in its `--help`, from its settings classes.

A workload is configured only by its environment (the operator renders it), so its `--help` shows a
"Settings (environment variables)" panel beside the options: every variable its settings classes
read, the default and the field's description. Derived from the classes, so it cannot drift from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer import rich_utils
from typer.core import TyperCommand, TyperGroup

from marketpulse.contract.settings.environment import field_variables

SETTINGS_PANEL = "Settings (environment variables)"
Readers = Callable[[], Sequence[type[BaseSettings]]]


def _shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "(secret)" if value.get_secret_value() else '""'
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value) or '""'
    if isinstance(value, Path):
        return str(value)
    return str(value) if value != "" else '""'


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.get_default(call_default_factory=True, validated_data={})
        # Made at start-up (an id, the image of this version): an example, not a constant.
        return _shown(value) if not value or isinstance(value, list | dict) else f"{_shown(value)} (computed)"
    return _shown(field.default)


def settings_rows(readers: Iterable[type[BaseSettings]]) -> list[tuple[str, str, str]]:
    """(variable, default, description) for every variable the classes read, in field order, each
    variable once (classes share blocks: S3Settings is read by several workloads)."""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for reader in readers:
        for name, field in reader.model_fields.items():
            variables = field_variables(reader, name)
            if variables[0] in seen:
                continue
            seen.update(variables)
            description = " ".join((field.description or "").split())
            others = [v for v in variables[1:] if v != variables[0]]
            if others:
                description = f"{description} (also {', '.join(others)})".strip()
            rows.append((variables[0], _default(field), description))
    return rows


def print_settings_panel(readers: Sequence[type[BaseSettings]]) -> None:
    """The panel, styled like typer's own option panels and printed to the same console settings."""
    table = Table(show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(ratio=1)
    for variable, default, description in settings_rows(readers):
        # As typer lays out an option: the help, then the default dimmed on a line of its own.
        text = Text(f"{description}\n" if description else "")
        text.append(f"[default: {default}]", style="dim")
        table.add_row(variable, text)
    console = Console(
        color_system=rich_utils.COLOR_SYSTEM,
        force_terminal=rich_utils.FORCE_TERMINAL,
        width=rich_utils.MAX_WIDTH,
    )
    console.print(
        Panel(
            table,
            border_style=rich_utils.STYLE_OPTIONS_PANEL_BORDER,
            title=SETTINGS_PANEL,
            title_align=rich_utils.ALIGN_OPTIONS_PANEL,
        )
    )


def with_settings(readers: Readers) -> type[TyperCommand]:
    """A command class whose `--help` ends with the settings panel of `readers()` (imported only
    when help is asked for, so that a pod's start does not pay for it)."""

    class SettingsHelpCommand(TyperCommand):
        def format_help(self, ctx: Any, formatter: Any) -> None:
            super().format_help(ctx, formatter)
            print_settings_panel(readers())

    return SettingsHelpCommand


def group_with_settings(readers: Readers) -> type[TyperGroup]:
    """`with_settings` for a command group (`operator`: its subcommands read the same settings)."""

    class SettingsHelpGroup(TyperGroup):
        def format_help(self, ctx: Any, formatter: Any) -> None:
            super().format_help(ctx, formatter)
            print_settings_panel(readers())

    return SettingsHelpGroup


def workload_readers(workload: str) -> Readers:
    def readers() -> Sequence[type[BaseSettings]]:
        from marketpulse.contract.settings.environment import READERS

        return READERS[workload]

    return readers
