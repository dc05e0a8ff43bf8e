"""Supervise workload processes: prefixed log lines, restart with backoff, clean stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from marketpulse_dev.localenv.process import stop_process_group

Printer = Callable[[str, str], None]


@dataclass
class Supervised:
    """One workload process; `restart` says whether a dead process is started again (services)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    printer: Printer
    restart: bool = True
    max_backoff: float = 30.0
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _next_start: float = 0.0
    _backoff: float = 1.0
    _started_at: float = 0.0
    _reader: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.popen = subprocess.Popen(
            list(self.argv),
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._started_at = time.monotonic()
        assert self.popen.stdout is not None
        self._reader = threading.Thread(
            target=self._pump, args=(self.popen.stdout,), daemon=True, name=f"log-{self.name}"
        )
        self._reader.start()

    def _pump(self, stream: IO[bytes]) -> None:
        with self.log_path.open("ab") as log:
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                self.printer(self.name, raw.decode("utf-8", errors="replace").rstrip())

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def check(self) -> str | None:
        """Restart a crashed service after its backoff; returns a report line when something happened."""
        if self.popen is None or self.running or not self.restart:
            return None
        now = time.monotonic()
        if self._next_start == 0.0:
            code = self.popen.returncode
            # A process that ran for a while before dying starts again quickly; a crash loop backs off.
            if now - self._started_at > 60:
                self._backoff = 1.0
            self._next_start = now + self._backoff
            self._backoff = min(self._backoff * 2, self.max_backoff)
            return f"{self.name} exited with code {code}; restarting in {self._next_start - now:.0f}s"
        if now >= self._next_start:
            self._next_start = 0.0
            self.restarts += 1
            self.start()
            return f"{self.name} restarted (restart #{self.restarts})"
        return None

    def wait(self, timeout: float | None = None) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        self.restart = False
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                stop_process_group(self.popen.pid, timeout=1)
        if self._reader is not None:
            self._reader.join(timeout=5)
