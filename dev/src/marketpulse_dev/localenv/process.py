"""Start, watch and stop server processes; run build commands with visible progress."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from marketpulse_dev.localenv.errors import ComponentError

console = Console(stderr=True, highlight=False, soft_wrap=True)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, or an empty string if it does not exist yet."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range.

    A port is chosen before its server binds it, often seconds later; a port the kernel hands out for
    `bind(0)` may meanwhile become the local end of an outgoing connection (kube-apiserver to etcd,
    say), and the server then fails with "address already in use". Ports below the ephemeral range are
    never given to outgoing connections.
    """
    low, _ = _ephemeral_range()
    if low > 11000:
        for _ in range(200):
            port = random.randrange(10000, low)  # noqa: S311 - spreads choices, not a secret
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    step: str,
    what: str,
    interval: float = 0.25,
    log_path: Path | None = None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll `predicate` until it is true; fail with the component's log after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if predicate():
                return
        if alive is not None and not alive():
            raise ComponentError(
                step, f"the process exited before {what}", tail(log_path) if log_path else ""
            )
        if time.monotonic() > deadline:
            raise ComponentError(
                step, f"timed out after {timeout:.0f}s waiting for {what}", tail(log_path) if log_path else ""
            )
        time.sleep(interval)


@dataclass
class ManagedProcess:
    """A server started in its own process group, logging to a file, stopped with SIGTERM then SIGKILL."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(self.env or {})}
        with self.log_path.open("ab") as log:
            try:
                self.popen = subprocess.Popen(
                    list(self.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,  # own process group: stop() reaches children too
                )
            except OSError as exc:
                raise ComponentError(f"start {self.name}", f"cannot execute {self.argv[0]}: {exc}") from exc
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen is None:
            return
        stop_process_group(self.popen.pid, timeout=timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_process_group(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM the group led by `pid`, then SIGKILL whatever is left after `timeout` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid) and not _group_has_members(pid):
                return
            time.sleep(0.1)


def _group_has_members(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[-1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise obtaining one component across processes (two terminals, parallel test runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_step(
    step: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    hint: str = "",
    live: bool = True,
) -> None:
    """Run one build command with visible progress; on failure name the step and show the log.

    On a terminal a spinner shows the elapsed time; elsewhere (CI, or `live=False` for work done in
    a background thread) a line is printed at the start and every minute, so long builds never look hung.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    label = f"{step}{f' ({hint})' if hint else ''}"
    spinner = live and console.is_terminal
    if not spinner:
        console.print(f"→ {label} … (log: {log_path})")
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})}
            )
        except FileNotFoundError as exc:
            raise ComponentError(step, f"{argv[0]} is not installed or not on PATH") from exc
        status = console.status(label) if spinner else contextlib.nullcontext()
        next_heartbeat = started + 60
        with status:
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if spinner:
                    status.update(f"{label} … {elapsed:.0f}s")  # type: ignore[union-attr]
                elif time.monotonic() >= next_heartbeat:
                    console.print(f"  … {step}: {elapsed / 60:.0f} min so far")
                    next_heartbeat += 60
                time.sleep(0.5)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise ComponentError(
            step, f"`{' '.join(argv)}` exited with {proc.returncode} (log: {log_path})", tail(log_path)
        )
    console.print(f"[green]✓[/] {step} ({elapsed:.0f}s)")
