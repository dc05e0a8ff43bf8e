"""One writer per warehouse: a lease a transform holds for a whole cycle (load, dbt, publish).

Two transforms of one pipeline can run at once: a CronJob run still going when the pipeline switches
to continuous mode, a Job started by hand, a pod its node lost that still runs. The one that does not
get the lease skips its cycle (logged, counted) and tries again at its next one; it never waits
forever, never fails for it, and never loads what the other one loads.

DuckDB: an exclusive `flock` on `<database>.lease` beside the database file, so on the same volume
the database is on. DuckDB's own file lock covers one connection, and a cycle opens the file three
times (load, dbt, publish): between those another process could take the file and, for instance, run
dbt beside this one's. The kernel drops a `flock` with its process, so a killed holder releases it.

Snowflake: a one-row table, `<bronze schema>._transform_lease` (holder, expires_at). Taking it is one
UPDATE that succeeds only when the lease is free, expired or already this process's; every load
transaction renews it as its first statement, which on Snowflake also locks the table until COMMIT,
and then checks the manifest again for its chunk, so even a holder whose lease ran out while it
stalled cannot load an object another transform loaded. While a cycle runs (dbt included), a thread
renews the lease every quarter of `LEASE_SECONDS`; a transform killed mid-cycle stops renewing, and
its lease holds the others up no longer than that. A cycle that ends releases it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# How long a Snowflake lease outlives its holder's last renewal: what a crashed holder costs the others.
LEASE_SECONDS = 60
# How long a Snowflake statement waits for a table lock (here: the lease's, held by another
# transform's load transaction) before giving up; Snowflake's default is 12 hours.
LOCK_TIMEOUT_SECONDS = 120
LEASE_TABLE = "_transform_lease"

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseState:
    held: bool
    holder: str  # this process when held; otherwise who holds it, as far as known


class LeaseHeldError(RuntimeError):
    """Another transform holds the lease: this cycle is skipped, not failed."""

    def __init__(self, holder: str, detail: str = "") -> None:
        super().__init__(f"another transform holds the lease ({holder or 'unknown'}){detail}")
        self.holder = holder


def process_holder() -> str:
    """Who this process is, in a lease: its host (the pod's name), pid, and a nonce for pid reuse."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class FileLease:
    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder

    @contextlib.contextmanager
    def hold(self) -> Iterator[LeaseState]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield LeaseState(False, os.pread(fd, 256, 0).decode(errors="replace").strip())
                return
            # Who holds it, for the log line of the one that does not get it (on a full disk: unknown).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, self.holder.encode(), 0)
            try:
                yield LeaseState(True, self.holder)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class SnowflakeLease:
    """`connect` opens a `snowflake.connector` connection (closed again when the cycle ends)."""

    def __init__(
        self, connect: Callable[[], Any], schema: str, holder: str, seconds: int = LEASE_SECONDS
    ) -> None:
        self.connect = connect
        self.table = f"{schema}.{LEASE_TABLE}"
        self.schema = schema
        self.holder = holder
        self.seconds = seconds

    @contextlib.contextmanager
    def hold(self) -> Iterator[LeaseState]:
        with self.connect() as con:
            execute = executor(con)
            self.ensure_table(execute)
            if not self.take(execute):
                rows = execute(f"select holder from {self.table}", [])
                yield LeaseState(False, str(rows[0][0]) if rows else "")
                return
            stop = threading.Event()
            # The heartbeat has the lease's connection to itself until it stops.
            heartbeat = threading.Thread(target=self._heartbeat, args=(execute, stop), daemon=True)
            heartbeat.start()
            try:
                yield LeaseState(True, self.holder)
            finally:
                stop.set()
                heartbeat.join()
                # Best effort: a lease not released expires on its own.
                with contextlib.suppress(Exception):
                    execute(
                        f"update {self.table} set expires_at = current_timestamp() where holder = %s",
                        [self.holder],
                    )

    def _heartbeat(self, execute: Execute, stop: threading.Event) -> None:
        while not stop.wait(self.seconds / 4):
            try:
                self.renew(execute)
            except Exception as exc:  # the next load transaction's renewal is the one that decides
                log.warning("transform lease not renewed", extra={"error": str(exc)})

    def take(self, execute: Execute) -> bool:
        """Take the lease if it is free, expired or this holder's already (no heartbeat: see `hold`)."""
        try:
            return bool(
                _count(
                    execute(
                        f"update {self.table} set holder = %s, "
                        "expires_at = dateadd(second, %s, current_timestamp()) "
                        "where holder = %s or expires_at < current_timestamp()",
                        [self.holder, self.seconds, self.holder],
                    )
                )
            )
        except Exception as exc:
            if not is_contention(exc):
                raise
            return False  # the holder's load transaction has the row: it is held

    def ensure_table(self, execute: Execute) -> None:
        # Created with its one row in one statement: two transforms starting at once cannot each
        # insert a row (Snowflake does not lock INSERTs), and DDL is serialised.
        execute(f"create schema if not exists {self.schema}", [])
        execute(
            f"create table if not exists {self.table} as select '' as holder, "
            "to_timestamp_tz('1970-01-01 00:00:00 +00:00') as expires_at",
            [],
        )

    def renew(self, execute: Execute) -> None:
        """The first statement of a load transaction: renew the lease or raise `LeaseHeldError`.

        On Snowflake the UPDATE locks the lease table until the transaction ends, so another
        transform's attempt to take the lease waits for this load to commit or roll back.
        """
        try:
            renewed = _count(
                execute(
                    f"update {self.table} set expires_at = dateadd(second, %s, current_timestamp()) "
                    "where holder = %s and expires_at > current_timestamp()",
                    [self.seconds, self.holder],
                )
            )
        except Exception as exc:
            if not is_contention(exc):
                raise
            renewed = 0
        if not renewed:
            rows = execute(f"select holder from {self.table}", [])
            raise LeaseHeldError(str(rows[0][0]) if rows else "", ": this one's ran out mid-cycle")


def is_contention(exc: Exception) -> bool:
    """A lock wait that timed out (Snowflake) or a write-write conflict (DuckDB, under fakesnow)."""
    message = str(exc).lower()
    return "lock" in message or "conflict" in message


def _count(rows: list[tuple[Any, ...]]) -> int:
    # Snowflake answers an UPDATE with one row: (rows updated, multi-joined rows updated).
    return int(rows[0][0]) if rows and rows[0] else 0


def executor(con: Any) -> Execute:
    """`execute(sql, params)` on a connection of `snowflake.connector`: the rows, if any."""

    def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with con.cursor() as cursor:
            cursor.execute(sql, list(params) or None)
            rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
            return rows

    return execute
