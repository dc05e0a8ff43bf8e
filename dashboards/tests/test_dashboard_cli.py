"""`marketpulse dashboard` serves the app over HTTP, headless, on the configured address and port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from marketpulse.localenv.errors import ComponentError
from marketpulse.localenv.process import free_port, wait_for

MARKETPULSE = Path(sys.executable).with_name("marketpulse")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "dashboard.log"
    env = {
        **os.environ,
        "MARKETPULSE_DASHBOARD_ADDRESS": "127.0.0.1",
        "MARKETPULSE_DASHBOARD_PORT": str(port),
        "MARKETPULSE_BUCKET": "any",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(MARKETPULSE), "dashboard"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200,
            timeout=60,
            step="start the dashboard",
            what=f"GET {url}/_stcore/health to answer 200",
            log_path=log,
            alive=lambda: process.poll() is None,
        )
    except ComponentError as exc:
        process.kill()
        process.wait(timeout=10)
        pytest.fail(str(exc), pytrace=False)
    yield url
    process.terminate()
    try:
        assert process.wait(timeout=20) is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


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
