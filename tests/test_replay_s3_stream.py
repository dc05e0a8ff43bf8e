"""A replay from S3 streams the object in ranged GETs (a window at a time) and yields exactly what the same
file yields from disk, gzip included; a missing object is refused naming the URI."""

from __future__ import annotations

import gzip
import io
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from minio import Minio

from marketpulse.contract.ticks import Tick
from marketpulse.sources.base import BadRecord
from marketpulse.sources.replay import ReplaySource, local_opener
from marketpulse.storage import StorageUnavailableError
from marketpulse.storage.ranged import RangedObjectReader
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.http_faults import HttpFaultProxy

pytestmark = pytest.mark.s3


def identity(record: Tick | BadRecord) -> tuple[object, ...]:
    if isinstance(record, Tick):
        return ("tick", record.symbol, record.price, record.size, record.event_time_us, record.seq)
    return ("bad", record.reason, record.raw, record.size)


def ndjson(lines: int) -> bytes:
    rows = [
        orjson.dumps({"symbol": "AAPL", "timestamp": 1767623400000 + i, "price": 100 + i % 7, "size": i})
        if i % 50
        else b"not json"
        for i in range(lines)
    ]
    return b"\n".join(rows) + b"\n"


@pytest.fixture
def client(s3_server: S3Server) -> Minio:
    return minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)


@pytest.mark.parametrize("name", ["ticks.ndjson", "ticks.ndjson.gz"])
def test_a_replay_from_s3_in_small_windows_yields_what_the_file_yields_from_disk(
    client: Minio, tmp_path: Path, name: str
) -> None:
    bucket = f"mp-replay-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    body = ndjson(2000)
    data = gzip.compress(body) if name.endswith(".gz") else body
    client.put_object(bucket, name, io.BytesIO(data), len(data))
    local = tmp_path / name
    local.write_bytes(data)
    readers: list[RangedObjectReader] = []

    def s3_opener(uri: str) -> RangedObjectReader:
        # A window far smaller than a line block: lines and gzip members span many GETs.
        readers.append(RangedObjectReader(client, bucket, name, window=1000))
        return readers[-1]

    from_s3 = [identity(r) for batch in ReplaySource(name, s3_opener, speed=0).batches() for r in batch]
    from_disk = [
        identity(r) for batch in ReplaySource(str(local), local_opener, speed=0).batches() for r in batch
    ]
    assert len(from_s3) == 2000
    assert from_s3 == from_disk
    assert readers[0].size == len(data)
    assert readers[0].read(1) == b""  # read to the end


@pytest.fixture
def throttled(client: Minio, s3_server: S3Server) -> Iterator[tuple[HttpFaultProxy, Minio, str, bytes]]:
    """A 3000-byte object in a fresh bucket, and a client that reaches it through a proxy that can
    answer for S3 (503 SlowDown)."""
    bucket, data = f"mp-replay-{uuid.uuid4().hex[:8]}", ndjson(60)[:3000]
    client.make_bucket(bucket)
    client.put_object(bucket, "ticks.ndjson", io.BytesIO(data), len(data))
    with HttpFaultProxy("127.0.0.1", s3_server.port) as proxy:
        yield proxy, minio_client(proxy.endpoint, s3_server.access_key, s3_server.secret_key), bucket, data


def test_a_window_throttled_twice_is_fetched_again_and_the_stream_is_whole(
    throttled: tuple[HttpFaultProxy, Minio, str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    proxy, client, bucket, data = throttled
    caplog.set_level(logging.WARNING, logger="marketpulse.storage.ranged")
    reader = RangedObjectReader(client, bucket, "ticks.ndjson", window=1000)
    proxy.fail(times=2, status=503, methods={"GET"}, query="ticks.ndjson")
    assert b"".join(iter(lambda: reader.read(), b"")) == data
    assert proxy.answered == 2
    retries = [r for r in caplog.records if r.getMessage() == "S3 read failed; retrying"]
    assert [(r.object, r.offset, r.attempt, r.retry_in_s) for r in retries] == [  # type: ignore[attr-defined]
        (f"s3://{bucket}/ticks.ndjson", 0, 1, 0.5),
        (f"s3://{bucket}/ticks.ndjson", 0, 2, 1.0),
    ]
    assert all("SlowDown" in r.error for r in retries)  # type: ignore[attr-defined]


def test_a_window_that_stays_throttled_gives_up_after_its_tries_naming_the_object(
    throttled: tuple[HttpFaultProxy, Minio, str, bytes],
) -> None:
    proxy, client, bucket, data = throttled
    reader = RangedObjectReader(client, bucket, "ticks.ndjson", window=1000, attempts=3)
    proxy.fail(times=1000, status=503, methods={"GET"}, query="ticks.ndjson")
    with pytest.raises(StorageUnavailableError, match=rf"^s3://{bucket}/ticks\.ndjson: .*SlowDown"):
        reader.read()
    assert proxy.answered == 3, "three tries, then the error"
    proxy.clear()
    assert b"".join(iter(lambda: reader.read(), b"")) == data, "a later read fetches the same window again"


def test_a_missing_object_is_refused_naming_the_uri(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketpulse.ingest.main import s3_opener

    for key, value in s3_server.settings().items():
        monkeypatch.setenv(key, value)
    with pytest.raises(
        ValueError, match=r"cannot read s3://no-such-bucket-x/ticks\.ndjson: NoSuch(Key|Bucket)"
    ):
        s3_opener("s3://no-such-bucket-x/ticks.ndjson")
