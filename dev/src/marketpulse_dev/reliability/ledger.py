"""The producer's ledger: one `producer_id seq` line per tick Kafka acknowledged (acks=all).

ingest writes it through a buffered file, so a process killed with SIGKILL can leave a last line
cut in half; only newline-terminated lines are acknowledged ticks.
"""

from __future__ import annotations

from pathlib import Path

Identity = tuple[str, int]


def read_ledger(path: Path) -> list[Identity]:
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    identities: list[Identity] = []
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise ValueError(f"{path}:{number}: expected 'producer_id seq', got {line!r}")
        identities.append((fields[0], int(fields[1])))
    return identities
