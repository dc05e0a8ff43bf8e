"""Is a child already as desired? Decided from what the server has: an unchanged pipeline writes nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubernetes.utils import parse_quantity

from marketpulse.operator.names import APPLIED_HASH


def manifest_hash(manifest: dict[str, Any]) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest annotated with its own hash (computed before the annotation is added)."""
    digest = manifest_hash(manifest)
    meta = manifest["metadata"]
    return {
        **manifest,
        "metadata": {**meta, "annotations": {**meta.get("annotations", {}), APPLIED_HASH: digest}},
    }


def _same_quantity(a: str, b: str) -> bool:
    try:
        return bool(parse_quantity(a) == parse_quantity(b))
    except ValueError:
        return False


def covers(live: Any, desired: Any) -> bool:
    """True when every field of `desired` has the same value in `live`.

    Fields the server adds (defaults, status, managedFields) are ignored; lists must match item by
    item, so a removed env var or port counts as a difference; quantities compare by value
    because the server rewrites some spellings.
    """
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and covers(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(covers(x, y) for x, y in zip(live, desired, strict=True))
        )
    if desired == live:
        return True
    return isinstance(desired, str) and isinstance(live, str) and _same_quantity(desired, live)


def up_to_date(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """`desired` carries its hash annotation; keys removed from the spec change the hash, and
    fields someone else changed (drift) fail `covers`: either way the child is applied again."""
    if live is None:
        return False
    hashes_match = (
        live.get("metadata", {}).get("annotations", {}).get(APPLIED_HASH)
        == (desired["metadata"]["annotations"][APPLIED_HASH])
    )
    return hashes_match and covers(live, desired)
