"""The policy documents that limit a pipeline's S3 accounts to its bucket: pure data, no I/O.

The writer may read, write and delete objects and list the bucket; the reader may only get objects
and list. Neither may change the bucket itself (policy, versioning, lifecycle, ACL, deletion): those
stay the operator's, so that a workload cannot lift its own limits or switch off the versioning that
keeps bronze recoverable. Bucket-level and object-level actions sit in separate statements, on the
ARN each applies to, because servers (AWS, versitygw) refuse an action with no resource of its kind.
"""

from __future__ import annotations

from typing import Any, Literal

Access = Literal["writer", "reader"]
Policy = dict[str, Any]

VERSION = "2012-10-17"
BUCKET_ACTIONS: dict[Access, tuple[str, ...]] = {
    "writer": ("s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"),
    "reader": ("s3:ListBucket",),
}
OBJECT_ACTIONS: dict[Access, tuple[str, ...]] = {
    "writer": (
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ),
    "reader": ("s3:GetObject",),
}


def _statements(bucket: str, access: Access, principal: str | None) -> list[Policy]:
    arns = {"Bucket": f"arn:aws:s3:::{bucket}", "Objects": f"arn:aws:s3:::{bucket}/*"}
    actions = {"Bucket": BUCKET_ACTIONS[access], "Objects": OBJECT_ACTIONS[access]}
    statements = []
    for scope in ("Bucket", "Objects"):
        statement: Policy = {
            "Sid": f"{access.capitalize()}{scope}",
            "Effect": "Allow",
            "Action": list(actions[scope]),
            "Resource": [arns[scope]],
        }
        if principal is not None:
            statement["Principal"] = {"AWS": [principal]}
        statements.append(statement)
    return statements


def user_policy(bucket: str, access: Access) -> Policy:
    """An IAM policy to attach to one account (MinIO): no principal, the account is the subject."""
    return {"Version": VERSION, "Statement": _statements(bucket, access, None)}


def bucket_policy(bucket: str, writer: str, reader: str) -> Policy:
    """The bucket policy naming both accounts by access key (versitygw, whose `user` accounts reach
    only what a bucket policy grants them once the bucket has one)."""
    return {
        "Version": VERSION,
        "Statement": _statements(bucket, "writer", writer) + _statements(bucket, "reader", reader),
    }


def _as_set(value: Any) -> frozenset[str]:
    # Servers hand back one-element lists as plain strings, and in their own order.
    return frozenset([value] if isinstance(value, str) else value or [])


def _canonical(policy: Policy) -> frozenset[tuple[Any, ...]]:
    canonical = set()
    for s in policy.get("Statement", []):
        principal = s.get("Principal") or {}
        principals = _as_set(principal.get("AWS") if isinstance(principal, dict) else principal)
        canonical.add((s.get("Effect"), _as_set(s.get("Action")), _as_set(s.get("Resource")), principals))
    return frozenset(canonical)


def same_policy(a: Policy | None, b: Policy | None) -> bool:
    """Whether two documents grant the same (Sids and formatting aside): a server that rewrites the
    document it stored does not make the operator write it again on every reconcile."""
    if a is None or b is None:
        return a is b
    return _canonical(a) == _canonical(b)
