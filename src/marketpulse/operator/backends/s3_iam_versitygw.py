"""versitygw's internal IAM (`--iam-dir`) through its admin API, and a bucket policy per pipeline.

The admin API is a handful of `PATCH` routes (`/create-user` with an XML `Account` body,
`/update-user?access=`, `/delete-user?access=`, `/list-users`), SigV4-signed for service `s3` with
an admin account's (here: root's) keys, served on the S3 port unless versitygw runs with
`--admin-port`. Accounts get the role `user`: such an account lists only buckets it owns, may create
none, and reaches a bucket that has a policy only as far as that policy grants. The bucket stays
root's (the operator's), and its policy names the pipeline's writer and reader by access key.

Requests are signed with the minio SDK's SigV4 signer: botocore is not in the operator's image.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit
from xml.sax.saxutils import escape

import httpx
from minio import Minio
from minio.credentials.credentials import Credentials
from minio.error import S3Error
from minio.signer import sign_v4_s3

from marketpulse.operator.backends import s3_policies
from marketpulse.operator.backends.s3_iam import Account, AdminApiError
from marketpulse.operator.metrics import BACKEND_WRITES

ROLE = "user"
_NO_POLICY = {"NoSuchBucketPolicy"}
_NO_BUCKET = {"NoSuchBucket"}


class VersityGwAdmin:
    """The admin API's requests, signed with an admin account's keys."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.credentials = Credentials(access_key, secret_key)
        self.region = region
        self.http = httpx.Client(timeout=timeout, transport=transport)

    def build(
        self, path: str, query: dict[str, str] | None = None, body: bytes = b"", now: datetime | None = None
    ) -> httpx.Request:
        """The signed request (pure but for the clock, which a test passes in)."""
        now = now or datetime.now(UTC)
        encoded = urlencode(sorted((query or {}).items()), quote_via=quote)
        url = urlsplit(f"{self.endpoint}{path}" + (f"?{encoded}" if encoded else ""))
        sha = hashlib.sha256(body).hexdigest()
        headers: dict[str, str | list[str] | tuple[str]] = {
            "Host": url.netloc,
            "x-amz-content-sha256": sha,
            "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
        }
        signed = sign_v4_s3(
            method="PATCH",
            url=url,
            region=self.region,
            headers=headers,
            credentials=self.credentials,
            content_sha256=sha,
            date=now,
        )
        return httpx.Request(
            "PATCH", url.geturl(), headers={k: str(v) for k, v in signed.items()}, content=body
        )

    def call(
        self, operation: str, path: str, query: dict[str, str] | None = None, body: bytes = b""
    ) -> bytes:
        response = self.http.send(self.build(path, query, body))
        if response.status_code >= 300:
            raise AdminApiError(operation, response.status_code, _error_code(response.content))
        return response.content

    def list_users(self) -> dict[str, str]:
        """Access key -> secret key of every account but root."""
        # The platform's own S3 server answers here, never an endpoint a spec chose.
        root = ET.fromstring(self.call("list-users", "/list-users"))  # noqa: S314
        return {
            (a.findtext("Access") or ""): (a.findtext("Secret") or "")
            for a in root.iter()
            if a.tag.rpartition("}")[2] == "Accounts"  # one element per account, namespaced or not
        }

    def create_user(self, access_key: str, secret_key: str, role: str = ROLE) -> None:
        body = (
            f"<Account><Access>{escape(access_key)}</Access><Secret>{escape(secret_key)}</Secret>"
            f"<Role>{escape(role)}</Role></Account>"
        )
        self.call("create-user", "/create-user", body=body.encode())

    def update_secret(self, access_key: str, secret_key: str) -> None:
        body = f"<MutableProps><Secret>{escape(secret_key)}</Secret></MutableProps>"
        self.call("update-user", "/update-user", {"access": access_key}, body.encode())

    def delete_user(self, access_key: str) -> None:
        self.call("delete-user", "/delete-user", {"access": access_key})

    def close(self) -> None:
        self.http.close()


def _error_code(body: bytes) -> str:
    try:
        return ET.fromstring(body).findtext("Code") or ""  # noqa: S314 - the platform's own server
    except ET.ParseError:
        return ""


class VersityGwAccounts:
    """`AccountStore` on versitygw: accounts by the admin API, the grant by the bucket's policy
    (set with `root`, the operator's S3 client)."""

    def __init__(self, admin: VersityGwAdmin, root: Minio) -> None:
        self.admin, self.root = admin, root

    def ensure(self, bucket: str, writer: Account, reader: Account) -> bool:
        wrote = False
        existing = self.admin.list_users()
        for account in (writer, reader):
            if account.access_key not in existing:
                self.admin.create_user(account.access_key, account.secret_key)
            elif existing[account.access_key] != account.secret_key:
                # The Secret is the source of truth: someone replaced its key, or the IAM was restored.
                self.admin.update_secret(account.access_key, account.secret_key)
            else:
                continue
            BACKEND_WRITES.labels("s3", "account").inc()
            wrote = True
        wanted = s3_policies.bucket_policy(bucket, writer.access_key, reader.access_key)
        if not s3_policies.same_policy(self._policy(bucket), wanted):
            self.root.set_bucket_policy(bucket, json.dumps(wanted))
            BACKEND_WRITES.labels("s3", "bucket_policy").inc()
            wrote = True
        return wrote

    def _policy(self, bucket: str) -> s3_policies.Policy | None:
        try:
            found: s3_policies.Policy = json.loads(self.root.get_bucket_policy(bucket))
        except S3Error as exc:
            if exc.code in _NO_POLICY:
                return None
            raise
        return found

    def remove(self, bucket: str, writer_key: str, reader_key: str) -> None:
        # Only the policy the operator set: a Retained bucket keeps any other, and it goes before the
        # accounts it names, which the server would otherwise refuse in a policy set anew.
        try:
            if s3_policies.same_policy(
                self._policy(bucket), s3_policies.bucket_policy(bucket, writer_key, reader_key)
            ):
                self.root.delete_bucket_policy(bucket)
                BACKEND_WRITES.labels("s3", "bucket_policy").inc()
        except S3Error as exc:
            if exc.code not in _NO_BUCKET:
                raise
        for key in (writer_key, reader_key):
            self.admin.delete_user(key)  # versitygw answers 200 for an account it does not have
