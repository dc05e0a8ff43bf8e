"""`marketpulse run --backfill-days`: history through the real pipeline once per data directory, then live
ticks; refused, before anything starts, where it cannot apply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from marketpulse_dev.localenv.process import free_port

DEMO = Path(__file__).parents[1] / "operator" / "config" / "samples" / "stockpipeline-local-demo.yaml"
REPLAY = Path(__file__).parents[1] / "operator" / "config" / "samples" / "stockpipeline-replay.yaml"
MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MARKETPULSE, "run", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-f", str(DEMO), "--once", "--ticks", "10", "--backfill-days", "5"],
            "--once takes --ticks and --days",
        ),
        (
            ["-f", str(REPLAY), "--backfill-days", "5"],
            "--backfill-days needs the synthetic source, not replay",
        ),
        (["-f", str(DEMO), "--backfill-days", "-1"], "--backfill-days"),
        (["-f", str(DEMO), "--backfill-days", "999999"], "--backfill-days"),
    ],
)
def test_a_backfill_that_cannot_apply_is_refused_before_anything_starts(
    tmp_path: Path, args: list[str], message: str
) -> None:
    refused = run(*args, "--data-dir", str(tmp_path / "data"))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert message in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    assert not (tmp_path / "data").exists()


def demo_until(data_dir: Path, log: Path, text: str, *, days: int, timeout: float = 240) -> str:
    """`marketpulse run` with a backfill until `text` is in its output (then Ctrl-C); the output."""
    small = data_dir.parent / "two-symbols.yaml"
    document = yaml.safe_load(DEMO.read_text())
    document["spec"]["watchlist"] = ["AAPL", "MSFT"]
    document["spec"]["dashboard"] = {"enabled": False}
    small.write_text(yaml.safe_dump(document))
    command = [MARKETPULSE, "run", "-f", str(small), "--backfill-days", str(days)]
    command += ["--data-dir", str(data_dir), "--dashboard-port", str(free_port()), "--status-every", "2"]
    with log.open("wb") as sink:
        demo = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=os.environ | {"COLUMNS": "200"}
        )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and text not in log.read_text():
            assert demo.poll() is None, log.read_text()[-5000:]
            time.sleep(1)
        assert text in log.read_text(), log.read_text()[-5000:]
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=120)
    return log.read_text()


@pytest.mark.kafka
@pytest.mark.s3
def test_history_is_seeded_once_through_the_pipeline_and_a_second_run_goes_straight_to_live(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    first = demo_until(data, tmp_path / "first.log", "status ", days=3)
    assert "seeding history: 3 trading days" in first
    assert "ingest" in first
    assert "going live" in first
    second = demo_until(data, tmp_path / "second.log", "status ", days=3)
    assert "history already seeded: 3 trading days" in second
    assert "ticks acked by Kafka" not in second, "no second backfill"

    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        history = con.execute(
            "select count(*), count(distinct (symbol, event_time, producer_id, seq)), count(distinct cast("
            "event_time at time zone 'America/New_York' as date)) from silver.fct_ticks "
            "where producer_id like 'backfill-%'"
        ).fetchone()
    planned = 3 * 390 * 4 * 2 - 2
    assert history == (planned, planned, 3), "every planned tick once, over exactly three sessions"
