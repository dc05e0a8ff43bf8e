"""Dead letters fit the topic whatever the size of the record or of its reason."""

from __future__ import annotations

from marketpulse.contract.dead_letters import (
    MAX_KEY_BYTES,
    MAX_REASON_CHARS,
    MAX_VALUE_BYTES,
    TRUNCATED_HEADER,
    dead_letter,
)


def test_a_small_record_is_kept_whole_with_its_reason_stage_and_where_it_was_read() -> None:
    letter = dead_letter(b'{"price":-1}', b"AAPL", "price: must be > 0", "archive", [("offset", b"7")])
    assert letter.value == b'{"price":-1}'
    assert letter.key == b"AAPL"
    assert letter.headers == [("error", b"price: must be > 0"), ("stage", b"archive"), ("offset", b"7")]


def test_a_record_over_the_limit_keeps_its_first_bytes_and_says_how_big_it_was() -> None:
    raw = b"x" * (3 * 1024 * 1024)
    letter = dead_letter(raw, b"K" * 10_000, "symbol: got " + "'x'" * 100_000, "ingest")
    headers = dict(letter.headers)
    assert letter.value == raw[:MAX_VALUE_BYTES]
    assert headers[TRUNCATED_HEADER] == str(len(raw)).encode()
    assert letter.key is not None
    assert len(letter.key) == MAX_KEY_BYTES
    error = headers["error"]
    assert isinstance(error, bytes)
    assert len(error.decode()) == MAX_REASON_CHARS
    assert error.decode().startswith("symbol: got 'x'")
    assert error.decode().endswith("…")


def test_an_empty_record_becomes_an_empty_value_not_a_tombstone_less_letter() -> None:
    letter = dead_letter(None, None, "record: empty", "archive")
    assert (letter.value, letter.key) == (b"", None)
    assert TRUNCATED_HEADER not in dict(letter.headers)


def test_a_record_its_source_could_hold_only_the_start_of_says_its_whole_size() -> None:
    start = b"n" * 1000
    letter = dead_letter(start, None, "record: too long", "ingest", size=5_000_000)
    assert letter.value == start
    assert dict(letter.headers)[TRUNCATED_HEADER] == b"5000000"
