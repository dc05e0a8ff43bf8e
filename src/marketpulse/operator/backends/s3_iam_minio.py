"""MinIO's IAM through `minio.MinioAdmin`: a user per account, and a policy per account naming only
the pipeline's bucket, attached to it.

MinIO never hands a secret key back, so an existing user keeps its key unless the operator has just
made a new one (its Secret was missing): then `user_add`, which MinIO treats as an update, sets it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, TypeVar

from minio.error import MinioAdminException

from marketpulse.operator.backends import s3_policies
from marketpulse.operator.backends.s3_iam import Account, AdminApiError
from marketpulse.operator.metrics import BACKEND_WRITES

T = TypeVar("T")
NO_SUCH_USER = "XMinioAdminNoSuchUser"
NO_SUCH_POLICY = "XMinioAdminNoSuchPolicy"


class MinioAdminApi(Protocol):
    """The part of `minio.MinioAdmin` used here (a test passes a fake of this shape)."""

    def user_info(self, access_key: str) -> str: ...
    def user_add(self, access_key: str, secret_key: str) -> str: ...
    def user_remove(self, access_key: str) -> str: ...
    def policy_info(self, policy_name: str) -> str: ...
    def policy_add(
        self, policy_name: str, policy_file: Any = None, policy: dict[Any, Any] | None = None
    ) -> str: ...
    def policy_remove(self, policy_name: str) -> str: ...
    def attach_policy(
        self, policies: list[str], user: str | None = None, group: str | None = None
    ) -> str: ...


def policy_name(account: Account | str) -> str:
    key = account if isinstance(account, str) else account.access_key
    return f"marketpulse-{key}"


def _code(exc: MinioAdminException) -> str:
    try:
        return str(json.loads(exc._body).get("Code", ""))
    except (ValueError, AttributeError):
        return ""


def _status(exc: MinioAdminException) -> int:
    try:
        return int(exc._code)
    except (TypeError, ValueError):
        return 0


def _admin(operation: str, call: Callable[[], T], missing: str | None = None) -> T | None:
    """`call()`, None when MinIO says the thing is `missing`; any other refusal as AdminApiError."""
    try:
        return call()
    except MinioAdminException as exc:
        code = _code(exc)
        if missing is not None and code == missing:
            return None
        raise AdminApiError(operation, _status(exc), code) from None


class MinioAccounts:
    """`AccountStore` on MinIO."""

    def __init__(self, admin: MinioAdminApi) -> None:
        self.admin = admin

    def ensure(self, bucket: str, writer: Account, reader: Account) -> bool:
        wrote = False
        for account in (writer, reader):
            wrote = self._ensure_one(bucket, account) or wrote
        return wrote

    def _ensure_one(self, bucket: str, account: Account) -> bool:
        key, name = account.access_key, policy_name(account)
        wrote = False
        raw = _admin("user-info", lambda: self.admin.user_info(key), NO_SUCH_USER)
        info: dict[str, Any] = json.loads(raw) if raw else {}
        if raw is None or account.fresh:
            _admin("add-user", lambda: self.admin.user_add(key, account.secret_key))
            BACKEND_WRITES.labels("s3", "account").inc()
            wrote = True
        wanted = s3_policies.user_policy(bucket, account.access)
        current = _admin("policy-info", lambda: self.admin.policy_info(name), NO_SUCH_POLICY)
        if not s3_policies.same_policy(json.loads(current) if current else None, wanted):
            _admin("add-policy", lambda: self.admin.policy_add(name, policy=wanted))
            BACKEND_WRITES.labels("s3", "account_policy").inc()
            wrote = True
        attached = {p.strip() for p in str(info.get("policyName") or "").split(",") if p.strip()}
        if name not in attached:
            _admin("attach-policy", lambda: self.admin.attach_policy([name], user=key))
            wrote = True
        return wrote

    def remove(self, bucket: str, writer_key: str, reader_key: str) -> None:
        for key in (writer_key, reader_key):
            # The user first: MinIO refuses to remove a policy still attached to one.
            _admin("remove-user", partial(self.admin.user_remove, key), NO_SUCH_USER)
            _admin("remove-policy", partial(self.admin.policy_remove, policy_name(key)), NO_SUCH_POLICY)
