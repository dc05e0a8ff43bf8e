"""services/tests: where the reliability suite's results go, and their summary at the end of the run."""

from __future__ import annotations

import pytest

from marketpulse.reliability.report import RESULTS


@pytest.fixture(scope="session", autouse=True)
def _reliability_results_file(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Scenario results are appended as JSON lines to reliability-results.jsonl in the run's tmp dir."""
    RESULTS.path = tmp_path_factory.getbasetemp() / "reliability-results.jsonl"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS.results:
        return
    terminalreporter.section("reliability: nothing lost")
    for row in RESULTS.table():
        terminalreporter.write_line(row)
    if RESULTS.path is not None:
        terminalreporter.write_line(f"results: {RESULTS.path}")
