"""The local S3 server is real: the minio SDK creates a versioned bucket, puts, lists and gets."""

from __future__ import annotations

import io
import uuid

import pytest
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule
from minio.versioningconfig import VersioningConfig

from marketpulse_dev.localenv.s3 import S3Server

pytestmark = pytest.mark.s3


def _client(server: S3Server) -> Minio:
    return Minio(
        server.endpoint.removeprefix("http://"),
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=False,
        region="us-east-1",
    )


def test_objects_put_into_a_versioned_bucket_are_listed_and_read_back(s3_server: S3Server) -> None:
    client = _client(s3_server)
    bucket = f"smoke-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    assert client.get_bucket_versioning(bucket).status == ENABLED

    key = "bronze/ticks/dt=2026-11-26/partition=0/0-1.ndjson"
    for body in (b'{"symbol":"AAPL"}\n', b'{"symbol":"MSFT"}\n'):
        client.put_object(bucket, key, io.BytesIO(body), len(body))

    assert [o.object_name for o in client.list_objects(bucket, prefix="bronze/", recursive=True)] == [key]
    response = client.get_object(bucket, key)
    try:
        assert response.read() == b'{"symbol":"MSFT"}\n'
    finally:
        response.close()
        response.release_conn()
    versions = list(client.list_objects(bucket, prefix=key, include_version=True))
    assert len(versions) == 2


def test_the_server_answers_lifecycle_rules_with_an_s3_error_not_a_crash(s3_server: S3Server) -> None:
    # versitygw does not implement bucket lifecycle; the operator must report that as a condition.
    client = _client(s3_server)
    bucket = f"smoke-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    rule = Rule(
        ENABLED, rule_filter=Filter(prefix="bronze/"), rule_id="retention", expiration=Expiration(days=30)
    )
    with pytest.raises(S3Error) as refused:
        client.set_bucket_lifecycle(bucket, LifecycleConfig([rule]))
    assert refused.value.code == "NotImplemented"
