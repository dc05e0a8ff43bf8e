"""The DuckDB transform's one-writer lease: a `flock` beside the database file, exclusive between
processes, naming its holder, and released by the kernel when its holder is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from marketpulse.transform.lease import FileLease


def hold_in_another_process(path: Path, holder: str) -> subprocess.Popen[str]:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from marketpulse.transform.lease import FileLease
        with FileLease(Path({str(path)!r}), {holder!r}).hold() as state:
            print("held" if state.held else "busy", flush=True)
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_lease_another_process_holds_is_refused_naming_the_holder_and_free_once_it_is_killed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warehouse.duckdb.lease"
    other = hold_in_another_process(path, "transform-7d9f/12/abcd")
    try:
        with FileLease(path, "transform-1c2e/34/ef01").hold() as refused:
            assert (refused.held, refused.holder) == (False, "transform-7d9f/12/abcd")
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=30)

    # kill -9 runs no cleanup: the kernel drops the lock with the process.
    with FileLease(path, "transform-1c2e/34/ef01").hold() as taken:
        assert (taken.held, taken.holder) == (True, "transform-1c2e/34/ef01")


def test_a_lease_released_at_the_end_of_a_cycle_is_taken_by_the_next_one_at_once(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb.lease"
    first, second = FileLease(path, "a/1/x"), FileLease(path, "b/2/y")
    with first.hold() as held:
        assert held.held
    started = time.monotonic()
    with second.hold() as next_cycle:
        assert next_cycle.held
    assert time.monotonic() - started < 1.0
