"""Where components are cached (per machine) and where runtime state lives (per checkout)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Built binaries and downloaded jars, shared by every checkout on this machine."""
    explicit = os.environ.get("MARKETPULSE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "marketpulse"


def state_dir(root: Path | None = None) -> Path:
    """Runtime data of `marketpulse dev` (logs, data directories, dev.env); git-ignored."""
    explicit = os.environ.get("MARKETPULSE_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return (root or Path.cwd()) / ".marketpulse"
