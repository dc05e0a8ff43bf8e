"""Loader suite: bulk-load bronze objects from the real S3 server through the real DuckDBBronzeLoader.

The store handed to the loader is wrapped to time its calls (listing; downloading, as wall time while
any download runs), and the loader's DuckDB statements (read_json + insert, manifest) are timed too.
Downloads overlap the inserts, so the parts add up to more than the total.
Baseline: one INSERT per row, timed on a sample and extrapolated (labelled so). Ceiling: one DuckDB
`read_json` of the same files from local disk into a table, with no S3 and no manifest.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson

from marketpulse.storage import ObjectInfo, ObjectStore, S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse_dev.bench.bronze_data import BRONZE_COLUMNS, bronze_objects, upload
from marketpulse_dev.bench.naive import insert_row_by_row
from marketpulse_dev.bench.report import ResultRow, result_row
from marketpulse_dev.localenv.s3 import S3Server

SUITE = "loader"
TARGET = "≥ 1000000"
BUCKET = "bench-loader"
METRICS = [
    "bulk_load_rows_per_s",
    "bulk_load_seconds",
    "bulk_load_list_seconds",
    "bulk_load_download_seconds",
    "bulk_load_duckdb_seconds",
    "bulk_load_duckdb_rows_per_s",
    "row_by_row_insert_rows_per_s",
    "row_by_row_insert_extrapolated_seconds",
]


@dataclass(frozen=True)
class LoaderSizes:
    rows: int
    rows_per_object: int
    naive_sample: int


SHORT_SIZES = LoaderSizes(rows=100_000, rows_per_object=20_000, naive_sample=500)
FULL_SIZES = LoaderSizes(rows=1_000_000, rows_per_object=20_000, naive_sample=5_000)


@dataclass
class TimedStore:
    """An ObjectStore that records when each list and download ran (the loader sees no difference)."""

    inner: ObjectStore
    bucket: str = ""
    downloads: list[tuple[float, float]] = field(default_factory=list)
    list_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.bucket = self.inner.bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.inner.put(key, data, content_type)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def download(self, key: str, path: Path) -> None:
        started = time.perf_counter()
        self.inner.download(key, path)
        with self.lock:
            self.downloads.append((started, time.perf_counter()))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        started = time.perf_counter()
        items = list(self.inner.list(prefix))
        self.list_seconds += time.perf_counter() - started
        return iter(items)

    def download_wall_seconds(self) -> float:
        """Time during which at least one download was running (overlapping downloads count once)."""
        total, end = 0.0, float("-inf")
        for start, stop in sorted(self.downloads):
            if stop <= end:
                continue
            total += stop - max(start, end)
            end = stop
        return total


class TimedLoader(DuckDBBronzeLoader):
    """The real loader, also adding up the time its DuckDB statements take."""

    duckdb_seconds = 0.0

    def _insert_objects(self, root: Path, paths: Sequence[Path], loaded_at: dt.datetime) -> int:
        started = time.perf_counter()
        try:
            return super()._insert_objects(root, paths, loaded_at)
        finally:
            self.duckdb_seconds += time.perf_counter() - started

    def _write_manifest(self, keys: Sequence[str], loaded_at: dt.datetime) -> None:
        started = time.perf_counter()
        try:
            super()._write_manifest(keys, loaded_at)
        finally:
            self.duckdb_seconds += time.perf_counter() - started


def read_json_ceiling(files: list[Path]) -> float:
    """Seconds for one DuckDB read_json of local files into a fresh in-memory table."""
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in BRONZE_COLUMNS.items()) + "}"
    with duckdb.connect() as con:
        started = time.perf_counter()
        # The column spec is the loader's own constant; the file list is bound.
        source = f"read_json(?, format = 'newline_delimited', columns = {columns})"
        con.execute(f"create table t as select * from {source}", [[str(f) for f in files]])  # noqa: S608
        return time.perf_counter() - started


def run_loader_suite(workdir: Path, *, sizes: LoaderSizes) -> list[ResultRow]:
    objects = bronze_objects(sizes.rows, sizes.rows_per_object)
    s3 = S3Server(workdir / "s3")
    try:
        s3.start()
        client = minio_client(s3.endpoint, s3.access_key, s3.secret_key)
        client.make_bucket(BUCKET)
        store = S3ObjectStore(client, BUCKET)
        upload(store, objects)
        timed = TimedStore(store)
        with duckdb.connect(str(workdir / "loader.duckdb")) as con:
            loader = TimedLoader(con, timed)
            started = time.perf_counter()
            result = loader.load_new()
            total = time.perf_counter() - started
            (loaded,) = con.execute("select count(*) from bronze.raw_ticks").fetchone() or (0,)
        if loaded != sizes.rows or result.rows != sizes.rows:
            raise RuntimeError(f"the loader loaded {loaded} rows; {sizes.rows} were written to bronze")
        local_files = sorted((s3.workdir.resolve() / "data" / BUCKET / "bronze").rglob("*.ndjson"))
        ceiling_seconds = read_json_ceiling(local_files)
    finally:
        s3.stop()

    sample = [orjson.loads(line) for o in objects for line in o.body.splitlines()][: sizes.naive_sample]
    with duckdb.connect() as con:
        naive_seconds = insert_row_by_row(con, "naive_ticks", sample)
    naive_rate = len(sample) / naive_seconds
    download = timed.download_wall_seconds()
    duckdb_part = loader.duckdb_seconds
    ceiling_rate = sizes.rows / ceiling_seconds
    shape = f"{sizes.rows} ticks in {len(objects)} objects of {sizes.rows_per_object}"
    naive_name = f"row-by-row INSERT (extrapolated from {len(sample)} rows)"
    return [
        result_row(
            SUITE,
            "bulk_load_rows_per_s",
            sizes.rows / total,
            "rows/s",
            target=TARGET,
            baseline=naive_rate,
            baseline_name=naive_name,
            ceiling=ceiling_rate,
            ceiling_name="one DuckDB read_json of the same files on local disk",
            notes=f"DuckDBBronzeLoader.load_new from the real S3 server, {shape}",
        ),
        result_row(SUITE, "bulk_load_seconds", total, "s", notes=shape),
        result_row(SUITE, "bulk_load_list_seconds", timed.list_seconds, "s", notes="listing bronze/"),
        result_row(
            SUITE,
            "bulk_load_download_seconds",
            download,
            "s",
            notes=f"wall time with a download running ({loader.download_threads} threads), "
            "overlapping the inserts",
        ),
        result_row(
            SUITE,
            "bulk_load_duckdb_seconds",
            duckdb_part,
            "s",
            notes="time in the loader's read_json + insert and manifest statements "
            f"(chunks of {loader.chunk_objects} objects, groups of up to {loader.group_bytes >> 20} MiB)",
        ),
        result_row(
            SUITE,
            "bulk_load_duckdb_rows_per_s",
            sizes.rows / duckdb_part,
            "rows/s",
            target=TARGET,
            baseline=naive_rate,
            baseline_name=naive_name,
            ceiling=ceiling_rate,
            ceiling_name="one DuckDB read_json of the same files on local disk",
            notes="the loader's DuckDB part alone",
        ),
        result_row(
            SUITE,
            "row_by_row_insert_rows_per_s",
            naive_rate,
            "rows/s",
            notes=f"baseline: one INSERT per row, {len(sample)}-row sample",
        ),
        result_row(
            SUITE,
            "row_by_row_insert_extrapolated_seconds",
            sizes.rows / naive_rate,
            "s",
            notes=f"EXTRAPOLATED to {sizes.rows} rows from the {len(sample)}-row sample",
        ),
    ]
