"""fakesnow in server mode: the real snowflake-connector-python talks to it over HTTP.

It stands in for a Snowflake account, which cannot run here. What it cannot emulate (COPY from
external s3:// stages, streams, tasks, time travel, dbt's generated MERGE) is listed in the README.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketpulse_dev.localenv.process import ManagedProcess, console, free_port, port_is_open, tail, wait_for


@dataclass
class FakeSnowflakeServer:
    workdir: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "fakesnow.log"

    def settings(self) -> dict[str, str]:
        return {
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_PORT": str(self.port),
            "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_ACCOUNT": "fakesnow",
            "SNOWFLAKE_USER": "marketpulse",
            "SNOWFLAKE_PASSWORD": "fakesnow",
        }

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": "http",
            "account": "fakesnow",
            "user": "marketpulse",
            "password": "fakesnow",
        }

    def start(self, timeout: float = 60) -> FakeSnowflakeServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "fakesnow",
            "--server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db_path",
            str(self.workdir / "databases"),
        ]
        self.process = ManagedProcess("fakesnow", argv, self.log_path, cwd=self.workdir).start()
        console.print(f"starting fakesnow on 127.0.0.1:{self.port}")
        wait_for(
            lambda: port_is_open(self.port),
            timeout=timeout,
            step="start fakesnow",
            what=f"port {self.port} to accept connections",
            log_path=self.log_path,
            alive=self.process.alive,
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_tail(self) -> str:
        return tail(self.log_path)
