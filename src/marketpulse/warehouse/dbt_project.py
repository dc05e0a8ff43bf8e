"""Run the MarketPulse dbt project in-process, through dbt's programmatic runner.

A long-lived transform process calls `run_dbt(["build"], target="duckdb", env={...})` once per
cycle: in-process invocations skip the interpreter start, and the project is parsed once per
process: the parsed manifest is kept and handed to later invocations with the same project files,
target, vars and environment, so that a steady cycle pays for its SQL, not for reading the project.
dbt keeps global state (flags, adapters, the environment it reads with `env_var()`), so invocations
are serialised by a lock, and `env` overlays the process environment only while one runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_DIR_ENV = "MARKETPULSE_DBT_PROJECT_DIR"
DUCKDB_PATH_ENV = "MARKETPULSE_DUCKDB_PATH"
# Secrets reach dbt's profile only as DBT_ENV_SECRET_* variables, whose values dbt scrubs from its
# logs, events and error messages (docs.getdbt.com/reference/dbt-jinja-functions/env_var); run_dbt
# renames the workloads' variables to them for the invocation.
DBT_SECRET_PREFIX = "DBT_ENV_SECRET_"  # noqa: S105 - a variable name prefix, not a secret
SECRET_VARIABLES = ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
TARGETS = ("duckdb", "snowflake")

# Flags run_dbt sets itself; a caller passing them would silently point dbt somewhere else.
_RESERVED_FLAGS = ("--project-dir", "--profiles-dir", "--target", "-t")
_FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

_lock = threading.Lock()
# Parsed manifests by what the parse read (see _manifest_key); a process holds one or two.
_manifests: dict[str, Any] = {}
# Environment variables the project reads with env_var() (profiles.yml, dbt_project.yml) or that set
# dbt's own flags: a change to any of them calls for a new parse.
_PARSE_ENV_PREFIXES = ("MARKETPULSE_", "SNOWFLAKE_", "DBT_")
# Commands that run against a parsed project and so can be handed a kept manifest.
_MANIFEST_COMMANDS = frozenset({"build", "run", "test", "compile", "seed", "snapshot", "list", "ls", "show"})


class DbtProjectNotFoundError(FileNotFoundError):
    """No dbt_project.yml where the MarketPulse dbt project should be."""


@dataclass(frozen=True)
class DbtNodeFailure:
    """One node (model, test, unit test, ...) that failed or errored."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    message: str

    def describe(self) -> str:
        plain = _ANSI_ESCAPE.sub("", self.message)  # unit test diffs come coloured
        lines = [line.strip() for line in plain.splitlines() if line.strip()]
        # dbt's first line only repeats the node ("Runtime Error in model x (path)"); the cause follows.
        if len(lines) > 1 and " in " in lines[0] and lines[0].split(" in ", 1)[0].endswith("Error"):
            lines = lines[1:]
        summary = " ".join(lines[:2]) or "no message"
        if len(summary) > 400:
            summary = summary[:397] + "..."
        return f"{self.resource_type} {self.name} ({self.status}): {summary}"


class DbtRunError(RuntimeError):
    """A dbt invocation failed; the message names every failing node, or the error that stopped dbt."""

    def __init__(
        self, command: Sequence[str], failures: Sequence[DbtNodeFailure], cause: BaseException | None = None
    ) -> None:
        self.command = list(command)
        self.failures = list(failures)
        self.cause = cause
        where = f"dbt {' '.join(self.command)}"
        if self.failures:
            lines = "\n".join(f"  - {failure.describe()}" for failure in self.failures)
            message = f"{where} failed in {len(self.failures)} node(s):\n{lines}"
        elif cause is not None:
            message = f"{where} failed before running any node: {type(cause).__name__}: {cause}"
        else:
            message = f"{where} failed (dbt reported no failing node; see dbt's log)"
        super().__init__(message)

    @property
    def failed_nodes(self) -> list[str]:
        return [failure.name for failure in self.failures]


@dataclass(frozen=True)
class DbtRunResult:
    """What a successful invocation did: node statuses and execution times, and dbt's own result."""

    command: list[str]
    target: str
    elapsed_seconds: float
    statuses: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    raw: Any = None

    def seconds(self, name: str) -> float:
        """Execution time of the node called `name` (model, test, ...)."""
        for unique_id, seconds in self.timings.items():
            if unique_id.rsplit(".", 1)[-1] == name:
                return seconds
        raise KeyError(f"no node named {name!r} ran in dbt {' '.join(self.command)}")


def find_project_dir(env: Mapping[str, str] | None = None) -> Path:
    """The dbt project: $MARKETPULSE_DBT_PROJECT_DIR, else `dbt/` of the source tree holding this module."""
    environment = os.environ if env is None else {**os.environ, **env}
    configured = environment.get(PROJECT_DIR_ENV)
    if configured:
        path = Path(configured).expanduser().resolve()
        if not (path / "dbt_project.yml").is_file():
            raise DbtProjectNotFoundError(
                f"{PROJECT_DIR_ENV}={configured}: no dbt_project.yml there; "
                "set it to the folder that holds MarketPulse's dbt_project.yml"
            )
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "dbt"
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    raise DbtProjectNotFoundError(
        f"the MarketPulse dbt project was not found above {Path(__file__).resolve().parent}; "
        f"set {PROJECT_DIR_ENV} to the folder that holds its dbt_project.yml"
    )


def run_dbt(
    args: Sequence[str],
    *,
    target: str,
    env: Mapping[str, str],
    project_dir: Path | None = None,
    reuse_manifest: bool = True,
) -> DbtRunResult:
    """Run one dbt command (e.g. `["build"]`, `["run", "--full-refresh"]`) against `target`.

    With `reuse_manifest` (the default), commands that run nodes (build, run, test, ...) use a
    manifest parsed at most once per process for the same project files, target, `--vars` and
    environment; without it dbt parses the project (partially) on every call.

    `env` holds the settings the project reads with `env_var()` (DuckDB path, Snowflake account,
    schema names); it overlays the process environment for this invocation only. On DuckDB the
    database file is closed again when this returns, so the caller may open it (e.g. to publish
    gold). Raises DbtRunError naming the failing nodes when any node fails.
    """
    if target not in TARGETS:
        raise ValueError(f"target: {target!r} is not a profile target; expected one of {', '.join(TARGETS)}")
    reserved = [arg for arg in args if arg.split("=", 1)[0] in _RESERVED_FLAGS]
    if reserved:
        raise ValueError(
            f"args: {', '.join(reserved)} is set by run_dbt itself; pass project_dir/target instead"
        )
    directory = project_dir or find_project_dir(env)
    overlay = dbt_environment(env, os.environ)
    if target == "duckdb" and DUCKDB_PATH_ENV not in overlay and DUCKDB_PATH_ENV not in os.environ:
        # profiles.yml's default is relative to the working directory; pin it to the project.
        overlay[DUCKDB_PATH_ENV] = str(directory / "target" / "marketpulse.duckdb")
    command = [*args, "--project-dir", str(directory), "--profiles-dir", str(directory), "--target", target]

    with _lock, _environment(overlay):
        from dbt.cli.main import dbtRunner

        started = time.monotonic()
        try:
            if reuse_manifest and args and args[0] in _MANIFEST_COMMANDS:
                runner = dbtRunner(manifest=_parsed_manifest(directory, target, args))
            else:
                runner = dbtRunner()
            outcome = runner.invoke(command)
        except DbtRunError as exc:
            raise DbtRunError([*args, "--target", target], exc.failures, exc.cause) from None
        finally:
            if target == "duckdb":
                _release_duckdb()
        elapsed = time.monotonic() - started

    statuses, timings, failures = _summarise(outcome.result)
    if not outcome.success:
        raise DbtRunError([*args, "--target", target], failures, outcome.exception)
    return DbtRunResult(
        command=list(args),
        target=target,
        elapsed_seconds=elapsed,
        statuses=statuses,
        timings=timings,
        raw=outcome.result,
    )


def dbt_environment(env: Mapping[str, str], process: Mapping[str, str]) -> dict[str, str | None]:
    """The overlay of one dbt invocation: `env`, with each secret of SECRET_VARIABLES (from `env`,
    else from the `process` environment) moved to its DBT_ENV_SECRET_ name; None unsets a variable,
    so that the plain name is not in dbt's environment at all while it runs."""
    overlay: dict[str, str | None] = dict(env)
    for name in SECRET_VARIABLES:
        value = env.get(name, process.get(name))
        overlay[name] = None
        if value:
            overlay[DBT_SECRET_PREFIX + name] = value
    return overlay


def _parsed_manifest(directory: Path, target: str, args: Sequence[str]) -> Any:
    """The manifest for this project, target and vars: parsed on first use, then kept."""
    from dbt.cli.main import dbtRunner

    vars_args = _vars_args(args)
    key = _manifest_key(directory, target, vars_args)
    manifest = _manifests.get(key)
    if manifest is None:
        parse = [
            "parse",
            *vars_args,
            "--project-dir",
            str(directory),
            "--profiles-dir",
            str(directory),
            "--target",
            target,
        ]
        outcome = dbtRunner().invoke(parse)
        if not outcome.success or outcome.result is None:
            _, _, failures = _summarise(outcome.result)
            raise DbtRunError(parse, failures, outcome.exception)
        manifest = outcome.result
        _manifests.clear()  # an older manifest is for files or settings that have since changed
        _manifests[key] = manifest
    return manifest


def _vars_args(args: Sequence[str]) -> list[str]:
    """The `--vars` of a command line, as arguments for `dbt parse` (vars shape the parsed project)."""
    found: list[str] = []
    for position, arg in enumerate(args):
        if arg == "--vars" and position + 1 < len(args):
            found = ["--vars", args[position + 1]]
        elif arg.startswith("--vars="):
            found = [arg]
    return found


def _manifest_key(directory: Path, target: str, vars_args: Sequence[str]) -> str:
    """A digest of what a parse depends on: project files (path, size, mtime), target, vars and
    environment (digested, so that secrets such as SNOWFLAKE_PASSWORD are not kept in the key)."""
    files: list[str] = []
    for root, folders, names in os.walk(directory):
        # dbt's own output (target/, logs/) and installed packages are not project sources.
        folders[:] = sorted(f for f in folders if f not in {"target", "logs", "dbt_packages"})
        for name in sorted(names):
            stat = (Path(root) / name).stat()
            files.append(f"{Path(root, name).relative_to(directory)}:{stat.st_size}:{stat.st_mtime_ns}")
    environment = sorted(
        f"{name}={value}" for name, value in os.environ.items() if name.startswith(_PARSE_ENV_PREFIXES)
    )
    parts = (str(directory), target, *vars_args, *environment, *files)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _summarise(result: Any) -> tuple[dict[str, str], dict[str, float], list[DbtNodeFailure]]:
    statuses: dict[str, str] = {}
    timings: dict[str, float] = {}
    failures: list[DbtNodeFailure] = []
    for node_result in getattr(result, "results", None) or []:
        node = node_result.node
        status = str(getattr(node_result.status, "value", node_result.status))
        statuses[str(node.unique_id)] = status
        timings[str(node.unique_id)] = float(node_result.execution_time or 0.0)
        if status in _FAILED_STATUSES:
            failures.append(
                DbtNodeFailure(
                    unique_id=str(node.unique_id),
                    name=str(node.name),
                    resource_type=str(getattr(node.resource_type, "value", node.resource_type)),
                    status=status,
                    message=str(node_result.message or ""),
                )
            )
    return statuses, timings, failures


@contextmanager
def _environment(overlay: Mapping[str, str | None]) -> Iterator[None]:
    """`overlay` over the process environment for the block (a None value unsets the variable)."""
    saved = {name: os.environ.get(name) for name in overlay}
    for name, value in overlay.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _release_duckdb() -> None:
    """Close the database file dbt-duckdb keeps open between invocations.

    dbt-duckdb caches its connection in a class attribute for the life of the process; with it
    open, this process cannot open the same file with other settings (e.g. read-only) and no other
    process can open it at all. The transform is the file's only writer and reopens it each cycle.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: nothing to release
        return
    with DuckDBConnectionManager._LOCK:
        environment: Any = DuckDBConnectionManager._ENV  # declared as None in dbt-duckdb
        DuckDBConnectionManager._ENV = None
        if environment is not None:
            environment.close()
