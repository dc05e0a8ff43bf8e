"""`marketpulse dev up|status|down` starts real servers in the background and leaves nothing behind."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from confluent_kafka.admin import AdminClient

from marketpulse_dev.localenv.process import pid_alive

pytestmark = [pytest.mark.kafka, pytest.mark.s3]

MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MARKETPULSE, "dev", *args], capture_output=True, text=True, timeout=300, check=False
    )


def _sourced(env_file: Path) -> dict[str, str]:
    script = f"source {shlex.quote(str(env_file))} && env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={}).stdout
    return dict(line.split("=", 1) for line in out.decode().split("\0") if "=" in line)


def test_up_writes_a_sourceable_env_the_servers_answer_on_and_down_stops_every_process(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    up = _cli("up", "--only", "kafka,s3", "--state-dir", str(state))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        env = _sourced(state / "dev.env")
        admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        assert admin.list_topics(timeout=10).brokers
        assert httpx.get(env["S3_ENDPOINT"] + "/health", timeout=5).status_code == 200

        again = _cli("up", "--only", "kafka,s3", "--state-dir", str(state))
        assert again.returncode == 0
        pids = [
            pid
            for entry in orjson.loads((state / "dev" / "state.json").read_bytes()).values()
            for pid in entry["pids"]
        ]
        assert len(pids) == 2, "a second `up` must reuse the running servers, not start more"

        status = _cli("status", "--state-dir", str(state))
        assert status.stdout.count("running") == 2
        assert env["S3_SECRET_KEY"] not in status.stdout, "status must not print secrets"
    finally:
        down = _cli("down", "--state-dir", str(state))
    assert down.returncode == 0
    assert not any(pid_alive(pid) for pid in pids)
    assert "not started" in _cli("status", "--state-dir", str(state)).stdout
