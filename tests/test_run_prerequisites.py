"""Missing prerequisites stop `run` and `dev obtain` early, with the tool named, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")
DEMO = Path(__file__).parents[1] / "operator/config/samples/stockpipeline-local-demo.yaml"


def _without_tools(tmp_path: Path) -> dict[str, str]:
    """An environment whose PATH holds only the virtualenv: no java, no go, no mvn."""
    return {**os.environ, "PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path)}


@pytest.mark.kafka  # the Kafka jars are cached: only the JVM is missing
def test_run_without_java_names_java_and_exits_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [MARKETPULSE, "run", "-f", str(DEMO), "--once", "--ticks", "10", "--data-dir", str(tmp_path / "d")],
        env=_without_tools(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "`java` is not on PATH; install Java 17" in output
    assert "Traceback" not in output


def test_obtaining_with_an_empty_cache_and_no_go_names_go(tmp_path: Path) -> None:
    env = {**_without_tools(tmp_path), "MARKETPULSE_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [MARKETPULSE, "dev", "obtain", "--only", "s3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "`go` is not on PATH; install Go" in output
    assert "Traceback" not in output
