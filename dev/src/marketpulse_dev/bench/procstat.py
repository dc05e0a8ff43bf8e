"""CPU time and memory high-water marks of process trees, from /proc and from wait4.

A process that outlives a measurement is measured as the difference of utime+stime of its tree
between two snapshots (/proc/<pid>/stat, which also counts children it has reaped). A child that
exits during one is reaped with `os.wait4`, which reports what it and its reaped children used
over its whole life and its peak resident set (the same figure as VmHWM).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces; the fields after it are fixed.
    return text.rsplit(")", 1)[-1].split()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (by parent pid), as /proc shows them now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of the live processes of the tree, plus what they reaped (cutime + cstime)."""
    total = 0
    for member in descendants(pid):
        fields = _stat_fields(member)
        if fields is not None:
            # After the ")" field 0 is the state: utime, stime, cutime, cstime are fields 11-14.
            total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set of one process (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


@dataclass(frozen=True)
class ExitUsage:
    """What a finished child used over its whole life."""

    returncode: int
    cpu_seconds: float
    max_rss_mib: float


def stop_and_measure(popen: subprocess.Popen[bytes], *, timeout: float = 60.0) -> ExitUsage:
    """SIGTERM a child (if still running), reap it with wait4 and return its resource usage."""
    if popen.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(signal.SIGTERM)
    return wait_and_measure(popen, timeout=timeout)


def wait_and_measure(popen: subprocess.Popen[bytes], *, timeout: float) -> ExitUsage:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
        if pid == popen.pid:
            break
        if time.monotonic() > deadline:
            popen.kill()
            pid, status, usage = os.wait4(popen.pid, 0)
            break
        time.sleep(0.05)
    popen.returncode = os.waitstatus_to_exitcode(status)
    return ExitUsage(popen.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
