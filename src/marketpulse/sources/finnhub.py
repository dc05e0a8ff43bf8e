"""Live trades from Finnhub: websocket first, REST `/quote` polling while the websocket is down.

Websocket: `wss://ws.finnhub.io?token=KEY`, one `{"type":"subscribe","symbol":S}` per symbol, then
`{"type":"trade","data":[{"s","p","t" (epoch ms),"v","c"}]}`, `{"type":"ping"}` and
`{"type":"error","msg":...}` messages. A dropped or refused connection is retried with exponential
backoff and jitter; every symbol is subscribed again on each new connection.

REST fallback: `GET {rest_url}/quote?symbol=S` → `{"c","d","dp","h","l","o","pc","t" (epoch s)}`.
It runs only while the websocket is down. Polls are spread evenly over the call budget
(`calls_per_minute`): one call every 60/budget seconds, symbols in turn, so each symbol is polled every
len(watchlist) * 60/budget seconds. A watchlist for which that period exceeds `max_poll_seconds` is
refused at start with a ValueError naming MARKETPULSE_WATCHLIST and
MARKETPULSE_FINNHUB_CALLS_PER_MINUTE, rather than silently serving stale quotes. A quote becomes a tick
of size 0 whose event time is the quote's `t`; a quote whose `t` has not changed since the last poll
of that symbol (or is 0: no data) is skipped. HTTP 429 pauses all polling for Retry-After seconds (or an
exponential backoff when the header is absent); 401/403 (and a 401/403 websocket handshake) stop the
source with an error naming FINNHUB_API_KEY.

The token is secret: REST sends it in the `X-Finnhub-Token` header (so no request URL holds it), the
websocket URL that must hold it is never logged (the websockets library logs through a redacting
logger), and every message, exception and dead letter this module makes is passed through `redact`.

`batches()` is synchronous, as the ingest loop expects: the network runs on an asyncio loop in a daemon
thread that feeds a queue, and `batches()` yields what arrived every `batch_interval` seconds (an empty
list when nothing did, so the caller can check for shutdown) or as soon as `max_batch` records are
waiting. Ticks get this process's `producer_id` and a `seq` increasing in the order they are yielded.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import queue
import random
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from marketpulse.contract.ticks import Tick
from marketpulse.contract.ticks.model import TICKER
from marketpulse.sources.base import BadRecord, Record

log = logging.getLogger(__name__)
REDACTED = "***"
SOURCE = "finnhub"


class FinnhubAuthError(ValueError):
    """Finnhub rejected the API key (HTTP 401/403)."""


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` (raw or URL-encoded) replaced by `***`."""
    if not secret:
        return text
    for form in {secret, url_quote(secret, safe="")}:
        text = text.replace(form, REDACTED)
    return text


def describe(exc: BaseException, secret: str) -> str:
    """A one-line, redacted description of an exception, for logs and error messages."""
    detail = str(exc)
    return redact(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__, secret)


class RedactingFilter(logging.Filter):
    """Rewrites a record so neither its message nor its traceback contains any of `secrets`.

    Attached to the logger handed to the websockets library, whose debug lines include the request
    path (`GET /?token=...`). A traceback is flattened into `exc_text` (redacted) and `exc_info` cleared,
    since some formatters render `exc_info` themselves.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = redact(text, secret)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redact(record.getMessage()), ()
        if record.exc_info:
            record.exc_text = self._redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


def redacting_logger(name: str, secret: str) -> logging.Logger:
    """The logger `name`, redacting `secret` (and any secret registered on it before) from its records."""
    logger = logging.getLogger(name)
    found = [f for f in logger.filters if isinstance(f, RedactingFilter)]
    if found:
        found[0].secrets.add(secret)
    else:
        redacting = RedactingFilter()
        redacting.secrets.add(secret)
        logger.addFilter(redacting)
    return logger


def with_token(url: str, token: str) -> str:
    """`url` with `token=` added to its query string (the websocket authenticates only this way)."""
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}token={url_quote(token, safe='')}"))


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half the step is fixed, half is random."""
    step = min(maximum, initial * 2.0**attempt)
    return step / 2 + rng.uniform(0, step / 2)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass
class FinnhubSource:
    symbols: Sequence[str]
    api_key: str = field(repr=False)
    producer_id: str
    calls_per_minute: int = 60
    ws_url: str = "wss://ws.finnhub.io"
    rest_url: str = "https://finnhub.io/api/v1"
    # Each symbol must be polled at least this often on the REST fallback, or the watchlist is refused.
    max_poll_seconds: float = 60.0
    batch_interval: float = 0.1
    max_batch: int = 1000
    reconnect_initial: float = 1.0
    reconnect_max: float = 60.0
    # A connection that lasted this long resets the backoff; one dropped sooner keeps growing it.
    stable_seconds: float = 30.0
    # Back off on 429 without a Retry-After header: initial, doubled per consecutive 429.
    rate_limit_initial: float = 5.0
    open_timeout: float = 10.0
    request_timeout: float = 10.0
    seed: int | None = None
    server_errors: deque[str] = field(default_factory=lambda: deque(maxlen=100), init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.api_key.strip():
            raise ValueError("FINNHUB_API_KEY: not set; expected the Finnhub API key (from a Secret)")
        if not self.symbols:
            raise ValueError(
                "MARKETPULSE_WATCHLIST: empty; expected comma-separated tickers such as AAPL,MSFT"
            )
        if self.calls_per_minute <= 0:
            raise ValueError(
                f"MARKETPULSE_FINNHUB_CALLS_PER_MINUTE: must be > 0, got {self.calls_per_minute}"
            )
        period = self.poll_period
        if period > self.max_poll_seconds:
            fits = int(self.max_poll_seconds * self.calls_per_minute / 60)
            raise ValueError(
                f"MARKETPULSE_WATCHLIST: {len(self.symbols)} symbols cannot be polled within "
                f"MARKETPULSE_FINNHUB_CALLS_PER_MINUTE={self.calls_per_minute}: the REST fallback would "
                f"refresh each symbol only every {period:.0f} s (limit {self.max_poll_seconds:g} s). "
                f"Shorten the watchlist to at most {fits} symbols or raise the call budget."
            )
        self._queue: queue.Queue[Record] = queue.Queue()
        self._seq = 0
        self._rng = random.Random(self.seed)  # noqa: S311 - jitter, not cryptography
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._fatal: Exception | None = None
        self._closing = threading.Event()
        self._last_quote_t: dict[str, int] = {}
        self._ws_logger = redacting_logger(f"{__name__}.websocket", self.api_key)
        self.websocket_up = threading.Event()
        self.connections = 0  # websocket connections opened so far
        self.rest_calls = 0

    @property
    def call_interval(self) -> float:
        """Seconds between two REST calls, so the budget is spread evenly over the minute."""
        return 60.0 / self.calls_per_minute

    @property
    def poll_period(self) -> float:
        """Seconds between two polls of the same symbol on the REST fallback."""
        return len(self.symbols) * self.call_interval

    # ---- the synchronous side -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run_thread, name="finnhub-source", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the network thread (idempotent)."""
        self._closing.set()
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(stop.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def batches(self) -> Iterator[list[Record]]:
        self.start()
        try:
            while True:
                batch: list[Record] = []
                deadline = time.monotonic() + self.batch_interval
                while len(batch) < self.max_batch:
                    remaining = deadline - time.monotonic()
                    try:
                        record = (
                            self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        break
                    batch.append(record)
                if self._fatal is not None and not batch and self._queue.empty():
                    raise self._fatal
                yield batch
        finally:
            self.close()

    # ---- the network thread ---------------------------------------------------------------------

    def _run_thread(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # anything unexpected ends the source with a redacted error
            error = describe(exc, self.api_key)
            log.error("finnhub source stopped", extra={"error": error})
            if self._fatal is None:
                self._fatal = RuntimeError(f"finnhub source stopped: {error}")

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._closing.is_set():
            self._stop.set()
        ws_down = asyncio.Event()
        async with httpx.AsyncClient(
            base_url=self.rest_url,
            headers={"X-Finnhub-Token": self.api_key},
            timeout=self.request_timeout,
        ) as http:
            tasks = [
                asyncio.create_task(self._websocket_loop(ws_down)),
                asyncio.create_task(self._poll_loop(http, ws_down)),
                asyncio.create_task(self._stop.wait()),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    raise result
        if self._fatal is None and not self._closing.is_set():
            self._fatal = RuntimeError("finnhub source stopped unexpectedly")

    def _fail(self, error: Exception) -> None:
        if self._fatal is None:
            self._fatal = error
        assert self._stop is not None
        self._stop.set()

    def _auth_failed(self, where: str, status: int) -> None:
        message = (
            f"FINNHUB_API_KEY: rejected by Finnhub ({where} answered HTTP {status}); "
            "check the key in the pipeline's Secret"
        )
        log.error("finnhub rejected the API key", extra={"where": where, "status": status})
        self._fail(FinnhubAuthError(message))

    async def _websocket_loop(self, ws_down: asyncio.Event) -> None:
        url = with_token(self.ws_url, self.api_key)
        # Not tenacity: this reconnects for as long as the source runs, and a connection that lasted
        # `stable_seconds` starts the backoff over, which tenacity's per-call try count cannot do
        # (jd/tenacity#225); the server's Retry-After is a floor under the jittered wait.
        attempt = 0
        while True:
            connected_at: float | None = None
            floor = 0.0
            try:
                async with connect(url, logger=self._ws_logger, open_timeout=self.open_timeout) as ws:
                    for symbol in self.symbols:
                        await ws.send(orjson.dumps({"type": "subscribe", "symbol": symbol}).decode())
                    connected_at = time.monotonic()
                    self.connections += 1
                    ws_down.clear()
                    self.websocket_up.set()
                    log.info(
                        "finnhub websocket connected",
                        extra={"symbols": len(self.symbols), "connection": self.connections},
                    )
                    async for message in ws:
                        self._on_message(message)
                reason = "closed by the server"
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    self._auth_failed("websocket", status)
                    return
                reason = f"handshake answered HTTP {status}"
                if status == 429:  # too many connections: wait at least as long as asked
                    floor = retry_after_seconds(exc.response.headers.get("Retry-After")) or 0.0
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = describe(exc, self.api_key)
            self.websocket_up.clear()
            ws_down.set()
            if connected_at is not None and time.monotonic() - connected_at >= self.stable_seconds:
                attempt = 0
            delay = max(floor, backoff_delay(attempt, self.reconnect_initial, self.reconnect_max, self._rng))
            attempt += 1
            log.warning(
                "finnhub websocket down; polling REST until it reconnects",
                extra={"reason": redact(reason, self.api_key), "retry_in_s": round(delay, 3)},
            )
            await asyncio.sleep(delay)

    def _on_message(self, message: str | bytes) -> None:
        raw = message.encode() if isinstance(message, str) else bytes(message)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._dead_letter(raw, f"message: not valid JSON ({exc})", None)
            return
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "trade":
            data = value.get("data")
            if not isinstance(data, list):
                self._dead_letter(raw, "message: trade message without a data list", None)
                return
            now_us = time.time_ns() // 1000
            for entry in data:
                self._on_trade(entry, now_us)
        elif kind == "ping":
            return
        elif kind == "error":
            text = redact(str(value.get("msg", "")), self.api_key)
            self.server_errors.append(text)
            log.warning("finnhub sent an error", extra={"finnhub_error": text})
        elif kind is None:
            self._dead_letter(raw, "message: expected a JSON object with a type", None)
        else:
            log.debug("finnhub message ignored", extra={"type": str(kind)[:40]})

    def _on_trade(self, entry: Any, now_us: int) -> None:
        raw = orjson.dumps(entry)
        if not isinstance(entry, dict):
            self._dead_letter(raw, "record: Finnhub trade is not a JSON object", None)
            return
        symbol = entry.get("s")
        valid_symbol = symbol if isinstance(symbol, str) and TICKER.match(symbol) else None
        price = _number(entry.get("p"))
        stamp = entry.get("t")
        volume = _number(entry.get("v"))
        if valid_symbol is None:
            reason = f"symbol: Finnhub trade field s must be an upper-case ticker, got {symbol!r}"
        elif price is None or not math.isfinite(price) or price <= 0:
            reason = f"price: Finnhub trade field p must be a finite number > 0, got {entry.get('p')!r}"
        elif isinstance(stamp, bool) or not isinstance(stamp, int) or stamp <= 0:
            reason = f"event_time: Finnhub trade field t must be epoch milliseconds, got {stamp!r}"
        elif volume is None or not math.isfinite(volume) or volume < 0 or not volume.is_integer():
            reason = f"size: Finnhub trade field v must be a whole number >= 0, got {entry.get('v')!r}"
        else:
            self._emit(valid_symbol, price, int(volume), stamp * 1000, now_us)
            return
        self._dead_letter(raw, reason, valid_symbol)

    def _emit(self, symbol: str, price: float, size: int, event_us: int, now_us: int) -> None:
        self._queue.put(Tick(symbol, price, size, event_us, now_us, SOURCE, self.producer_id, self._seq))
        self._seq += 1

    def _dead_letter(self, raw: bytes, reason: str, symbol: str | None) -> None:
        secret = self.api_key.encode()
        self._queue.put(
            BadRecord(raw.replace(secret, REDACTED.encode()), redact(reason, self.api_key), symbol)
        )

    async def _poll_loop(self, http: httpx.AsyncClient, ws_down: asyncio.Event) -> None:
        index = 0
        next_call = time.monotonic()
        rate_limited = 0
        while True:
            await ws_down.wait()
            wait = next_call - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # the websocket may be back by now
            symbol = self.symbols[index % len(self.symbols)]
            next_call = time.monotonic() + self.call_interval
            self.rest_calls += 1
            try:
                response = await http.get("/quote", params={"symbol": symbol})
            except httpx.HTTPError as exc:
                log.warning(
                    "finnhub quote request failed",
                    extra={"symbol": symbol, "error": describe(exc, self.api_key)},
                )
                index += 1
                continue
            status = response.status_code
            if status in (401, 403):
                self._auth_failed("REST /quote", status)
                return
            if status == 429:
                pause = retry_after_seconds(response.headers.get("Retry-After"))
                if pause is None:
                    pause = min(self.reconnect_max, self.rate_limit_initial * 2.0**rate_limited)
                rate_limited += 1
                next_call = time.monotonic() + max(pause, self.call_interval)
                log.warning("finnhub rate limit hit; pausing quote polls", extra={"pause_s": round(pause, 3)})
                continue  # the same symbol again after the pause
            rate_limited = 0
            index += 1
            if status != 200:
                log.warning("finnhub quote request failed", extra={"symbol": symbol, "status": status})
                continue
            self._on_quote(symbol, response.content)

    def _on_quote(self, symbol: str, raw: bytes) -> None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._dead_letter(raw, f"record: Finnhub quote for {symbol} is not valid JSON ({exc})", symbol)
            return
        if not isinstance(value, dict):
            self._dead_letter(raw, f"record: Finnhub quote for {symbol} is not a JSON object", symbol)
            return
        price = _number(value.get("c"))
        stamp = value.get("t")
        if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp < 0:
            reason = f"event_time: Finnhub quote field t must be epoch seconds, got {stamp!r}"
            self._dead_letter(raw, reason, symbol)
            return
        if stamp == 0 or price == 0:  # Finnhub's answer for a symbol it has no data for
            return
        if price is None or not math.isfinite(price) or price <= 0:
            reason = f"price: Finnhub quote field c must be a finite number > 0, got {value.get('c')!r}"
            self._dead_letter(raw, reason, symbol)
            return
        if self._last_quote_t.get(symbol) == stamp:
            return  # no trade since the last poll
        self._last_quote_t[symbol] = stamp
        self._emit(symbol, price, 0, stamp * 1_000_000, time.time_ns() // 1000)
