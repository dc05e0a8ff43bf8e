"""The operator's image (images/marketpulse/Dockerfile, target `operator`) leaves out the dependencies that
pyproject.toml's [tool.marketpulse.operator-image] excludes, and everything only they pull in. These tests
prove the operator's code path runs without them, so that the slim image keeps working as the code grows."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# What the operator's process loads: the CLI (the image's entrypoint), the operator's run and cleanup paths.
OPERATOR_ENTRY = ("marketpulse.cli", "marketpulse.operator.main", "marketpulse.operator.cleanup")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: list[Requirement]) -> set[str]:
    """Every installed distribution that these requirements pull in, transitively (markers evaluated)."""
    seen: set[str] = set()
    pending = [(r, "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = normalize(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            child = Requirement(line)
            pending += [(child, "")] + [(child, e) for e in requirement.extras]
    return seen


def split_dependencies() -> tuple[set[str], set[str]]:
    """(distributions in the operator's image, distributions only the excluded ones pull in)."""
    excluded = {normalize(n) for n in PYPROJECT["tool"]["marketpulse"]["operator-image"]["exclude"]}
    everything = [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]
    kept = closure([r for r in everything if normalize(r.name) not in excluded])
    return kept, closure(everything) - kept


def blocked_modules() -> set[str]:
    """Top-level modules that only the left-out distributions provide."""
    kept, left_out = split_dependencies()
    providers: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        providers.setdefault(module, set()).update(normalize(d) for d in dists)
    return {m for m, dists in providers.items() if dists & left_out and not dists & kept}


def test_the_excluded_dependencies_are_project_dependencies_and_the_heavy_ones_are_left_out() -> None:
    names = {normalize(Requirement(d).name) for d in PYPROJECT["project"]["dependencies"]}
    excluded = {normalize(n) for n in PYPROJECT["tool"]["marketpulse"]["operator-image"]["exclude"]}
    assert excluded <= names, f"not in [project].dependencies: {sorted(excluded - names)}"
    kept, left_out = split_dependencies()
    heavy = {"dbt-core", "duckdb", "pyarrow", "streamlit", "plotly", "snowflake-connector-python", "pandas"}
    assert heavy <= left_out
    assert not heavy & kept
    assert {"kopf", "kubernetes", "confluent-kafka", "minio", "numpy", "typer"} <= kept


BLOCKED_RUN = """
import importlib, json, sys
blocked = set(json.loads(sys.argv[1]))
class Blocker:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not in the operator image", name=name)
        return None
sys.meta_path.insert(0, Blocker())
# The image installs no CLI plugin (the development harness is not in it).
import importlib.metadata as metadata
all_entry_points = metadata.entry_points
metadata.entry_points = lambda **kw: () if kw.get("group") == "marketpulse.cli" else all_entry_points(**kw)
for module in sys.argv[2:]:
    importlib.import_module(module)
from marketpulse.cli import app
try:
    app(["operator", "--help"], prog_name="marketpulse")
except SystemExit as done:
    assert done.code in (0, None), done.code
print(json.dumps(sorted(m for m in sys.modules if m.startswith("marketpulse."))))
"""


@pytest.fixture(scope="module")
def blocked_run() -> subprocess.CompletedProcess[str]:
    """The operator's imports and `marketpulse operator --help`, in a fresh interpreter that refuses to
    import what the operator's image leaves out."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, json.dumps(sorted(blocked_modules())), *OPERATOR_ENTRY],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_operator_starts_its_cli_with_everything_only_the_excluded_dependencies_bring_blocked(
    blocked_run: subprocess.CompletedProcess[str],
) -> None:
    assert {"dbt", "duckdb", "pyarrow", "streamlit", "plotly", "snowflake", "pandas"} <= blocked_modules()
    assert blocked_run.returncode == 0, blocked_run.stderr[-3000:]
    assert "Run the StockPipeline operator" in blocked_run.stdout


def _deferred_imports(path: Path) -> set[str]:
    """Top-level names imported inside functions (run later, when the code path gets there), skipping
    `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if in_function and isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        if in_function and isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def test_no_module_of_the_operator_imports_an_excluded_dependency_later_inside_a_function(
    blocked_run: subprocess.CompletedProcess[str],
) -> None:
    """The operator's own modules and the contract and settings modules they load: a deferred import of
    DuckDB there would only fail in a running operator pod."""
    assert blocked_run.returncode == 0, blocked_run.stderr[-3000:]
    blocked = blocked_modules()
    loaded = blocked_run.stdout.splitlines()[-1]
    # The CLI's other commands (ingest, transform, dashboard) run in the full image only.
    other_commands = ("marketpulse.cli.",)
    offenders: dict[str, set[str]] = {}
    for module in json.loads(loaded):
        if module.startswith(other_commands) and module != "marketpulse.cli.operator":
            continue
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec else None
        if origin and origin.endswith(".py") and (hits := _deferred_imports(Path(origin)) & blocked):
            offenders[module] = hits
    assert not offenders, f"deferred imports of what the operator image leaves out: {offenders}"
