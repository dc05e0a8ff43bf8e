"""Failpoints for crash tests: `MARKETPULSE_FAILPOINTS="archive.after-object-write=3"` makes the
process die like `kill -9` the 3rd time it passes that point. Unset, a failpoint costs one dict lookup."""

from __future__ import annotations

import os

_EXIT_CODE = 137  # what a shell reports for a SIGKILLed process


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition("=")
        points[name.strip()] = int(count or 1)
    return points


_armed = _parse(os.environ.get("MARKETPULSE_FAILPOINTS", ""))


def failpoint(name: str) -> None:
    remaining = _armed.get(name)
    if remaining is None:
        return
    if remaining <= 1:
        os._exit(_EXIT_CODE)  # no cleanup, no flush, no commit: exactly what a crash leaves behind
    _armed[name] = remaining - 1
