"""Replay streams its file: a file far larger than the memory bound replays whole, in a process whose
peak RSS stays under the bound (the old reader held about 2.4x the file, and a 200 MB file OOM-killed
ingest's pod at its 512Mi limit). The gzip case decompresses to more than that limit."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import BinaryIO

import orjson
import pytest

pytestmark = pytest.mark.reliability

PEAK_RSS_BOUND = 150 << 20
INGEST_MEMORY_LIMIT = 512 << 20  # its pod's limit (contract/workloads/render.py)
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


def write_ticks(out: BinaryIO, file_bytes: int) -> tuple[int, int]:
    """About `file_bytes` of NDJSON ticks (lines of about 1 KiB: the bytes, not the count, are what a reader
    that holds the file pays for), with a few lines far over the line limit; returns ticks and bytes."""
    ticks = written = 0
    padding = "XNAS" * 220
    while written < file_bytes:
        block = b"\n".join(
            orjson.dumps(
                {
                    "symbol": "AAPL",
                    "timestamp": 1767623400000 + ticks + i,
                    "price": 100.0 + (ticks + i) % 97,
                    "size": (ticks + i) % 500,
                    "venue": padding,
                }
            )
            for i in range(10_000)
        )
        ticks += 10_000
        out.write(block + b"\n")
        written += len(block) + 1
        if ticks % 50_000 == 0 and ticks // 50_000 <= LONG_LINES:
            long = b'{"symbol":"AAPL","note":"' + b"n" * (5 << 20) + b'"}\n'
            out.write(long)
            written += len(long)
    return ticks, written


@pytest.mark.parametrize(
    ("name", "data_bytes"),
    [("big.ndjson", 240 << 20), ("bigger-than-the-pod.ndjson.gz", INGEST_MEMORY_LIMIT + (64 << 20))],
)
def test_a_replay_of_a_file_far_larger_than_the_bound_stays_under_it(
    tmp_path: Path, name: str, data_bytes: int
) -> None:
    path = tmp_path / name
    with gzip.open(path, "wb", compresslevel=1) if name.endswith(".gz") else path.open("wb") as out:
        ticks, written = write_ticks(out, data_bytes)
    assert written > PEAK_RSS_BOUND
    result = subprocess.run(
        [sys.executable, "-c", REPLAY, str(path)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    got_ticks, got_bad, at_start, peak = (int(v) for v in result.stdout.split())
    print(
        f"replayed {name}: {written / 2**20:.0f} MiB of NDJSON ({path.stat().st_size / 2**20:.0f} MiB on "
        f"disk, {ticks} ticks): peak RSS {peak / 2**20:.0f} MiB ({at_start / 2**20:.0f} MiB after imports), "
        f"bound {PEAK_RSS_BOUND / 2**20:.0f} MiB"
    )
    assert (got_ticks, got_bad) == (ticks, LONG_LINES)
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak} bytes for {written} bytes of NDJSON"
