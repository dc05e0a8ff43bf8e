"""The operator's bucket lifecycle on the real S3 server: set and read back where the server keeps lifecycle
rules; where it refuses them (versitygw answers NotImplemented), the bucket is still made and versioned and
the condition says which rules are missing and what they leave unbounded."""

from __future__ import annotations

import uuid

import pytest
from minio import Minio
from minio.error import S3Error

from marketpulse.operator.backends import buckets
from marketpulse.operator.provision import bucket_check
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture
def root(s3_server: S3Server) -> Minio:
    return minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)


def lifecycle_kept(client: Minio, bucket: str) -> bool:
    try:
        client.get_bucket_lifecycle(bucket)
    except S3Error as exc:
        if exc.code == "NotImplemented":
            return False
        raise
    return True


def test_the_operator_sets_the_bucket_lifecycle_or_reports_that_the_server_refuses_it(root: Minio) -> None:
    bucket = f"mp-life-{uuid.uuid4().hex[:10]}"
    outcome = buckets.ensure_bucket(root, bucket, 30, buckets.Ownership(owner=f"team/{bucket}"))
    assert root.get_bucket_versioning(bucket).status == "Enabled"
    if lifecycle_kept(root, bucket):
        # A server with lifecycle support: what it stored is exactly the operator's rules.
        assert "lifecycle" not in outcome.refused
        assert buckets.merged_lifecycle(root.get_bucket_lifecycle(bucket), 30) is None
        assert bucket_check(bucket, 30, outcome).reason == "BucketReady"
        return
    # versitygw: it refuses the very rules the operator sends, as an S3 error (not a crash, not a 400
    # about their XML), and the condition names what is left unbounded.
    with pytest.raises(S3Error) as refused:
        root.set_bucket_lifecycle(bucket, buckets.merged_lifecycle(None, 30))  # type: ignore[arg-type]
    assert refused.value.code == "NotImplemented"
    assert outcome.refused["lifecycle"] == "NotImplemented"
    check = bucket_check(bucket, 30, outcome)
    assert check.status == "True"
    assert check.reason == "LifecycleNotSupported"
    assert "old versions of latest/ and gold/ pile up" in check.message
