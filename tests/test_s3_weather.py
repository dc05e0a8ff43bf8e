"""S3 weather through the SDK, on the wire: throttling and server errors on every call the workloads
make (put, get, exists, list), with S3's XML, a load balancer's HTML page or no body at all, are
"unavailable" (wait and retry); an answer that says no (403) is not. Behind the faults is the real
S3 server, which answers once they clear."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from minio.error import S3Error

from marketpulse.storage import StorageUnavailableError
from marketpulse.storage.s3 import S3ObjectStore, minio_client
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.http_faults import Body, HttpFaultProxy

pytestmark = pytest.mark.s3

CALLS: dict[str, Callable[[S3ObjectStore], Any]] = {
    "put": lambda store: store.put("weather/new.txt", b"x"),
    "get": lambda store: store.get("weather/seed.txt"),
    "exists": lambda store: store.exists("weather/seed.txt"),
    "list": lambda store: [(o.key, o.size) for o in store.list("weather/seed")],
}

# What each call returns from the real server once the fault has passed.
AFTER: dict[str, Any] = {"put": None, "get": b"seed", "exists": True, "list": [("weather/seed.txt", 4)]}


@pytest.fixture
def proxied(s3_server: S3Server) -> Iterator[tuple[HttpFaultProxy, S3ObjectStore]]:
    bucket = f"weather-{uuid.uuid4().hex[:8]}"
    direct = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    direct.make_bucket(bucket)
    S3ObjectStore(direct, bucket).put("weather/seed.txt", b"seed")
    with HttpFaultProxy("127.0.0.1", s3_server.port) as proxy:
        yield (
            proxy,
            S3ObjectStore(minio_client(proxy.endpoint, s3_server.access_key, s3_server.secret_key), bucket),
        )


@pytest.mark.parametrize("body", ["xml", "html", "empty"])
@pytest.mark.parametrize("status", [503, 500])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_server_errors_of_any_body_are_unavailable_and_the_call_works_once_they_clear(
    proxied: tuple[HttpFaultProxy, S3ObjectStore], call: str, status: int, body: Body
) -> None:
    proxy, store = proxied
    proxy.fail(times=1, status=status, body=body)
    with pytest.raises(StorageUnavailableError) as raised:
        CALLS[call](store)
    after = CALLS[call](store)

    assert proxy.answered == 1
    assert len(str(raised.value)) <= 220, "an HTML page is cut to a line"
    assert after == AFTER[call]


def test_throttling_with_429_is_unavailable_too(proxied: tuple[HttpFaultProxy, S3ObjectStore]) -> None:
    proxy, store = proxied
    proxy.fail(times=1, status=429, body="empty")
    with pytest.raises(StorageUnavailableError):
        store.get("weather/seed.txt")


def test_a_refusal_is_not_an_outage(
    proxied: tuple[HttpFaultProxy, S3ObjectStore], s3_server: S3Server
) -> None:
    _, store = proxied
    wrong = S3ObjectStore(minio_client(s3_server.endpoint, s3_server.access_key, "not-the-key"), store.bucket)
    with pytest.raises(S3Error) as raised:
        wrong.get("weather/seed.txt")
    assert raised.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}


def test_a_bucket_gone_mid_run_is_waited_for(proxied: tuple[HttpFaultProxy, S3ObjectStore]) -> None:
    _, store = proxied
    missing = S3ObjectStore(store.client, f"gone-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StorageUnavailableError):
        missing.put("k", b"v")
