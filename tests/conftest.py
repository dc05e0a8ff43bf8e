"""tests: the reliability suite's pipeline fixture, where its results go, and their summary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.pipeline import FlowUnderTest
from marketpulse_dev.reliability.report import RESULTS


@pytest.fixture
def flow(kafka_server: KafkaServer, s3_server: S3Server, tmp_path: Path) -> Iterator[FlowUnderTest]:
    """ingest, archive and transform wired to the session's broker and S3 server, stopped afterwards."""
    flow = FlowUnderTest.create(kafka_server.bootstrap_servers, s3_server.settings(), tmp_path)
    yield flow
    flow.stop_all()


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
