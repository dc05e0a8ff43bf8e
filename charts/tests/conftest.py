"""Fixtures for the chart's spec tests: the real helm, offline, rendered into Python objects."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).parents[1] / "marketpulse"

Manifest = dict[str, Any]
Helm = Callable[..., subprocess.CompletedProcess[str]]
Render = Callable[..., list[Manifest]]


@pytest.fixture(scope="session")
def chart() -> Path:
    return CHART


@pytest.fixture(scope="session")
def helm(helm_binary: Path) -> Helm:
    """Run helm with no cluster: nothing here may need an API server or the network."""

    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(helm_binary), *map(str, argv)], capture_output=True, text=True, check=False, timeout=60
        )

    return run


@pytest.fixture(scope="session")
def template(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """`template(values, files=...)`: the completed `helm template` run (for tests of failures).

    Like `helm get manifest`, the output is the release's objects; `hooks=True` adds the hooks
    (the pre-delete uninstall Job and its account), which helm creates only when they run.
    """
    folder = tmp_path_factory.mktemp("values")
    counter = itertools.count()

    def run(
        values: dict[str, Any] | None = None,
        *,
        files: Sequence[Path] = (),
        release: str = "mp",
        namespace: str = "markets",
        hooks: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        argv: list[str | Path] = ["template", release, CHART, "--namespace", namespace]
        if not hooks:
            argv.append("--no-hooks")
        for f in files:
            argv += ["--values", f]
        if values is not None:
            path = folder / f"values-{next(counter)}.yaml"
            path.write_text(yaml.safe_dump(values))
            argv += ["--values", path]
        return helm(*argv)

    return run


@pytest.fixture(scope="session")
def render(template: Helm) -> Render:
    """`render(values, files=..., hooks=...)`: the manifests `helm template` makes, or a test failure."""

    def run(values: dict[str, Any] | None = None, **kwargs: Any) -> list[Manifest]:
        result = template(values, **kwargs)
        if result.returncode != 0:
            pytest.fail(f"helm template failed:\n{result.stderr}", pytrace=False)
        return [d for d in yaml.safe_load_all(result.stdout) if d]

    return run
