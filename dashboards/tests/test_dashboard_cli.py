"""`marketpulse dashboard` serves the app over HTTP, headless, on the configured address and port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

MARKETPULSE = Path(sys.executable).with_name("marketpulse")


@pytest.fixture
def served(serve_dashboard: Callable[[Mapping[str, str]], AbstractContextManager[str]]) -> Iterator[str]:
    with serve_dashboard({"MARKETPULSE_BUCKET": "any"}) as url:
        yield url


def test_the_dashboard_command_serves_the_app_and_its_health_endpoint(served: str) -> None:
    health = httpx.get(f"{served}/_stcore/health", timeout=5)
    assert (health.status_code, health.text) == (200, "ok")
    page = httpx.get(f"{served}/", timeout=5)
    assert page.status_code == 200
    # The single-page shell whose script then opens the app's websocket.
    assert '<div id="root">' in page.text


def test_the_dashboard_command_refuses_a_bad_port_and_names_the_variable() -> None:
    result = subprocess.run(
        [str(MARKETPULSE), "dashboard"],
        env={**os.environ, "MARKETPULSE_DASHBOARD_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "MARKETPULSE_DASHBOARD_PORT" in result.stderr
