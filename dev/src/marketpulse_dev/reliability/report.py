"""What one scenario measured, and the log every scenario of a run is appended to (JSON lines)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class ScenarioResult:
    scenario: str
    acknowledged: int  # ticks in the producer's ledger
    lost: int  # acknowledged ticks missing from silver (must be 0)
    silver_duplicates: int  # extra copies of a (producer_id, seq) in silver (must be 0)
    bronze_duplicates: int  # extra copies in the bronze objects (allowed: silver deduplicates)
    unacknowledged_in_silver: int  # delivered although never acknowledged (e.g. producer killed)
    consumer_lag: int  # records of the ticks topic not committed by the archive group (must be 0)
    gold_mismatches: int  # gold rows that differ from a recomputation (must be 0)
    # From the end of the fault until every acknowledged tick was in silver (the transform included).
    recovery_seconds: float
    violations: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def assert_held(self) -> None:
        """Fail the calling test with every violated invariant, one per line."""
        if self.violations:
            raise AssertionError("\n".join(self.violations))

    def line(self) -> str:
        return (
            f"{self.scenario}: acknowledged={self.acknowledged} lost={self.lost} "
            f"silver_dups={self.silver_duplicates} bronze_dups={self.bronze_duplicates} "
            f"unacked_in_silver={self.unacknowledged_in_silver} lag={self.consumer_lag} "
            f"gold_mismatches={self.gold_mismatches} recovery={self.recovery_seconds:.1f}s"
        )


class ResultsLog:
    """Scenario results of this process; appended to `path` (JSON lines) once a path is set."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.results: list[ScenarioResult] = []

    def record(self, result: ScenarioResult) -> None:
        self.results.append(result)
        if self.path is not None:
            with self.path.open("ab") as sink:
                sink.write(orjson.dumps(asdict(result), default=str) + b"\n")

    def table(self) -> list[str]:
        header = (
            f"{'scenario':<44} {'acked':>6} {'lost':>5} {'silver dups':>11} {'bronze dups':>11} "
            f"{'lag':>4} {'gold diff':>9} {'to bronze s':>11} {'to silver s':>11}  verdict"
        )
        rows = [header, "-" * len(header)]
        for r in self.results:
            verdict = "ok" if not r.violations else "VIOLATED: " + "; ".join(r.violations)[:80]
            # Pipeline faults: until the archive group's lag was 0 again (transform faults: n/a).
            bronze = r.notes.get("bronze_caught_up_seconds", "-")
            rows.append(
                f"{r.scenario:<44} {r.acknowledged:>6} {r.lost:>5} {r.silver_duplicates:>11} "
                f"{r.bronze_duplicates:>11} {r.consumer_lag:>4} {r.gold_mismatches:>9} "
                f"{bronze:>11} {r.recovery_seconds:>11.1f}  {verdict}"
            )
        return rows


RESULTS = ResultsLog()
