"""A pipeline's own S3 accounts (MARKETPULSE_S3_IAM=versitygw|minio): issued when its bucket is
ready, kept in its Secrets, removed when it goes.

The writer's keys are in Secret `<pipeline>-s3` (ingest, archive, transform, alerts), the reader's in
`<pipeline>-s3-readonly` (dashboard); both are owned by the pipeline, so garbage collection removes
them with it. A Secret is created only when missing and never rewritten with a new key: the secret
key in it is the one the server must hold. A Secret of that name that is not the pipeline's (no
ownerReference to it) is never used or changed.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import urllib3
from minio.credentials.providers import StaticProvider
from minio.minioadmin import MinioAdmin

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.workloads import PipelineNames, issues_pipeline_credentials
from marketpulse.operator.backends.s3_iam import (
    Account,
    AccountStore,
    AdminApiError,
    access_key,
    new_secret_key,
)
from marketpulse.operator.backends.s3_iam_minio import MinioAccounts
from marketpulse.operator.backends.s3_iam_versitygw import VersityGwAccounts, VersityGwAdmin
from marketpulse.operator.backends.s3_policies import Access
from marketpulse.operator.deletion_budget import CleanupFailedError
from marketpulse.operator.kube import KubeError, Ref
from marketpulse.operator.reasons import short_reason
from marketpulse.operator.runtime import Runtime
from marketpulse.operator.settings import OperatorSettings
from marketpulse.operator.status import Check
from marketpulse.storage.s3 import minio_client

Adopt = Callable[[list[dict[str, Any]]], None]
COMPONENT = "storage"
log = logging.getLogger(__name__)


class SecretConflictError(Exception):
    """A Secret with the name of the pipeline's credentials is not the pipeline's, or not as made."""


@dataclass
class Issued:
    # None: issued (or not this pipeline's business); else why the accounts are not in place.
    failure: Check | None = None
    # The secret keys the pipeline's pods may hold: never to appear in what they report.
    secrets: tuple[str, ...] = ()


def account_store(settings: OperatorSettings) -> AccountStore:
    """The store for `settings.s3_iam`, signed with the operator's own (admin) S3 credentials."""
    endpoint = (settings.s3_admin_endpoint or settings.s3_endpoint).rstrip("/")
    access, secret, region = settings.s3_access_key, settings.s3_secret_key, settings.s3_region
    if settings.s3_iam == "minio":
        url = urlparse(endpoint)
        admin = MinioAdmin(
            endpoint=url.netloc,
            credentials=StaticProvider(access, secret),
            region=region,
            secure=url.scheme == "https",
            # As the operator's S3 client: short timeouts, no retries (the SDK's default waits 5 minutes).
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=3, read=30), retries=urllib3.Retry(total=0)
            ),
        )
        return MinioAccounts(admin)
    root = minio_client(settings.s3_endpoint, access, secret, region)
    return VersityGwAccounts(VersityGwAdmin(endpoint, access, secret, region), root)


def _store(runtime: Runtime) -> AccountStore:
    if runtime.s3_accounts is None:
        runtime.s3_accounts = account_store(runtime.settings)
    return runtime.s3_accounts


def applies(runtime: Runtime, pipeline: StockPipeline) -> bool:
    return issues_pipeline_credentials(pipeline.spec, runtime.settings.platform())


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(o.get("uid") == uid for o in obj.get("metadata", {}).get("ownerReferences") or [])


def _secret_manifest(
    names: PipelineNames, name: str, key: str, secret: str, keys: tuple[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": names.namespace, "labels": names.labels(COMPONENT)},
        "stringData": {keys[0]: key, keys[1]: secret},
    }


async def _account(runtime: Runtime, names: PipelineNames, uid: str, access: Access, adopt: Adopt) -> Account:
    """The account's keys from its Secret; a Secret made (with a new secret key) when missing."""
    platform = runtime.settings.platform()
    keys = (platform.s3_access_key_key, platform.s3_secret_key_key)
    name = names.s3_secret if access == "writer" else names.s3_readonly_secret
    key = access_key(uid, names.bucket, access)
    ref = Ref("v1", "Secret", names.namespace, name)
    found = await runtime.kube.get(ref)
    if found is None:
        manifest = _secret_manifest(names, name, key, new_secret_key(), keys)
        adopt([manifest])
        if await runtime.kube.create(manifest) is not None:
            return Account(access, key, manifest["stringData"][keys[1]], fresh=True)
        # Made meanwhile (another reconcile): read what it holds.
        found = await runtime.kube.get(ref)
        if found is None:
            raise KubeError(409, "Conflict", f"Secret {name} was created and deleted meanwhile")
    if not _owned_by(found, uid):
        raise SecretConflictError(
            f"Secret {name} exists and is not this pipeline's (no ownerReference to it)"
        )
    data = found.get("data") or {}
    try:
        secret = base64.b64decode(data[keys[1]]).decode()
        held = base64.b64decode(data.get(keys[0], "")).decode()
    except (KeyError, ValueError):
        raise SecretConflictError(f"Secret {name} has no valid {keys[1]}") from None
    if held != key:
        # Not rewritten (the operator creates Secrets, never patches them): deleting it issues anew.
        raise SecretConflictError(f"Secret {name} holds another access key; delete it to have a new one made")
    return Account(access, key, secret)


async def ensure(
    runtime: Runtime, pipeline: StockPipeline, names: PipelineNames, uid: str, adopt: Adopt
) -> Issued:
    """Issue the pipeline's writer and reader accounts, limited to its bucket (which must exist)."""
    if not applies(runtime, pipeline):
        return Issued()
    try:
        writer = await _account(runtime, names, uid, "writer", adopt)
        reader = await _account(runtime, names, uid, "reader", adopt)
    except SecretConflictError as exc:
        return Issued(Check.failed("CredentialsSecretConflict", str(exc)))
    except KubeError as exc:
        return Issued(Check.failed("CredentialsUnavailable", f"the pipeline's S3 credentials: {exc.reason}"))
    secrets = (writer.secret_key, reader.secret_key)
    store = _store(runtime)
    try:
        await runtime.blocking(lambda: store.ensure(names.bucket, writer, reader))
    except AdminApiError as exc:
        return Issued(Check.failed("S3AccountsFailed", f"bucket {names.bucket}: {exc}"), secrets)
    except Exception as exc:
        reason = f"bucket {names.bucket}: the pipeline's S3 accounts: {short_reason(exc)}"
        return Issued(Check.failed("S3Unavailable", reason), secrets)
    return Issued(secrets=secrets)


async def remove(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames, uid: str) -> None:
    """Remove the pipeline's accounts from the S3 server under either deletionPolicy (its Secrets go
    by garbage collection). Raises CleanupFailedError, sanitised, while that fails."""
    if not applies(runtime, pipeline) or not uid:
        return
    writer, reader = access_key(uid, names.bucket, "writer"), access_key(uid, names.bucket, "reader")
    store = _store(runtime)
    try:
        await runtime.blocking(lambda: store.remove(names.bucket, writer, reader))
    except AdminApiError as exc:
        raise CleanupFailedError(
            "S3AccountsFailed",
            f"S3 accounts {writer}, {reader}: {exc}",
            permanent=exc.status in (401, 403),
            remedy="give the operator's S3 credentials the server's admin role",
        ) from None
    except Exception as exc:  # the S3 server unreachable: it may come back
        raise CleanupFailedError(
            "StorageUnavailable", f"S3 accounts {writer}, {reader}: {short_reason(exc)}", permanent=False
        ) from None
    log.info("removed S3 accounts %s, %s", writer, reader)
