"""Per-pipeline S3 accounts on the real versitygw (internal IAM): each pipeline's writer reaches its own
bucket only, its reader may only read it, and once removed their keys are refused."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from minio import Minio
from minio.error import S3Error

from marketpulse.operator.backends import buckets, s3_policies
from marketpulse.operator.backends.s3_iam import Account, AdminApiError, access_key, new_secret_key
from marketpulse.operator.backends.s3_iam_versitygw import VersityGwAccounts, VersityGwAdmin
from marketpulse.storage.s3 import S3ObjectStore, minio_client
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = pytest.mark.s3


@dataclass
class Tenant:
    bucket: str
    writer: Account
    reader: Account

    def client(self, server: S3Server, account: Account) -> Minio:
        return minio_client(server.endpoint, account.access_key, account.secret_key)


def _tenant(uid: str) -> Tenant:
    bucket = f"mp-acct-{uuid.uuid4().hex[:10]}"
    return Tenant(
        bucket,
        Account("writer", access_key(uid, bucket, "writer"), new_secret_key(), fresh=True),
        Account("reader", access_key(uid, bucket, "reader"), new_secret_key(), fresh=True),
    )


@pytest.fixture
def root(s3_server: S3Server) -> Minio:
    return minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)


@pytest.fixture
def store(s3_server: S3Server, root: Minio) -> Iterator[VersityGwAccounts]:
    admin = VersityGwAdmin(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    yield VersityGwAccounts(admin, root)
    admin.close()


@pytest.fixture
def tenants(root: Minio, store: VersityGwAccounts) -> list[Tenant]:
    """Pipelines A and B, each with its bucket made as the operator makes it, and its accounts."""
    made = [_tenant(str(uuid.uuid4())), _tenant(str(uuid.uuid4()))]
    for tenant in made:
        buckets.ensure_bucket(root, tenant.bucket, 7, buckets.Ownership(owner=f"team/{tenant.bucket}"))
        assert store.ensure(tenant.bucket, tenant.writer, tenant.reader)
    return made


def refused(call: Callable[[], Any]) -> str:
    with pytest.raises(S3Error) as raised:
        call()
    return str(raised.value.code)


def put(client: Minio, bucket: str, key: str, body: bytes = b"tick\n") -> None:
    client.put_object(bucket, key, io.BytesIO(body), len(body))


def read(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_a_pipelines_writer_reads_and_writes_its_bucket_and_nothing_else(
    s3_server: S3Server, root: Minio, tenants: list[Tenant]
) -> None:
    a, b = tenants
    writer = a.client(s3_server, a.writer)
    # What the workloads do, through their own store: put, get, list, exists.
    store = S3ObjectStore(writer, a.bucket)
    store.put("bronze/ticks/dt=2026-12-03/partition=0/0-1.ndjson", b"tick\n")
    assert store.get("bronze/ticks/dt=2026-12-03/partition=0/0-1.ndjson") == b"tick\n"
    assert [o.key for o in store.list("bronze/")] == ["bronze/ticks/dt=2026-12-03/partition=0/0-1.ndjson"]
    writer.remove_object(a.bucket, "bronze/ticks/dt=2026-12-03/partition=0/0-1.ndjson")

    put(root, b.bucket, "theirs.json")
    assert refused(lambda: read(writer, b.bucket, "theirs.json")) == "AccessDenied"
    assert refused(lambda: put(writer, b.bucket, "mine.json")) == "AccessDenied"
    assert refused(lambda: list(writer.list_objects(b.bucket))) == "AccessDenied"
    assert refused(lambda: writer.remove_object(b.bucket, "theirs.json")) == "AccessDenied"
    assert b.bucket not in {x.name for x in writer.list_buckets()}
    assert {x.name for x in writer.list_buckets()} <= {a.bucket}
    assert refused(lambda: writer.make_bucket(f"mp-acct-new-{uuid.uuid4().hex[:8]}")) == "AccessDenied"


def test_a_pipelines_writer_cannot_lift_its_own_limits(s3_server: S3Server, tenants: list[Tenant]) -> None:
    a, _ = tenants
    writer = a.client(s3_server, a.writer)
    assert refused(lambda: writer.delete_bucket_policy(a.bucket)) == "AccessDenied"
    empty = '{"Version":"2012-10-17","Statement":[]}'
    assert refused(lambda: writer.set_bucket_policy(a.bucket, empty)) == "AccessDenied"
    assert refused(lambda: writer.remove_bucket(a.bucket)) == "AccessDenied"


def test_a_pipelines_reader_reads_its_objects_but_may_not_put_or_delete(
    s3_server: S3Server, root: Minio, tenants: list[Tenant]
) -> None:
    a, b = tenants
    put(a.client(s3_server, a.writer), a.bucket, "gold/ohlc_daily.parquet", b"parquet")
    reader = a.client(s3_server, a.reader)
    assert read(reader, a.bucket, "gold/ohlc_daily.parquet") == b"parquet"
    assert [o.object_name for o in reader.list_objects(a.bucket, recursive=True)] == [
        "gold/ohlc_daily.parquet"
    ]
    assert reader.stat_object(a.bucket, "gold/ohlc_daily.parquet").size == len(b"parquet")
    assert refused(lambda: put(reader, a.bucket, "gold/ohlc_daily.parquet", b"forged")) == "AccessDenied"
    assert refused(lambda: reader.remove_object(a.bucket, "gold/ohlc_daily.parquet")) == "AccessDenied"
    assert read(root, a.bucket, "gold/ohlc_daily.parquet") == b"parquet"
    put(root, b.bucket, "gold/theirs.parquet")
    assert refused(lambda: read(reader, b.bucket, "gold/theirs.parquet")) == "AccessDenied"


def test_accounts_in_place_are_only_read_and_a_replaced_secret_key_is_taken(
    s3_server: S3Server, store: VersityGwAccounts, tenants: list[Tenant]
) -> None:
    a, _ = tenants
    assert not store.ensure(a.bucket, a.writer, a.reader)
    renewed = Account("writer", a.writer.access_key, new_secret_key())
    assert store.ensure(a.bucket, renewed, a.reader)
    put(a.client(s3_server, renewed), a.bucket, "after-renewal.json")
    assert refused(lambda: put(a.client(s3_server, a.writer), a.bucket, "x.json")) == "SignatureDoesNotMatch"


def test_after_removal_the_pipelines_keys_are_refused_and_the_other_pipeline_keeps_working(
    s3_server: S3Server, root: Minio, store: VersityGwAccounts, tenants: list[Tenant]
) -> None:
    a, b = tenants
    store.remove(a.bucket, a.writer.access_key, a.reader.access_key)
    for account in (a.writer, a.reader):
        assert refused(lambda acc=account: list(a.client(s3_server, acc).list_objects(a.bucket))) == (
            "InvalidAccessKeyId"
        )
    # The bucket (kept under Retain) is root's alone again; the policy of the operator is gone.
    assert refused(lambda: root.get_bucket_policy(a.bucket)) == "NoSuchBucketPolicy"
    put(b.client(s3_server, b.writer), b.bucket, "still-mine.json")
    store.remove(a.bucket, a.writer.access_key, a.reader.access_key)  # again: nothing left, no error


def test_a_bucket_policy_that_is_not_the_operators_is_kept_on_removal(
    root: Minio, store: VersityGwAccounts, tenants: list[Tenant]
) -> None:
    a, b = tenants
    # Someone else's policy on the bucket (e.g. an adopted bucket): removal leaves it alone.
    foreign = s3_policies.bucket_policy(a.bucket, b.writer.access_key, b.reader.access_key)
    root.set_bucket_policy(a.bucket, json.dumps(foreign))
    store.remove(a.bucket, a.writer.access_key, a.reader.access_key)
    assert s3_policies.same_policy(json.loads(root.get_bucket_policy(a.bucket)), foreign)


def test_the_admin_api_refuses_an_account_that_is_not_an_admin(
    s3_server: S3Server, tenants: list[Tenant]
) -> None:
    a, _ = tenants
    admin = VersityGwAdmin(s3_server.endpoint, a.writer.access_key, a.writer.secret_key)
    with pytest.raises(AdminApiError) as refused_admin:
        admin.list_users()
    admin.close()
    assert refused_admin.value.status == 403
    assert str(refused_admin.value).startswith("S3 admin API list-users: HTTP 403")
