"""The Dockerfiles under images/, checked for structure in a second (tests/test_image_build.py,
marked `image`, builds them for real with buildah)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer

from marketpulse.cli import app

IMAGES = Path(__file__).parents[2] / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "cargo", "rustc", "git ", "curl ", "wget ")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for key, arguments in self.instructions if key == keyword]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, *rest = arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), base)
            stages.append(Stage(base, rest[-1] if rest else str(len(stages))))
        elif stages:
            stages[-1].instructions.append((keyword, arguments.strip()))
        elif keyword == "ARG" and "=" in arguments:
            name, value = arguments.split("=", 1)
            args[name.strip()] = value.strip()
    return args, stages


def test_there_is_at_least_one_image() -> None:
    assert DOCKERFILES, "images/*/Dockerfile"


@pytest.fixture(params=DOCKERFILES, ids=lambda p: p.parent.name)
def dockerfile(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_the_build_is_multi_stage_and_every_base_is_pinned_to_an_exact_version(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    assert len(stages) >= 2
    for stage in stages:
        if stage.base in {s.name for s in stages}:
            continue
        assert "$" not in stage.base, f"unresolved base {stage.base}"
        assert "@sha256:" in stage.base or re.search(r":\d+\.\d+\.\d+", stage.base), stage.base
        assert ":" in stage.base, stage.base
        assert not stage.base.endswith(":latest"), stage.base


def test_no_latest_tag_anywhere(dockerfile: Path) -> None:
    assert ":latest" not in dockerfile.read_text()


def test_the_final_stage_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    users = stages[-1].all("USER")
    assert users, "the final stage sets USER"
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), users[-1]


def test_the_final_stage_installs_no_build_tools_and_copies_the_build_from_another_stage(
    dockerfile: Path,
) -> None:
    _, stages = parse(dockerfile)
    final = stages[-1]
    for command in final.all("RUN"):
        assert "install" not in command or "uninstall" in command, f"final stage installs: {command}"
        assert not any(tool in f"{command} " for tool in BUILD_TOOLS), command
    assert any(c.startswith("--from=") for c in final.all("COPY")), (
        "the final stage copies the build's result"
    )


def test_the_entrypoint_and_command_run_a_marketpulse_subcommand_that_exists(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    final = stages[-1]
    entrypoint = json.loads(final.all("ENTRYPOINT")[-1])
    command = json.loads(final.all("CMD")[-1]) if final.all("CMD") else []
    argv = entrypoint + command
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert argv[0] == "marketpulse"
    assert argv[1] in commands, f"{shlex.join(argv)}: no such command in {sorted(commands)}"
    group = typer.main.get_command(app).commands[argv[1]]  # type: ignore[attr-defined]
    if isinstance(group, typer.core.TyperGroup):
        assert argv[2:3], f"{shlex.join(argv)}: {argv[1]} needs a subcommand"
        assert argv[2] in group.commands, f"{shlex.join(argv)}: no such subcommand of {argv[1]}"


def test_the_image_carries_oci_labels(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    labels = " ".join(stages[-1].all("LABEL"))
    for key in ("title", "source", "licenses", "version", "revision", "description"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_the_operator_target_runs_the_operator_as_a_numeric_non_root_user_and_installs_nothing() -> None:
    _, stages = parse(IMAGES / "marketpulse" / "Dockerfile")
    operator = next(s for s in stages if s.name == "operator")
    assert stages[-1].name != "operator", "the default target (the last stage) stays the full image"
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", operator.all("USER")[-1])
    assert not operator.all("RUN")
    assert any(c.startswith("--from=") for c in operator.all("COPY"))
    argv = json.loads(operator.all("ENTRYPOINT")[-1]) + json.loads(operator.all("CMD")[-1])
    assert argv == ["marketpulse", "operator", "run"]
    labels = " ".join(operator.all("LABEL"))
    for key in ("title", "source", "licenses", "version", "revision", "description"):
        assert f"org.opencontainers.image.{key}=" in labels, key


def test_health_is_documented_as_probes_or_a_healthcheck(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    readme = (IMAGES / "README.md").read_text()
    assert stages[-1].all("HEALTHCHECK") or ("/healthz" in readme and "probe" in readme)


def test_the_chart_and_the_operator_default_to_the_image_these_dockerfiles_build() -> None:
    import yaml

    from marketpulse.operator.settings import OperatorSettings

    values = yaml.safe_load((IMAGES.parent / "charts" / "marketpulse" / "values.yaml").read_text())
    repository = values["image"]["repository"]
    assert OperatorSettings().image.rsplit(":", 1)[0] == repository
    assert repository.rsplit("/", 1)[1] in {p.parent.name for p in DOCKERFILES}
    assert values["workloads"]["runAsUser"] == values["podSecurityContext"]["runAsUser"] == 10001
    for dockerfile in DOCKERFILES:
        assert parse(dockerfile)[1][-1].all("USER")[-1].split(":")[0] == "10001"
