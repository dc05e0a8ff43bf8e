"""Lines of a stream in bounded memory: split as the whole text would be, and a line of any length is
cut to its first bytes and its size instead of being held."""

from __future__ import annotations

import io
import random

import pytest

from marketpulse.sources.lines import Line, numbered_lines


def lines_of(data: bytes, **bounds: int) -> list[Line]:
    return list(numbered_lines(io.BytesIO(data), **bounds))


@pytest.mark.parametrize("block", [1, 2, 7, 64, 1 << 20])
def test_lines_are_those_of_the_whole_text_whatever_the_read_block(block: int) -> None:
    rng = random.Random(block)  # noqa: S311 - test data, not secrets
    text = (
        b"".join(rng.choice([b"", b"a", b"bb\r", b"ccc" * rng.randint(1, 20)]) + b"\n" for _ in range(300))
        + b"tail without end"
    )
    expected = [line.removesuffix(b"\r") for line in text.split(b"\n")]
    got = lines_of(text, block=block)
    assert [line.data for line in got] == expected
    assert [line.number for line in got] == list(range(1, len(expected) + 1))
    assert not any(line.too_long for line in got)


@pytest.mark.parametrize("block", [3, 100, 4096])
def test_a_line_over_the_limit_keeps_its_first_bytes_and_its_size_and_the_next_lines_follow(
    block: int,
) -> None:
    long = b"x" * 10_000
    got = lines_of(b"first\n" + long + b"\nlast\n", max_bytes=1000, keep=10, block=block)
    assert [(line.number, line.data, line.size, line.too_long) for line in got] == [
        (1, b"first", 5, False),
        (2, b"x" * 10, 10_000, True),
        (3, b"last", 4, False),
    ]


def test_a_stream_without_any_line_end_is_one_line_cut_to_fit() -> None:
    [line] = lines_of(b"y" * 50_000, max_bytes=1000, keep=10, block=512)
    assert (line.number, line.data, line.size) == (1, b"y" * 10, 50_000)


def test_a_line_of_exactly_the_limit_is_kept_whole() -> None:
    [line] = lines_of(b"z" * 1000 + b"\n", max_bytes=1000, keep=10, block=64)
    assert (line.data, line.too_long) == (b"z" * 1000, False)
