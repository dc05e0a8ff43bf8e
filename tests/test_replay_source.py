"""The replay source: CSV and NDJSON, bad rows reported by line, speed, stable identities."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from marketpulse.contract.dead_letters import MAX_VALUE_BYTES
from marketpulse.contract.ticks import Tick
from marketpulse.sources.base import BadRecord
from marketpulse.sources.lines import MAX_LINE_BYTES
from marketpulse.sources.replay import ReplaySource, local_opener, replay_producer_id

CSV = """symbol,timestamp,price,size,venue
AAPL,2026-01-05T09:30:00-05:00,189.50,100,X
MSFT,1767623401000,410.25,50,X
AAPL,2026-01-05T14:30:02Z,-3,10,X
nvda,2026-01-05T14:30:03Z,500,10,X
MSFT,2026-01-05T14:30:04Z,411,ten,X
AAPL,2026-01-05T14:30:05Z,190.00,200,X
"""


def records(source: ReplaySource) -> list[Tick | BadRecord]:
    return [r for batch in source.batches() for r in batch]


def test_a_csv_replays_good_rows_as_ticks_and_bad_rows_as_dead_letters_naming_line_and_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text(CSV)
    out = records(ReplaySource(str(path), local_opener, speed=0))
    ticks = [r for r in out if isinstance(r, Tick)]
    bad = [r for r in out if isinstance(r, BadRecord)]
    assert [(t.symbol, t.price, t.size, t.seq) for t in ticks] == [
        ("AAPL", 189.5, 100, 2),
        ("MSFT", 410.25, 50, 3),
        ("AAPL", 190.0, 200, 7),
    ]
    assert ticks[0].event_time_us == ticks[1].event_time_us - 1_000_000  # ISO with offset == epoch ms
    assert [b.reason.split(":")[0:2] for b in bad] == [
        ["line 4", " price"],
        ["line 5", " symbol"],
        ["line 6", " size"],
    ]
    assert bad[0].symbol == "AAPL"
    assert bad[1].symbol is None  # not a valid ticker, so not a Kafka key either


def test_replaying_the_same_file_twice_yields_the_same_identities(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text(CSV)

    def identities() -> list[tuple[str, int]]:
        return [
            (r.producer_id, r.seq)
            for r in records(ReplaySource(str(path), local_opener, speed=0))
            if isinstance(r, Tick)
        ]

    assert identities() == identities()
    assert identities()[0][0] == replay_producer_id(str(path))


def test_ndjson_and_gzip_are_read_and_non_json_lines_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "ticks.ndjson.gz"
    path.write_bytes(
        gzip.compress(
            b'{"symbol":"SPY","event_time":"2026-01-05T14:30:00.000001Z","price":480.1,"size":3}\n'
            b"not json\n\n"
            b'{"symbol":"SPY","timestamp":1767623400500,"price":480.2,"size":4}\n'
        )
    )
    out = records(ReplaySource(str(path), local_opener, speed=0))
    assert [type(r).__name__ for r in out] == ["Tick", "BadRecord", "Tick"]
    assert out[1].reason.startswith("line 2: record: not valid JSON")  # type: ignore[union-attr]


def test_speed_spaces_ticks_by_their_event_time(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text("symbol,timestamp,price,size\nA,1000,1,1\nA,3000,1,1\nA,7000,1,1\n")
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    list(ReplaySource(str(path), local_opener, speed=2.0, sleep=sleep, clock=lambda: now[0]).batches())
    assert slept == pytest.approx([1.0, 2.0])  # 2 s and 4 s of event time at 2x


def test_a_csv_without_the_required_columns_is_refused_with_what_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text("ticker,time,px\nAAPL,1,1\n")
    with pytest.raises(
        ValueError, match=r"lacks column.*symbol.*expected at least symbol,timestamp,price,size"
    ):
        records(ReplaySource(str(path), local_opener, speed=0))


def test_an_unknown_extension_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cannot tell the format.*\.ndjson or \.csv"):
        ReplaySource("ticks.parquet", local_opener)


def test_ingest_reports_a_missing_replay_file_clearly(tmp_path: Path) -> None:
    marketpulse = Path(sys.executable).parent / "marketpulse"
    result = subprocess.run(
        [str(marketpulse), "ingest"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "MARKETPULSE_SOURCE": "replay",
            "MARKETPULSE_REPLAY_URI": str(tmp_path / "x.csv"),
            "MARKETPULSE_METRICS_PORT": "0",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_looping_replay_starts_over_as_a_new_producer(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text("symbol,timestamp,price,size\nA,1000,1,1\nA,2000,2,1\n")
    source = ReplaySource(str(path), local_opener, speed=0, loop=True)
    passes = iter(source.batches())
    first, second = next(passes), next(passes)
    assert [r.seq for r in first] == [r.seq for r in second] == [2, 3]  # type: ignore[union-attr]
    assert first[0].producer_id + "-pass1" == second[0].producer_id  # type: ignore[union-attr]


def test_a_line_too_long_to_hold_is_a_dead_letter_with_its_first_bytes_and_size_and_the_replay_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.ndjson"
    long = b'{"symbol":"MSFT","note":"' + b"n" * (3 * MAX_LINE_BYTES) + b'"}'
    path.write_bytes(
        b'{"symbol":"MSFT","timestamp":1767623400000,"price":400,"size":5}\n'
        + long
        + b'\n{"symbol":"MSFT","timestamp":1767623401000,"price":401,"size":6}\n'
    )
    out = records(ReplaySource(str(path), local_opener, speed=0))
    assert [type(r).__name__ for r in out] == ["Tick", "BadRecord", "Tick"]
    bad = out[1]
    assert isinstance(bad, BadRecord)
    assert bad.reason.startswith("line 2: record: ")
    assert (bad.raw, bad.size) == (long[:MAX_VALUE_BYTES], len(long))
    assert [r.seq for r in out if isinstance(r, Tick)] == [1, 3]


def test_csv_rows_too_long_or_with_a_field_over_csvs_limit_are_dead_letters_and_the_replay_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "long.csv"
    path.write_bytes(
        b"symbol,timestamp,price,size\r\n"
        b"AAPL,1767623400000,1,1\r\n"
        + b"AAPL,1767623400000,1,"
        + b"9" * (2 * MAX_LINE_BYTES)
        + b"\r\n"
        + b'AAPL,1767623400000,1,"'
        + b"8" * 200_000
        + b'"\r\n'
        + b"AAPL,1767623401000,2,2,extra\r\n"
    )
    out = records(ReplaySource(str(path), local_opener, speed=0))
    assert [type(r).__name__ for r in out] == ["Tick", "BadRecord", "BadRecord", "Tick"]
    assert out[1].reason.startswith("line 3: record: ")  # type: ignore[union-attr]
    assert out[2].reason.startswith("line 4: record: not valid CSV")  # type: ignore[union-attr]
    assert [r.seq for r in out if isinstance(r, Tick)] == [2, 5]


def test_a_quoted_csv_field_may_span_lines_and_rows_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('symbol,timestamp,price,size,venue\nAAPL,1000,1,1,"two\nlines"\n\nAAPL,2000,oops,1,X\n')
    out = records(ReplaySource(str(path), local_opener, speed=0))
    assert [type(r).__name__ for r in out] == ["Tick", "BadRecord"]
    assert out[0].seq == 3  # type: ignore[union-attr]  # the line the row ends on, as csv counts
    assert out[1].reason.startswith("line 5: price")  # type: ignore[union-attr]


def test_invalid_utf8_is_read_as_replacement_characters_as_before(tmp_path: Path) -> None:
    path = tmp_path / "latin1.ndjson"
    path.write_bytes(b'{"symbol":"SPY","timestamp":1767623400000,"price":1,"size":1,"venue":"caf\xe9"}\n')
    [tick] = records(ReplaySource(str(path), local_opener, speed=0))
    assert isinstance(tick, Tick)


def test_a_long_line_inside_a_quoted_csv_field_left_open_at_the_end_is_still_reported(tmp_path: Path) -> None:
    path = tmp_path / "open-quote.csv"
    path.write_bytes(b'symbol,timestamp,price,size\nAAPL,1000,1,"\n' + b"9" * (2 * MAX_LINE_BYTES) + b"\n")
    out = records(ReplaySource(str(path), local_opener, speed=0))
    assert any(isinstance(r, BadRecord) and r.reason.startswith("line 3: record: ") for r in out)


def test_a_long_line_inside_a_csv_row_that_csv_refuses_is_reported_too(tmp_path: Path) -> None:
    path = tmp_path / "refused.csv"
    path.write_bytes(
        b'symbol,timestamp,price,size\nAAPL,1000,1,"\n'
        + b"9" * (2 * MAX_LINE_BYTES)
        + b"\n"
        + b"8" * 200_000
        + b'"\nAAPL,2000,2,2\n'
    )
    out = records(ReplaySource(str(path), local_opener, speed=0))
    assert [type(r).__name__ for r in out] == ["BadRecord", "BadRecord", "Tick"]
    assert out[0].reason.startswith("line 4: record: not valid CSV")  # type: ignore[union-attr]
    assert out[1].reason.startswith("line 3: record: ")  # type: ignore[union-attr]
