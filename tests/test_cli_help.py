"""`marketpulse --help` in the field's habits: user commands apart from the pod entrypoints, `operator
run|cleanup` as subcommands, `--version`, and each entrypoint's settings listed from its settings classes."""

from __future__ import annotations

from importlib.metadata import version

import pytest
import typer
from typer.testing import CliRunner

from marketpulse.cli import WORKLOADS_PANEL, app
from marketpulse.cli.settings_help import SETTINGS_PANEL, settings_rows
from marketpulse.contract.settings.environment import READERS, variable
from marketpulse.operator.settings import OperatorSettings

ENTRYPOINTS = ("operator", "ingest", "archive", "transform", "alerts", "dashboard")
USER_COMMANDS = ("validate", "render", "version", "run", "dev", "bench")


def help_of(*args: str) -> str:
    # Wide enough that rich wraps no variable name or default.
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def panel(text: str, title: str) -> str:
    """The lines of the help panel titled `title`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if f"─ {title} " in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    return "\n".join(lines[start + 1 : end])


def command_names(text: str) -> set[str]:
    return {line.strip("│ ").split(" ")[0] for line in text.splitlines() if line.strip("│ ")}


def test_pod_entrypoints_have_their_own_panel_apart_from_the_user_commands() -> None:
    text = help_of()
    assert command_names(panel(text, WORKLOADS_PANEL)) == set(ENTRYPOINTS)
    assert set(USER_COMMANDS) <= command_names(panel(text, "Commands"))
    assert not set(ENTRYPOINTS) & command_names(panel(text, "Commands"))


def test_version_option_and_command_print_the_installed_version() -> None:
    expected = f"marketpulse {version('marketpulse')}"
    for args in (["--version"], ["version"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0
        assert result.stdout.strip() == expected


def test_operator_has_run_and_cleanup_subcommands_with_their_options() -> None:
    group = typer.main.get_command(app).commands["operator"]  # type: ignore[attr-defined]
    assert set(group.commands) == {"run", "cleanup"}
    assert "Run the StockPipeline operator" in help_of("operator")
    run = help_of("operator", "run")
    for option in ("--namespace", "--peering", "--standalone", "--priority", "--verbose"):
        assert option in run
    cleanup = help_of("operator", "cleanup")
    assert "--timeout" in cleanup
    assert "--peering" not in cleanup


def test_the_operator_without_a_subcommand_shows_its_help_and_runs_nothing() -> None:
    result = CliRunner().invoke(app, ["operator"])
    assert "run" in result.output
    assert "cleanup" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("workload", sorted(READERS))
def test_each_workload_help_lists_every_variable_its_settings_read_with_the_default(workload: str) -> None:
    settings = panel(help_of(workload), SETTINGS_PANEL)
    for reader in READERS[workload]:
        for field in reader.model_fields:
            assert variable(reader, field) in settings, (workload, field)
    assert "MARKETPULSE_LOG_FORMAT" in settings
    assert "[default: auto]" in settings


@pytest.mark.parametrize("command", [("operator",), ("operator", "run"), ("operator", "cleanup")])
def test_the_operator_help_lists_the_operator_settings(command: tuple[str, ...]) -> None:
    settings = panel(help_of(*command), SETTINGS_PANEL)
    for field in OperatorSettings.model_fields:
        assert variable(OperatorSettings, field) in settings, field
    assert "[default: 8081]" in settings  # MARKETPULSE_HEALTH_PORT


def test_settings_rows_carry_defaults_and_descriptions_from_the_classes_and_name_each_variable_once() -> None:
    rows = {name: (default, description) for name, default, description in settings_rows(READERS["archive"])}
    assert rows["S3_REGION"] == ("us-east-1", "")
    assert rows["MARKETPULSE_LOG_LEVEL"][0] == "INFO"
    assert rows["MARKETPULSE_BUCKET"][0] == '""'
    assert "also MARKETPULSE_KAFKA_BOOTSTRAP_SERVERS" in rows["KAFKA_BOOTSTRAP_SERVERS"][1]
    names = [name for name, _, _ in settings_rows(READERS["transform"])]
    assert len(names) == len(set(names))
    operator = dict((name, default) for name, default, _ in settings_rows([OperatorSettings]))
    assert operator["S3_SECRET_KEY"] == '""'
    assert operator["MARKETPULSE_KAFKA_SASL_PASSWORD"] == '""'
