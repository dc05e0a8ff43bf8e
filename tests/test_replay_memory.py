"""Replay streams its file: a file far larger than the memory bound replays whole, in a process whose
peak RSS stays under the bound (the old reader held about 2.4x the file, and a 200 MB file OOM-killed
ingest's pod at its 512Mi limit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.reliability

FILE_BYTES = 240 << 20
PEAK_RSS_BOUND = 150 << 20
LONG_LINES = 3  # each 5 MiB: dead-lettered by their first bytes, never held

# Counts what the source yields and reports the process's peak RSS (VmHWM) before and after.
REPLAY = textwrap.dedent(
    """
    import sys
    from marketpulse.sources.base import BadRecord
    from marketpulse.sources.replay import ReplaySource, local_opener

    def peak_kib():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise SystemExit("no VmHWM in /proc/self/status")

    before = peak_kib()
    ticks = bad = 0
    for batch in ReplaySource(sys.argv[1], local_opener, speed=0).batches():
        for record in batch:
            if isinstance(record, BadRecord):
                bad += 1
            else:
                ticks += 1
    print(ticks, bad, before * 1024, peak_kib() * 1024)
    """
)


def write_file(path: Path) -> int:
    """About FILE_BYTES of NDJSON ticks, with a few lines far over the line limit; returns the ticks."""
    ticks = 0
    with path.open("wb") as out:
        written = 0
        block: list[bytes] = []
        while written < FILE_BYTES:
            for _ in range(10_000):
                block.append(
                    orjson.dumps(
                        {
                            "symbol": "AAPL",
                            "timestamp": 1767623400000 + ticks,
                            "price": 100.0 + ticks % 97,
                            "size": ticks % 500,
                            "venue": "XNAS" * 20,
                        }
                    )
                )
                ticks += 1
            chunk = b"\n".join(block) + b"\n"
            out.write(chunk)
            written += len(chunk)
            block.clear()
            if ticks % 400_000 == 0 and ticks // 400_000 <= LONG_LINES:
                long = b'{"symbol":"AAPL","note":"' + b"n" * (5 << 20) + b'"}\n'
                out.write(long)
                written += len(long)
    return ticks


def test_a_replay_of_a_file_far_larger_than_the_bound_stays_under_it(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    ticks = write_file(path)
    size = path.stat().st_size
    assert size > PEAK_RSS_BOUND
    result = subprocess.run(
        [sys.executable, "-c", REPLAY, str(path)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    got_ticks, got_bad, at_start, peak = (int(v) for v in result.stdout.split())
    print(
        f"replayed {size / 2**20:.0f} MiB ({ticks} ticks): peak RSS {peak / 2**20:.0f} MiB "
        f"({at_start / 2**20:.0f} MiB after imports), bound {PEAK_RSS_BOUND / 2**20:.0f} MiB"
    )
    assert (got_ticks, got_bad) == (ticks, LONG_LINES)
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak} bytes for a {size}-byte file"
