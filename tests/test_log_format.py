"""One JSON log format for the workloads and the operator (kopf's records included), from
python-json-logger, and readable lines on a terminal."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import datetime

import kopf
import orjson
import pytest

from marketpulse.runtime.logs import JsonFormatter, TextFormatter, configure_logging, formatter_for, readable

PIPELINE = {
    "apiVersion": "marketpulse.io/v1alpha1",
    "kind": "StockPipeline",
    "metadata": {"name": "demo", "namespace": "trading", "uid": "1234"},
}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    """Records that reach the root logger, whatever the logger they were made by."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
    yield records
    root.handlers[:], root.level = saved


def test_a_workload_line_is_one_compact_json_object_with_the_documented_keys(
    captured: list[logging.LogRecord],
) -> None:
    logging.getLogger("marketpulse.transform.main").info(
        "transform cycle done", extra={"seconds": {"dbt": 1.5}, "rows": 3}
    )
    line = JsonFormatter("transform").format(captured[0])
    record = orjson.loads(line)
    assert record == {
        "time": record["time"],
        "level": "info",
        "logger": "marketpulse.transform.main",
        "message": "transform cycle done",
        "workload": "transform",
        "seconds": {"dbt": 1.5},
        "rows": 3,
    }
    assert record["time"].endswith("Z")
    assert datetime.fromisoformat(record["time"]).utcoffset() is not None
    # Readers look for the message in the raw line before parsing it.
    assert '"message":"transform cycle done"' in line


def test_an_exception_is_logged_as_the_error_key_with_its_traceback(
    captured: list[logging.LogRecord],
) -> None:
    try:
        raise RuntimeError("bucket gone")
    except RuntimeError:
        logging.getLogger("marketpulse.archive").exception("flush failed")
    record = orjson.loads(JsonFormatter("archive").format(captured[0]))
    assert record["level"] == "error"
    assert "RuntimeError: bucket gone" in record["error"]
    assert record["error"].startswith("Traceback")


def test_kopfs_object_logger_lines_have_the_same_keys_and_name_the_pipeline(
    captured: list[logging.LogRecord],
) -> None:
    kopf.ObjectLogger(body=kopf.Body(PIPELINE), settings=kopf.OperatorSettings()).warning("reconcile failed")
    record = orjson.loads(JsonFormatter("operator").format(captured[0]))
    assert {"time", "level", "logger", "message", "workload"} <= record.keys()
    assert (record["level"], record["workload"], record["message"]) == (
        "warning",
        "operator",
        "reconcile failed",
    )
    assert record["object"]["name"] == "demo"
    assert record["object"]["namespace"] == "trading"
    # kopf's bookkeeping (its settings object, whether to post an event) stays out of the line.
    assert not {"settings", "k8s_skip", "k8s_ref"} & record.keys()


def test_on_a_terminal_a_line_is_readable_text_not_json(captured: list[logging.LogRecord]) -> None:
    logging.getLogger("marketpulse.ingest").info("producing", extra={"symbols": 5})
    kopf.ObjectLogger(body=kopf.Body(PIPELINE), settings=kopf.OperatorSettings()).info("applied")
    formatter = formatter_for("ingest", "auto", Terminal())
    assert isinstance(formatter, TextFormatter)
    first, second = (formatter.format(r) for r in captured)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(first)
    assert "\x1b[" in first  # coloured
    plain = re.sub(r"\x1b\[[0-9;]*m", "", first)
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} INFO +marketpulse.ingest: producing symbols=5", plain), plain
    assert "[trading/demo] applied" in second


@pytest.mark.parametrize(
    ("requested", "stream", "expected"),
    [
        ("auto", io.StringIO(), JsonFormatter),
        ("auto", Terminal(), TextFormatter),
        ("json", Terminal(), JsonFormatter),
        ("text", io.StringIO(), TextFormatter),
    ],
)
def test_marketpulse_log_format_overrides_what_the_terminal_suggests(
    requested: str, stream: io.StringIO, expected: type[logging.Formatter]
) -> None:
    assert isinstance(formatter_for("x", requested, stream), expected)  # type: ignore[arg-type]


def test_text_to_a_pipe_carries_no_colour_codes() -> None:
    assert "\x1b[" not in TextFormatter(colour=False).format(
        logging.makeLogRecord({"msg": "m", "levelname": "INFO"})
    )


def test_configure_logging_puts_one_handler_on_the_root_for_kopf_and_the_workloads_alike(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("operator", "INFO", "json")
        logging.getLogger("kopf.activities.startup").info("startup done")
        logging.getLogger("marketpulse.operator.reconcile").debug("not at INFO")
    finally:
        root.handlers[:], root.level = saved
    lines = capsys.readouterr().err.splitlines()
    assert [orjson.loads(x)["logger"] for x in lines] == ["kopf.activities.startup"]


def test_marketpulse_run_shows_a_json_line_as_the_terminal_would_and_other_lines_unchanged() -> None:
    line = orjson.dumps(
        {
            "time": "2026-01-02T03:04:05.678Z",
            "level": "warning",
            "logger": "marketpulse.alerts",
            "message": "rule fired",
            "workload": "alerts",
            "rule": "big-move",
        }
    ).decode()
    assert readable(line, colour=False) == "03:04:05.678 WARNING marketpulse.alerts: rule fired rule=big-move"
    assert readable("plain output from dbt", colour=False) == "plain output from dbt"
    assert readable('{"not": "a log line"}', colour=False) == '{"not": "a log line"}'
    assert readable("{broken", colour=False) == "{broken"
