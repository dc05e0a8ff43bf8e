"""The Finnhub source against the fake Finnhub over real sockets: websocket trades, errors, reconnects,
the REST fallback with its call budget and 429s, bad keys, malformed trades, and a token that never leaks."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from marketpulse.contract.settings.ingest import IngestSettings
from marketpulse.contract.ticks import Tick
from marketpulse.ingest.main import build_source
from marketpulse.sources.base import BadRecord, Record
from marketpulse.sources.finnhub import (
    FinnhubAuthError,
    FinnhubSource,
    backoff_delay,
    redact,
    retry_after_seconds,
    with_token,
)
from marketpulse_dev.fakes.finnhub import FakeFinnhub

TOKEN = "tok-Zq8u3xPLv2"  # distinctive, so a leak anywhere is found by a substring search
T0 = 1_700_000_000_000  # epoch ms


def trade(symbol: str, price: float, t: int, v: int = 100) -> dict[str, Any]:
    return {"s": symbol, "p": price, "t": t, "v": v, "c": ["1", "12"]}


@pytest.fixture
def fake() -> Iterator[FakeFinnhub]:
    with FakeFinnhub(token=TOKEN) as server:
        yield server


def source_for(fake: FakeFinnhub, symbols: list[str], token: str = TOKEN, **overrides: Any) -> FinnhubSource:
    settings: dict[str, Any] = {
        "ws_url": fake.ws_url,
        "rest_url": fake.rest_url,
        "calls_per_minute": 6000,  # one REST call every 10 ms
        "batch_interval": 0.02,
        "reconnect_initial": 0.05,
        "reconnect_max": 0.4,
        "seed": 7,
    } | overrides
    return FinnhubSource(symbols, token, "test-producer", **settings)


class Reader:
    """Pulls batches from a source until a condition on everything read so far holds (bounded)."""

    def __init__(self, source: FinnhubSource) -> None:
        self.source = source
        self.iterator = source.batches()
        source.start()  # the network runs even before the first batch is asked for
        self.records: list[Record] = []
        self.batches = 0

    def until(self, condition: Callable[[list[Record]], bool], timeout: float = 10.0) -> list[Record]:
        deadline = time.monotonic() + timeout
        while not condition(self.records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s; read {self.records!r}")
            self.records.extend(next(self.iterator))
            self.batches += 1
        return self.records

    @property
    def ticks(self) -> list[Tick]:
        return [r for r in self.records if isinstance(r, Tick)]

    @property
    def bad(self) -> list[BadRecord]:
        return [r for r in self.records if isinstance(r, BadRecord)]

    def close(self) -> None:
        self.iterator.close()
        self.source.close()


@pytest.fixture
def reader_for() -> Iterator[Callable[[FinnhubSource], Reader]]:
    readers: list[Reader] = []

    def make(source: FinnhubSource) -> Reader:
        readers.append(Reader(source))
        return readers[-1]

    yield make
    for reader in readers:
        reader.close()


def n_ticks(n: int) -> Callable[[list[Record]], bool]:
    return lambda records: sum(isinstance(r, Tick) for r in records) >= n


def test_it_subscribes_every_symbol_and_yields_trades_as_ticks(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader]
) -> None:
    fake.script = {
        "AAPL": [trade("AAPL", 189.5, T0 + 123, 100)],
        "MSFT": [trade("MSFT", 410.25, T0 + 456, 7)],
    }
    reader = reader_for(source_for(fake, ["AAPL", "MSFT"]))
    reader.until(n_ticks(2))
    fake.push_trades(trade("AAPL", 189.75, T0 + 789, 300), trade("MSFT", 410.5, T0 + 790, 1))
    reader.until(n_ticks(4))

    assert fake.symbols_of(1) == {"AAPL", "MSFT"}
    assert fake.connections == 1
    ticks = reader.ticks
    assert {(t.symbol, t.price, t.size, t.event_time_us) for t in ticks} == {
        ("AAPL", 189.5, 100, (T0 + 123) * 1000),
        ("MSFT", 410.25, 7, (T0 + 456) * 1000),
        ("AAPL", 189.75, 300, (T0 + 789) * 1000),
        ("MSFT", 410.5, 1, (T0 + 790) * 1000),
    }
    assert [t.seq for t in ticks] == [0, 1, 2, 3]
    assert {(t.source, t.producer_id) for t in ticks} == {("finnhub", "test-producer")}
    assert all(t.ingest_time_us > t.event_time_us for t in ticks)
    assert fake.calls() == []  # no REST call while the websocket is up
    assert reader.bad == []


def test_batches_keep_coming_when_no_trades_arrive(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader]
) -> None:
    reader = reader_for(source_for(fake, ["AAPL"]))
    started = time.monotonic()
    reader.until(lambda _: reader.batches >= 5, timeout=5)
    assert reader.records == []
    assert time.monotonic() - started < 2  # five empty batches at ~20 ms each, not a blocked read


def test_an_error_message_is_logged_and_the_stream_goes_on(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    source = source_for(fake, ["AAPL"])
    reader = reader_for(source)
    reader.until(lambda _: source.websocket_up.is_set())
    fake.wait_until(lambda f: f.symbols_of(1) == {"AAPL"})
    fake.send_ping()
    fake.send_error("Invalid symbol ZZZZ")
    fake.push_trades(trade("AAPL", 190.0, T0))
    reader.until(n_ticks(1))

    assert list(source.server_errors) == ["Invalid symbol ZZZZ"]
    warnings = [r for r in caplog.records if r.getMessage() == "finnhub sent an error"]
    assert [r.__dict__["finnhub_error"] for r in warnings] == ["Invalid symbol ZZZZ"]
    assert fake.connections == 1  # an error message is not a reason to reconnect
    assert reader.bad == []  # nor is a ping or an error a record


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-frame", "reset"])
def test_a_dropped_connection_reconnects_and_subscribes_again(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader], abrupt: bool
) -> None:
    fake.script = {"AAPL": [trade("AAPL", 189.5, T0)]}
    reader = reader_for(source_for(fake, ["AAPL", "MSFT"]))
    reader.until(n_ticks(1))
    fake.disconnect_all(abrupt=abrupt)
    fake.wait_until(lambda f: f.symbols_of(2) == {"AAPL", "MSFT"})
    fake.push_trades(trade("MSFT", 411.0, T0 + 1000))
    reader.until(lambda records: any(isinstance(r, Tick) and r.symbol == "MSFT" for r in records))

    assert fake.connections == 2
    seqs = [t.seq for t in reader.ticks]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_rest_polls_while_the_websocket_is_down_and_stop_when_it_is_back(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader]
) -> None:
    fake.quotes = {
        "AAPL": {
            "c": 190.1,
            "d": 0.6,
            "dp": 0.32,
            "h": 191,
            "l": 188,
            "o": 189,
            "pc": 189.5,
            "t": 1_700_000_000,
        },
    }
    source = source_for(fake, ["AAPL", "MSFT"])  # MSFT gets the fake's all-zero "no data" quote
    reader = reader_for(source)
    reader.until(lambda _: source.websocket_up.is_set())
    fake.accept_websockets = False
    fake.disconnect_all()
    reader.until(n_ticks(1))
    # Polled again and again (the 4th request follows the handling of the 3rd answer)...
    fake.wait_until(lambda f: len(f.calls("AAPL")) >= 4)
    read = reader.batches
    reader.until(lambda _: reader.batches > read)  # ...and whatever that queued is read
    assert [(t.symbol, t.price, t.size, t.event_time_us) for t in reader.ticks] == [
        ("AAPL", 190.1, 0, 1_700_000_000 * 1_000_000)  # ...but an unchanged `t` is not a new tick
    ]
    assert len(fake.calls("MSFT")) >= 2
    fake.quotes["AAPL"] = fake.quotes["AAPL"] | {"c": 190.4, "t": 1_700_000_060}
    reader.until(n_ticks(2))
    assert reader.ticks[1].price == 190.4
    assert reader.ticks[1].event_time_us == 1_700_000_060 * 1_000_000

    fake.accept_websockets = True
    fake.wait_until(lambda f: f.symbols_of(2) == {"AAPL", "MSFT"})
    reader.until(lambda _: source.websocket_up.is_set())
    polls = len(fake.calls())
    fake.push_trades(trade("MSFT", 412.0, T0))
    reader.until(n_ticks(3))
    fake.push_trades(trade("MSFT", 412.5, T0 + 1))
    reader.until(n_ticks(4))
    assert len(fake.calls()) <= polls + 1  # at most one request was in flight when it came back
    assert reader.bad == []


def test_a_429_pauses_polling_for_retry_after(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    fake.accept_websockets = False
    fake.rate_limit_after = 3
    fake.retry_after = 1
    reader_for(source_for(fake, ["AAPL", "MSFT"]))
    fake.wait_until(lambda f: len(f.calls()) >= 5)
    calls = fake.calls()

    assert [c.status for c in calls[:5]] == [200, 200, 200, 429, 200]
    assert calls[4].at - calls[3].at >= 0.99  # the next call waited for Retry-After: 1
    assert calls[4].symbol == calls[3].symbol  # and retried the symbol that was refused
    # 6000 calls/min: spread ~10 ms apart, never in a burst. Measured over three gaps, as the fake
    # server timestamps a request when its thread gets to it, which a loaded machine delays.
    assert calls[3].at - calls[0].at >= 0.02
    assert any(r.getMessage() == "finnhub rate limit hit; pausing quote polls" for r in caplog.records)


def test_a_429_without_retry_after_backs_off_exponentially(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader]
) -> None:
    fake.accept_websockets = False
    fake.rate_limit_after = 1
    fake.retry_after = 0.3
    fake.send_retry_after = False
    reader_for(source_for(fake, ["AAPL"], rate_limit_initial=0.2))
    fake.wait_until(lambda f: sum(c.status == 429 for c in f.calls()) >= 2, timeout=10)
    refused = [c for c in fake.calls() if c.status == 429]
    calls = fake.calls()
    after_first = calls[calls.index(refused[0]) + 1]
    assert after_first.at - refused[0].at >= 0.19


def test_a_watchlist_that_does_not_fit_the_call_budget_is_refused() -> None:
    symbols = [f"S{i}" for i in range(61)]
    with pytest.raises(ValueError, match="MARKETPULSE_WATCHLIST") as refused:
        FinnhubSource(symbols, TOKEN, "p", calls_per_minute=60, max_poll_seconds=60)
    message = str(refused.value)
    assert "MARKETPULSE_FINNHUB_CALLS_PER_MINUTE=60" in message
    assert "61 symbols" in message
    assert "at most 60 symbols" in message
    assert TOKEN not in message
    FinnhubSource(symbols[:60], TOKEN, "p", calls_per_minute=60, max_poll_seconds=60)  # fits exactly
    FinnhubSource(symbols, TOKEN, "p", calls_per_minute=120, max_poll_seconds=60)


def test_settings_build_a_finnhub_source_and_a_missing_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE_SOURCE", "finnhub")
    monkeypatch.setenv("MARKETPULSE_WATCHLIST", "AAPL,MSFT")
    monkeypatch.setenv("MARKETPULSE_FINNHUB_CALLS_PER_MINUTE", "30")
    monkeypatch.setenv("MARKETPULSE_FINNHUB_WS_URL", "ws://127.0.0.1:1")
    monkeypatch.setenv("MARKETPULSE_FINNHUB_REST_URL", "http://127.0.0.1:1/api/v1")
    monkeypatch.delenv("FINNHUB_API_KEY", raising=False)
    with pytest.raises(ValueError, match="FINNHUB_API_KEY: not set"):
        build_source(IngestSettings())

    monkeypatch.setenv("FINNHUB_API_KEY", TOKEN)
    settings = IngestSettings()
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())
    source = build_source(settings)
    assert isinstance(source, FinnhubSource)
    assert (source.symbols, source.calls_per_minute, source.ws_url, source.rest_url) == (
        ["AAPL", "MSFT"],
        30,
        "ws://127.0.0.1:1",
        "http://127.0.0.1:1/api/v1",
    )
    assert source.producer_id == settings.producer_id
    assert TOKEN not in repr(source)

    monkeypatch.setenv("MARKETPULSE_WATCHLIST", ",".join(f"S{i}" for i in range(31)))
    with pytest.raises(ValueError, match="MARKETPULSE_FINNHUB_CALLS_PER_MINUTE=30"):
        build_source(IngestSettings())


@pytest.mark.parametrize("where", ["websocket", "rest"])
def test_a_bad_key_stops_the_source_with_an_error_naming_finnhub_api_key(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader], where: str
) -> None:
    bad = "bad-" + TOKEN
    # "rest": the websocket is down (503 whatever the key), so the key is first checked by /quote.
    fake.accept_websockets = where == "websocket"
    reader = reader_for(source_for(fake, ["AAPL"], token=bad))
    with pytest.raises(FinnhubAuthError, match="FINNHUB_API_KEY: rejected by Finnhub") as rejected:
        reader.until(lambda _: False, timeout=10)
    assert isinstance(rejected.value, ValueError)
    assert ("REST /quote" if where == "rest" else "websocket") in str(rejected.value)
    assert bad not in str(rejected.value)
    assert TOKEN not in str(rejected.value)


def test_malformed_trades_become_bad_records_with_a_reason(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader]
) -> None:
    source = source_for(fake, ["AAPL"])
    reader = reader_for(source)
    reader.until(lambda _: source.websocket_up.is_set())
    fake.wait_until(lambda f: f.symbols_of(1) == {"AAPL"})
    fake.push_trades(
        {"s": "AAPL", "p": "abc", "t": T0, "v": 1},
        {"s": "AAPL", "p": 190.0, "t": "yesterday", "v": 1},
        {"s": "AAPL", "p": -1, "t": T0, "v": 1},
        {"s": "AAPL", "p": 190.0, "t": T0, "v": 1.5},
        {"s": "aapl!", "p": 190.0, "t": T0, "v": 1},
        trade("AAPL", 190.25, T0 + 5, 40),
        "not an object",  # type: ignore[arg-type]
    )
    fake.send_raw("this is not JSON")
    fake.send_raw('{"type":"trade","data":"nope"}')
    reader.until(lambda records: len(records) >= 9)

    assert [(t.symbol, t.price, t.size, t.seq) for t in reader.ticks] == [("AAPL", 190.25, 40, 0)]
    reasons = [b.reason.split(":")[0] for b in reader.bad]
    assert reasons == ["price", "event_time", "price", "size", "symbol", "record", "message", "message"]
    assert [b.symbol for b in reader.bad] == ["AAPL", "AAPL", "AAPL", "AAPL", None, None, None, None]
    assert b'"p":"abc"' in reader.bad[0].raw
    assert "got 'abc'" in reader.bad[0].reason
    assert reader.bad[6].raw == b"this is not JSON"


def test_the_token_never_appears_in_logs_exceptions_or_dead_letters(
    fake: FakeFinnhub, reader_for: Callable[[FinnhubSource], Reader], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, including websockets' and httpx's debug lines
    fake.script = {"AAPL": [trade("AAPL", 189.5, T0)]}
    fake.quotes = {"AAPL": {"c": 190.0, "t": 1_700_000_000}}
    source = source_for(fake, ["AAPL"])
    reader = reader_for(source)
    reader.until(n_ticks(1))
    fake.send_error(f"Invalid token {TOKEN}")  # a server echoing the key back
    fake.send_raw(f"garbage {TOKEN}")
    reader.until(lambda records: len(records) >= 2)
    fake.accept_websockets = False
    fake.rate_limit_after = 1
    fake.retry_after = 0.2
    fake.disconnect_all(abrupt=True)
    fake.wait_until(lambda f: any(c.status == 429 for c in f.calls()))
    reader.until(n_ticks(2))
    fake.token = "rotated"  # the key is now wrong: 401 on REST
    fake.accept_websockets = True  # and on the websocket
    errors: list[BaseException] = []
    try:
        reader.until(lambda _: False, timeout=10)
    except FinnhubAuthError as exc:
        errors.append(exc)
    assert errors, "the bad key should have stopped the source"

    messages = [
        record.getMessage() + str(record.__dict__) + (caplog.handler.format(record) or "")
        for record in caplog.records
    ]
    assert any("GET /?token=***" in m for m in messages)  # the websocket's request line was logged...
    leaks = [m for m in messages if TOKEN in m]
    assert leaks == []  # ...redacted, like everything else
    assert len(caplog.records) > 20
    assert all(TOKEN not in repr(e) and TOKEN not in str(e) for e in errors)
    assert TOKEN not in repr(source)
    assert [TOKEN.encode() in b.raw or TOKEN in b.reason for b in reader.bad] == [False]
    assert list(source.server_errors) == ["Invalid token ***"]


def test_redaction_helpers() -> None:
    assert with_token("wss://ws.finnhub.io", "a b&c") == "wss://ws.finnhub.io?token=a%20b%26c"
    assert with_token("ws://h:1/p?x=1", "k") == "ws://h:1/p?x=1&token=k"
    assert redact("GET /?token=a%20b%26c and a b&c", "a b&c") == "GET /?token=*** and ***"
    assert redact("nothing", "") == "nothing"


def test_backoff_grows_with_jitter_and_retry_after_is_read() -> None:
    rng = random.Random(1)  # noqa: S311 - jitter, not cryptography
    delays = [[backoff_delay(attempt, 1.0, 60.0, rng) for _ in range(200)] for attempt in range(8)]
    for attempt, samples in enumerate(delays):
        step = min(60.0, 2.0**attempt)
        assert step / 2 <= min(samples)
        assert max(samples) <= step
        assert len(set(samples)) > 1  # jittered: clients that dropped together do not return together
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    http_date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_seconds(http_date) or 0) <= 30
