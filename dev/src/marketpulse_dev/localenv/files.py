"""Files that hold credentials (dev.env, the dev stack's state, a local run's Secret files)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, data: str | bytes) -> None:
    """Write `path` readable and writable by this user only, from its first byte.

    The bytes go into a new file that `os.open` creates with mode 0600 (the umask can only narrow
    it) beside `path`, which then replaces `path`: neither a new file nor one that existed with a
    wider mode is readable by anyone else while it holds `data`, and a reader sees the old content or
    the new, never half of it."""
    payload = data.encode() if isinstance(data, str) else data
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
        partial.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
