"""A fake Finnhub for tests: the trades websocket and the REST `/quote` endpoint on 127.0.0.1.

It speaks Finnhub's documented formats (see `marketpulse.sources.finnhub`) and has knobs tests turn:
scripted trades sent after a subscription, pushed trades, raw (malformed) messages, error messages,
forced disconnects, refusing websocket handshakes (the websocket is "down"), HTTP 429 after N REST calls
with a Retry-After header, and a required token (401 otherwise, as Finnhub answers a bad key).

Both servers run on one asyncio loop in a daemon thread, each on a free port; the REST server is a
websockets server whose `process_request` answers every request itself, so no other HTTP library is
needed. Methods called from the test thread are thread-safe.

    with FakeFinnhub(token="t0ken") as fake:
        source = FinnhubSource(["AAPL"], "t0ken", "p1", ws_url=fake.ws_url, rest_url=fake.rest_url)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from marketpulse.sources.finnhub import redacting_logger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestCall:
    at: float  # time.monotonic() when the request arrived
    symbol: str
    status: int


@dataclass
class FakeFinnhub:
    token: str = "fake-token"  # noqa: S105 - a test fixture's token
    # Trades sent to a connection right after it subscribes to the symbol (each list is sent once).
    script: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # The REST answer per symbol; an unknown symbol gets Finnhub's all-zero quote.
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    accept_websockets: bool = True  # False: handshakes are refused with HTTP 503
    rate_limit_after: int | None = None  # answer 429 once this many REST calls were served...
    retry_after: float = 1.0  # ...for this many seconds (sent as Retry-After), then count again
    send_retry_after: bool = True
    subscriptions: list[tuple[int, str]] = field(default_factory=list)  # (connection number, symbol)
    rest_calls: list[RestCall] = field(default_factory=list)
    connections: int = 0  # websocket connections accepted so far

    def __post_init__(self) -> None:
        self._lock = threading.RLock()  # wait_until conditions call the accessors
        self._changed = threading.Condition(self._lock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-finnhub", daemon=True)
        self._clients: set[ServerConnection] = set()
        self._served_since_limit = 0
        self._limited_until = 0.0
        self._ws_server: Server | None = None
        self._rest_server: Server | None = None
        self.ws_url = ""
        self.rest_url = ""

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeFinnhub:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        quiet = redacting_logger(f"{__name__}.server", self.token)
        self._ws_server = await serve(
            self._handler, "127.0.0.1", 0, process_request=self._ws_request, logger=quiet
        )
        self._rest_server = await serve(
            self._never, "127.0.0.1", 0, process_request=self._rest_request, logger=quiet
        )
        ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        rest_port = next(iter(self._rest_server.sockets)).getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{ws_port}"
        self.rest_url = f"http://127.0.0.1:{rest_port}/api/v1"

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _stop(self) -> None:
        for server in (self._ws_server, self._rest_server):
            if server is not None:
                server.close()
                await server.wait_closed()

    def __enter__(self) -> FakeFinnhub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, None], timeout: float = 5.0) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    # ---- knobs for tests ------------------------------------------------------------------------

    def push_trades(self, *trades: dict[str, Any]) -> None:
        """Send one trade message with these trades to every connected client."""
        self.send_raw(orjson.dumps({"type": "trade", "data": list(trades)}).decode())

    def send_error(self, message: str) -> None:
        self.send_raw(orjson.dumps({"type": "error", "msg": message}).decode())

    def send_ping(self) -> None:
        self.send_raw('{"type":"ping"}')

    def send_raw(self, text: str) -> None:
        self._call(self._broadcast(text))

    def disconnect_all(self, *, abrupt: bool = False) -> None:
        """Drop every websocket connection: a close frame (1001 going away), or a reset if `abrupt`."""
        self._call(self._disconnect(abrupt))

    def wait_until(self, condition: Callable[[FakeFinnhub], bool], timeout: float = 10.0) -> None:
        """Block until `condition(self)` holds (checked whenever the fake's state changes)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"fake finnhub: condition not met within {timeout} s")
                self._changed.wait(min(remaining, 0.05))

    def symbols_of(self, connection: int) -> set[str]:
        with self._lock:
            return {symbol for number, symbol in self.subscriptions if number == connection}

    def calls(self, symbol: str | None = None) -> list[RestCall]:
        with self._lock:
            return [c for c in self.rest_calls if symbol is None or c.symbol == symbol]

    # ---- the servers ----------------------------------------------------------------------------

    def _authorised(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.token.encode())

    def _ws_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self.accept_websockets:
            return connection.respond(503, "Service Unavailable\n")
        token = parse_qs(urlsplit(request.path).query).get("token", [None])[0]
        if not self._authorised(token):
            return connection.respond(401, "Invalid API key\n")
        return None

    async def _handler(self, connection: ServerConnection) -> None:
        with self._changed:
            self.connections += 1
            number = self.connections
            self._clients.add(connection)
            self._changed.notify_all()
        try:
            async for message in connection:
                try:
                    value = orjson.loads(message)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(value, dict) or value.get("type") != "subscribe":
                    continue
                symbol = str(value.get("symbol"))
                with self._changed:
                    self.subscriptions.append((number, symbol))
                    scripted = self.script.pop(symbol, [])
                    self._changed.notify_all()
                for trade in scripted:
                    await connection.send(orjson.dumps({"type": "trade", "data": [trade]}).decode())
        except ConnectionClosed:
            pass
        finally:
            with self._changed:
                self._clients.discard(connection)
                self._changed.notify_all()

    async def _never(self, connection: ServerConnection) -> None:  # the REST server never upgrades
        await connection.close()

    async def _broadcast(self, text: str) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                await client.send(text)
            except ConnectionClosed:
                continue

    async def _disconnect(self, abrupt: bool) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            if abrupt:
                client.transport.abort()
            else:
                await client.close(1001, "going away")

    def _rest_request(self, connection: ServerConnection, request: Request) -> Response:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        symbol = query.get("symbol", [""])[0]
        token = request.headers.get("X-Finnhub-Token") or query.get("token", [None])[0]
        now = time.monotonic()
        with self._changed:
            if parts.path != "/api/v1/quote":
                status, body = 404, {"error": "Not found"}
            elif not self._authorised(token):
                status, body = 401, {"error": "Invalid API key."}
            elif now < self._limited_until:
                status, body = 429, {"error": "API limit reached. Please try again later."}
            elif self.rate_limit_after is not None and self._served_since_limit >= self.rate_limit_after:
                self._limited_until = now + self.retry_after
                self._served_since_limit = 0
                status, body = 429, {"error": "API limit reached. Please try again later."}
            else:
                self._served_since_limit += 1
                zero = {"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0}
                status, body = 200, self.quotes.get(symbol, zero)
            self.rest_calls.append(RestCall(now, symbol, status))
            self._changed.notify_all()
        response = connection.respond(status, "")
        payload = orjson.dumps(body)
        for name in ("Content-Type", "Content-Length"):
            del response.headers[name]
        response.headers["Content-Type"] = "application/json; charset=utf-8"
        response.headers["Content-Length"] = str(len(payload))
        if status == 429 and self.send_retry_after:
            response.headers["Retry-After"] = f"{self.retry_after:g}"
        response.body = payload
        return response
