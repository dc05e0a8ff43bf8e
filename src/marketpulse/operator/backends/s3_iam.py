"""Per-pipeline S3 accounts: what every S3 server's IAM must do, and the accounts' names.

One class per server (`s3_iam_versitygw`, `s3_iam_minio`) behind `AccountStore`. Each pipeline has
a writer (its workloads) and a reader (its dashboard), limited to its bucket by `s3_policies`. Access
keys are derived from the pipeline's uid and bucket, so the operator can always find them again;
secret keys are random and live only in the pipeline's Secrets and in the server.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from marketpulse.operator.backends.s3_policies import Access

# MinIO caps access keys at 20 characters and secret keys at 40; these fit both servers.
_KEY_HEX = 16
SECRET_BYTES = 20
_TOKEN = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Account:
    access: Access
    access_key: str
    secret_key: str = field(repr=False)
    # The secret key was just made (its Secret was missing): the server must take it even for an
    # account it already has, as it cannot always say which key it holds.
    fresh: bool = False


class AdminApiError(Exception):
    """The S3 server's admin API refused a request. Only the HTTP status and the server's error code
    (cleaned) are kept: its body is the server's own words and never reaches a status."""

    def __init__(self, operation: str, status: int, code: str = "") -> None:
        self.operation, self.status = operation, status
        self.code = _TOKEN.sub("", code)[:64]
        super().__init__(f"S3 admin API {operation}: HTTP {status}{f' {self.code}' if self.code else ''}")


def access_key(uid: str, bucket: str, access: Access) -> str:
    """`mpw<hex>` (writer) or `mpr<hex>` (reader): the same for the same pipeline and bucket; another
    pipeline of the same name (a new uid) gets other accounts."""
    digest = hashlib.sha256(f"{uid}/{bucket}".encode()).hexdigest()[:_KEY_HEX]
    return f"mp{access[0]}{digest}"


def new_secret_key() -> str:
    return secrets.token_hex(SECRET_BYTES)


class AccountStore(Protocol):
    """An S3 server's accounts: `ensure` and `remove` are idempotent and write only on change."""

    def ensure(self, bucket: str, writer: Account, reader: Account) -> bool:
        """Both accounts exist with these secret keys and are limited to `bucket`; True if anything
        had to be written."""
        ...

    def remove(self, bucket: str, writer_key: str, reader_key: str) -> None:
        """The accounts (and what grants them the bucket) are gone; missing ones are no error."""
        ...
