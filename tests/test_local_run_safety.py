"""What a local run leaves about: a workload told nothing listens on loopback, `--fresh` deletes only a
data directory MarketPulse made, and a file holding a secret is its user's alone and gone when the run
stops. (That every listener of a whole run is on loopback is test_local_run.py's demo test.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketpulse_dev.local.executor import (
    DATA_MARKER,
    LocalRun,
    prepare_data_dir,
    reset_data_dir,
)
from marketpulse_dev.local.pipeline_file import load_pipeline
from marketpulse_dev.local.secrets import secret_env_name
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server

SAMPLES = Path(__file__).parents[1] / "operator" / "config" / "samples"
DEMO = SAMPLES / "stockpipeline-local-demo.yaml"
MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")
LOCAL_ONLY = {"MARKETPULSE_LOG_LEVEL"}


def test_a_workload_told_nothing_binds_its_metrics_and_the_dashboard_to_loopback() -> None:
    from marketpulse.contract.settings.common import CommonSettings
    from marketpulse.contract.settings.dashboard import DashboardSettings
    from marketpulse.runtime.http import serve_metrics_and_health

    assert CommonSettings().metrics_host == "127.0.0.1"
    assert DashboardSettings().dashboard_address == "127.0.0.1"
    server = serve_metrics_and_health(0, healthy=lambda: True)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_fresh_refuses_to_delete_a_directory_marketpulse_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter-1.tex").write_text("months of work")

    result = subprocess.run(
        [MARKETPULSE, "run", "-f", str(DEMO), "--fresh", "--data-dir", str(mine), "--dashboard-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert result.returncode != 0
    assert f"--fresh would delete {mine}, which MarketPulse did not create" in " ".join(result.stdout.split())
    assert "Traceback" not in result.stdout + result.stderr
    assert (mine / "chapter-1.tex").read_text() == "months of work"


def test_fresh_deletes_a_data_directory_that_marketpulse_created(tmp_path: Path) -> None:
    created = prepare_data_dir(tmp_path / "data")
    (created / "kafka").mkdir()
    assert (created / DATA_MARKER).is_file()

    reset_data_dir(created)

    assert not created.exists()
    reset_data_dir(created)  # nothing there: nothing to do
    assert prepare_data_dir(tmp_path / "data") == created  # a new one gets the marker again
    assert (created / DATA_MARKER).is_file()


def test_a_directory_that_already_holds_files_gets_no_marker(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")

    prepare_data_dir(tmp_path)

    assert not (tmp_path / DATA_MARKER).exists()


def test_the_snowflake_key_file_of_a_local_run_is_this_users_only_and_gone_when_the_run_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_pipeline(SAMPLES / "stockpipeline-finnhub-snowflake.yaml")
    run = LocalRun(pipeline, tmp_path, printer=lambda *_: None)
    run.kafka = KafkaServer(tmp_path / "kafka", port=19092)
    run.s3 = S3Server(tmp_path / "s3", port=17070, secret_key="local-secret")
    for workload in run.workloads():
        for var in workload.env:
            if var.secret is not None and var.secret.name != "marketpulse-s3":
                monkeypatch.setenv(secret_env_name(var.secret), "value")
        for secret_file in workload.secret_files:
            monkeypatch.setenv(secret_env_name(secret_file.secret), "-----BEGIN PRIVATE KEY-----")
    transform = next(w for w in run.workloads() if w.component == "transform")

    key = Path(run.environment(transform)["SNOWFLAKE_PRIVATE_KEY_PATH"])

    assert key.read_text() == "-----BEGIN PRIVATE KEY-----"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o777 == 0o700
    run.kafka = run.s3 = None  # never started
    run.stop()
    assert not key.parent.exists()
