"""Storage that misbehaves: S3 answering slowly, stalling and dropping connections (through a TCP
fault proxy between the archiver and versitygw), the S3 server's disk filling up, and the
warehouse's disk filling up under the transform. (An S3 outage is
test_ingest_archive_e2e.py::test_an_s3_outage_pauses_the_archive_which_then_drains_without_loss_or_duplicates,
which runs in this suite too.)

The full-disk scenarios mount small tmpfs file systems, so they need root (or CAP_SYS_ADMIN); a
mount that fails fails the test with the reason. MARKETPULSE_RELIABILITY_FULL=1 runs more ticks,
dbt's tests, and a from-scratch gold rebuild after every scenario.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.checks import (
    drain_and_check,
    full_mode,
    manifest_violations,
    transform_env,
    wait_for_lag_zero,
)
from marketpulse_dev.reliability.fault_proxy import FaultProxy
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

TICKS = 20_000 if full_mode() else 3_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs; `resize(small_disk, "64m")` frees space as a bigger volume would."""
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs (needs root): {mount.stderr.strip()}", pytrace=False)
    yield mountpoint
    subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)


def resize(mountpoint: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mountpoint)], check=True)


def test_slow_stalling_and_dropped_s3_connections_delay_the_archive_but_lose_nothing(
    kafka_server: KafkaServer, s3_server: S3Server, tmp_path: Path
) -> None:
    flow = FlowUnderTest.create(kafka_server.bootstrap_servers, s3_server.settings(), tmp_path)
    with FaultProxy("127.0.0.1", s3_server.port) as proxy:
        try:
            # Live quotes are written best effort (a failed write is dropped silently): keep them out
            # of the way, so that the request the reset hits is a bronze write, which must be retried.
            archive = flow.run(
                "archive", {"S3_ENDPOINT": proxy.endpoint, "MARKETPULSE_QUOTES_INTERVAL_SECONDS": "3600"}
            )
            ingest = flow.run(
                "ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS * 2), "MARKETPULSE_SYNTHETIC_RATE": "1000"}
            )
            wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow.logs)
            proxy.latency = 0.25  # every chunk either way: a slow, congested S3
            time.sleep(2)
            proxy.stall()  # bytes stop; requests in flight hang (below the client's 30 s read timeout)
            time.sleep(3)
            dropped = proxy.drop_connections()  # then every connection is reset mid-request
            proxy.latency = 0.0
            proxy.resume()
            cleared_at = time.monotonic()
            assert ingest.wait(timeout=120) == 0, flow.logs()
            result = drain_and_check(
                flow,
                "S3 slow, stalled, connections reset (proxy)",
                fault_cleared_at=cleared_at,
                archive=archive,
                notes={"connections_reset": dropped, "connections": proxy.connections},
            )
        finally:
            flow.stop_all()
    result.assert_held()
    assert dropped >= 1, "the archiver had no connection open to reset: the fault did not happen"
    assert "S3 unavailable; consumption paused" in flow.logs(), "a reset request is retried, not ignored"


def test_a_full_s3_disk_pauses_the_archive_without_committing_past_unwritten_objects(
    kafka_server: KafkaServer, small_disk: Path, tmp_path: Path
) -> None:
    s3 = S3Server(small_disk).start()
    flow = FlowUnderTest.create(kafka_server.bootstrap_servers, s3.settings(), tmp_path / "flow")
    try:
        archive = flow.run("archive")
        # ~4,500 ticks per MiB of NDJSON: more than the 1 MiB disk holds.
        ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": str(max(TICKS, 8000))})
        assert ingest.wait(timeout=120) == 0, flow.logs()
        wait_until(
            lambda: "S3 unavailable; consumption paused" in flow.logs() or archive.poll() is not None,
            60,
            "the archive to notice the full disk",
            flow.logs,
        )
        assert archive.poll() is None, f"the archive must pause on a full disk, not exit:\n{flow.logs()}"
        bronze_while_full = len(flow.bronze()[0])
        assert bronze_while_full < len(flow.ledger()), "the disk was to fill before bronze was complete"
        resize(small_disk, "64m")
        freed_at = time.monotonic()
        result = drain_and_check(
            flow,
            "S3 server disk full, then freed",
            fault_cleared_at=freed_at,
            archive=archive,
            notes={"bronze_ticks_while_full": bronze_while_full},
        )
    finally:
        flow.stop_all()
        s3.stop()
    result.assert_held()


def test_a_full_warehouse_disk_fails_the_transform_clearly_and_the_next_run_loads_everything_once(
    kafka_server: KafkaServer, s3_server: S3Server, small_disk: Path, tmp_path: Path
) -> None:
    flow = FlowUnderTest.create(kafka_server.bootstrap_servers, s3_server.settings(), tmp_path / "flow")
    try:
        archive = flow.run("archive")
        ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS)})
        assert ingest.wait(timeout=120) == 0, flow.logs()
        assert wait_for_lag_zero(flow, timeout=60) is not None, flow.logs()

        database = small_disk / "warehouse.duckdb"
        failing = flow.run("transform", transform_env(database))
        assert failing.wait(timeout=300) == 1, flow.log_of(failing)
        failed_at = time.monotonic()
        (failure,) = flow.log_records(failing, "transform cycle failed")
        assert (
            "No space left on device" in str(failure["error"])
            or "out of space" in str(failure["error"]).lower()
        ), failure
        assert "Traceback" not in flow.log_of(failing), "a full disk is an error line, not a traceback"

        resize(small_disk, "64m")
        with duckdb.connect(str(database), read_only=True) as con:
            assert manifest_violations(con) == [], "nothing may be marked loaded that was not"
        result = drain_and_check(
            flow,
            "warehouse disk full, then freed",
            fault_cleared_at=failed_at,
            archive=archive,
            database=database,
            rebuild_gold=True,
            notes={"error": str(failure["error"])[:200]},
        )
    finally:
        flow.stop_all()
    result.assert_held()
