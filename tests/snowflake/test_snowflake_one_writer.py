"""One writer on Snowflake (fakesnow): two transforms of one pipeline never load an object twice, the
one without the lease skips its cycle cleanly, and a holder whose lease ran out loads nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from snowflake_bronze import MARKETPULSE, Bucket, Warehouse, loaded_ticks, synthetic, write_objects

from marketpulse.storage import ObjectInfo, S3ObjectStore
from marketpulse.transform.lease import LeaseHeldError, SnowflakeLease, executor
from marketpulse.transform.snowflake_loader import SnowflakeBronzeLoader
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.snowflake]

SKIPPED = "another transform holds the lease; cycle skipped"


class HeldStore:
    """The real S3 store whose downloads wait until `release` is set: a loader that listed its
    objects stays between listing and loading while another one works."""

    def __init__(self, store: S3ObjectStore) -> None:
        self.store = store
        self.bucket = store.bucket
        self.waiting = threading.Event()
        self.release = threading.Event()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.store.put(key, data, content_type)

    def get(self, key: str) -> bytes:
        return self.store.get(key)

    def download(self, key: str, path: Path) -> None:
        self.waiting.set()
        assert self.release.wait(120)
        self.store.download(key, path)

    def exists(self, key: str) -> bool:
        return self.store.exists(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.store.list(prefix)


def load_in_thread(load: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            load()
        except BaseException as exc:  # handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def assert_loaded_exactly_once(warehouse: Warehouse, keys: list[str], rows: int) -> None:
    manifest = warehouse.query("select object_key from bronze._load_manifest order by object_key")
    assert [r[0] for r in manifest] == sorted(keys)
    assert warehouse.query(
        "select count(*), count(distinct producer_id || ':' || seq) from bronze.raw_ticks"
    ) == [(rows, rows)]


def test_a_loader_that_listed_objects_another_loader_then_loaded_loads_none_of_them_again(
    bucket: Bucket, warehouse: Warehouse
) -> None:
    ticks = synthetic(1500)
    keys = write_objects(bucket.client, bucket.name, ticks, per_object=500)
    stalled = HeldStore(bucket.store)
    with warehouse.connect() as first_con, warehouse.connect() as second_con:
        SnowflakeBronzeLoader(second_con, bucket.store).ensure_tables()
        thread, errors = load_in_thread(
            SnowflakeBronzeLoader(first_con, stalled).load_new  # type: ignore[arg-type]
        )
        assert stalled.waiting.wait(60), "the first loader listed the objects and is about to fetch them"
        assert SnowflakeBronzeLoader(second_con, bucket.store).load_new().rows == 1500
        stalled.release.set()
        thread.join(120)

    # The first one's load transaction found its chunk in the manifest and rolled back.
    assert [type(e) for e in errors] == [LeaseHeldError]
    assert "loaded by another transform meanwhile" in str(errors[0])
    assert_loaded_exactly_once(warehouse, keys, 1500)
    assert [(r[0], r[1]) for r in loaded_ticks(warehouse)] == [(t.producer_id, t.seq) for t in ticks]


def test_a_transform_whose_lease_ran_out_mid_cycle_loads_nothing_and_the_new_holder_loads_once(
    bucket: Bucket, warehouse: Warehouse
) -> None:
    ticks = synthetic(1000)
    keys = write_objects(bucket.client, bucket.name, ticks, per_object=500)
    stalled = HeldStore(bucket.store)
    slow = SnowflakeLease(warehouse.connect, "bronze", "transform-a/1/aaaa", seconds=1)
    other = SnowflakeLease(warehouse.connect, "bronze", "transform-b/2/bbbb")
    with warehouse.connect() as slow_con:
        # Taken without `hold`'s heartbeat: a holder whose process froze renews nothing.
        slow.ensure_table(executor(slow_con))
        assert slow.take(executor(slow_con))
        thread, errors = load_in_thread(
            SnowflakeBronzeLoader(slow_con, stalled, lease=slow).load_new  # type: ignore[arg-type]
        )
        assert stalled.waiting.wait(60)
        time.sleep(1.5)  # the stalled holder's lease runs out
        with other.hold() as taken, warehouse.connect() as con:
            assert taken.held
            assert SnowflakeBronzeLoader(con, bucket.store, lease=other).load_new().rows == 1000
            stalled.release.set()
            thread.join(120)

    assert [type(e) for e in errors] == [LeaseHeldError]
    assert "transform-b/2/bbbb" in str(errors[0])
    assert_loaded_exactly_once(warehouse, keys, 1000)


def transform_env(warehouse: Warehouse, s3_server: S3Server, bucket: Bucket, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **warehouse.env(),
        **s3_server.settings(),
        "MARKETPULSE_BUCKET": bucket.name,
        "MARKETPULSE_METRICS_PORT": "0",
        "DBT_TARGET_PATH": str(workdir / "dbt-target"),
        "DBT_LOG_PATH": str(workdir / "dbt-logs"),
    }


def test_a_cron_run_while_another_transform_holds_the_snowflake_lease_skips_cleanly(
    bucket: Bucket, warehouse: Warehouse, s3_server: S3Server, tmp_path: Path
) -> None:
    write_objects(bucket.client, bucket.name, synthetic(500), per_object=250)
    env = {**transform_env(warehouse, s3_server, bucket, tmp_path), "MARKETPULSE_TRANSFORM_MODE": "cron"}
    with SnowflakeLease(warehouse.connect, "bronze", "transform-0/4242/cafe").hold() as held:
        assert held.held
        skipped = subprocess.run(
            [MARKETPULSE, "transform"], env=env, capture_output=True, text=True, timeout=600, check=False
        )

    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "Traceback" not in skipped.stderr
    [line] = [orjson.loads(x) for x in skipped.stderr.splitlines() if SKIPPED in x]
    assert line["holder"] == "transform-0/4242/cafe"
    assert "transform cycle done" not in skipped.stderr
    # Nothing was loaded: the bronze table was not even created.
    assert warehouse.query(
        "select table_name from information_schema.tables where table_schema = 'BRONZE'"
    ) == [("_TRANSFORM_LEASE",)]


def test_two_continuous_transforms_on_one_snowflake_database_load_every_object_exactly_once(
    bucket: Bucket, warehouse: Warehouse, s3_server: S3Server, tmp_path: Path
) -> None:
    ticks = synthetic(3000)
    logs = [tmp_path / "transform-a.log", tmp_path / "transform-b.log"]
    env = {
        **transform_env(warehouse, s3_server, bucket, tmp_path),
        "MARKETPULSE_TRANSFORM_MODE": "continuous",
        "MARKETPULSE_TRANSFORM_INTERVAL_SECONDS": "0.5",
        "MARKETPULSE_TRANSFORM_BUILD_INTERVAL_SECONDS": "3600",
    }
    transforms = []
    for index, log in enumerate(logs):
        workdir = tmp_path / f"dbt-{index}"
        with log.open("wb") as sink:
            transforms.append(
                subprocess.Popen(
                    [MARKETPULSE, "transform"],
                    env={**env, "DBT_TARGET_PATH": str(workdir / "target"), "DBT_LOG_PATH": str(workdir)},
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )

    def lines(message: str) -> list[dict[str, object]]:
        found = []
        for log in logs:
            text = log.read_text() if log.exists() else ""
            found += [orjson.loads(x) for x in text.splitlines() if f'"{message}"' in x]
        return found

    def loaded_rows() -> int:
        return sum(int(str(c["rows"])) for c in lines("transform cycle done"))

    def wait_for(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and not predicate():
            for transform, log in zip(transforms, logs, strict=True):
                assert transform.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert predicate(), f"{what}: {[log.read_text()[-2000:] for log in logs]}"

    keys: list[str] = []
    try:
        for batch in range(3):
            part = ticks[batch * 1000 : (batch + 1) * 1000]
            keys += write_objects(bucket.client, bucket.name, part, per_object=250, first=batch * 1000)
            wait_for(lambda batch=batch: loaded_rows() >= (batch + 1) * 1000, f"batch {batch} loaded")
        wait_for(lambda: bool(lines(SKIPPED)), "one transform skipping a cycle the other holds")
    finally:
        for transform in transforms:
            transform.send_signal(signal.SIGTERM)
        codes = [transform.wait(timeout=180) for transform in transforms]
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]

    assert loaded_rows() == 3000
    assert not lines("transform cycle failed"), [log.read_text()[-3000:] for log in logs]
    assert_loaded_exactly_once(warehouse, keys, 3000)
    assert warehouse.query(
        "select count(*), count(distinct producer_id || ':' || seq) from silver.fct_ticks"
    ) == [(3000, 3000)]


def test_a_held_lease_outlives_its_expiry_while_the_cycle_runs_and_is_free_once_it_ends(
    warehouse: Warehouse,
) -> None:
    cycle = SnowflakeLease(warehouse.connect, "bronze", "transform-a/1/aaaa", seconds=2)
    other = SnowflakeLease(warehouse.connect, "bronze", "transform-b/2/bbbb")
    with cycle.hold() as held, warehouse.connect() as con:
        assert held.held
        time.sleep(5)  # over twice the lease's length: only the heartbeat keeps it
        assert not other.take(executor(con))
    with warehouse.connect() as con:
        assert other.take(executor(con)), "a cycle that ends releases the lease at once"
