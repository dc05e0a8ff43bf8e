"""Fixtures of the Snowflake tests: a bucket in the session's S3 server and a fresh fakesnow database."""

from __future__ import annotations

import os
import uuid

import pytest
from snowflake_bronze import Bucket, Warehouse

from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

pytestmark = [pytest.mark.s3, pytest.mark.snowflake]


@pytest.fixture
def bucket(s3_server: S3Server) -> Bucket:
    client = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    name = f"sf-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)
    return Bucket(client, name, S3ObjectStore(client, name))


@pytest.fixture
def warehouse(fakesnow_server: FakeSnowflakeServer) -> Warehouse:
    # fakesnow creates the database on the first login that names it.
    return Warehouse(fakesnow_server, f"MP_{uuid.uuid4().hex[:8].upper()}")


@pytest.fixture(autouse=True)
def _no_stray_snowflake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own SNOWFLAKE_* variables must not leak into the settings under test.
    for name in [n for n in os.environ if n.startswith("SNOWFLAKE_")]:
        monkeypatch.delenv(name)
