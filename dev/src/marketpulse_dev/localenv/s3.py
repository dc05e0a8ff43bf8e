"""versitygw: an Apache-2.0 S3 gateway with a persistent POSIX backend.

MinIO server is AGPL-licensed; this project neither builds nor runs it. The operator and the
workloads talk to any S3 service through the `minio` SDK, so versitygw stands in for it here.
"""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from marketpulse_dev.localenv.gobuild import GoBuild, ensure_built
from marketpulse_dev.localenv.process import ManagedProcess, console, free_port, tail, wait_for
from marketpulse_dev.localenv.versions import VERSITYGW_VERSION

VERSITYGW = GoBuild(
    name=f"versitygw-{VERSITYGW_VERSION}",
    requires={"github.com/versity/versitygw": VERSITYGW_VERSION},
    packages={"github.com/versity/versitygw/cmd/versitygw": "versitygw"},
    ldflags=f"-s -w -X main.Version={VERSITYGW_VERSION}",
    hint="first time: a few minutes",
)

HEALTH_PATH = "/health"


def ensure_versitygw() -> Path:
    return ensure_built(VERSITYGW) / "versitygw"


def supports_user_xattrs(directory: Path) -> bool:
    """versitygw keeps object metadata in user xattrs unless told to use a sidecar directory."""
    probe = directory / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.marketpulse", b"1")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    finally:
        probe.unlink(missing_ok=True)
    return True


@dataclass
class S3Server:
    """versitygw on `host` (127.0.0.1 by default) serving buckets from `workdir/data`, versions in
    `workdir/versions`, and accounts besides root from its internal IAM in `workdir/iam`.

    The IAM is what lets the operator issue per-pipeline credentials (MARKETPULSE_S3_IAM=versitygw);
    its admin API answers on the S3 port itself, signed with the root credentials."""

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    access_key: str = "marketpulse"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host)

    @property
    def log_path(self) -> Path:
        return self.workdir / "s3.log"

    def settings(self) -> dict[str, str]:
        return {
            "S3_ENDPOINT": self.endpoint,
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
            "S3_REGION": "us-east-1",
        }

    def start(self, timeout: float = 30) -> S3Server:
        binary = ensure_versitygw()
        # Absolute paths: versitygw resolves a relative versioning dir against its data root.
        data, versions, sidecar, iam = (
            self.workdir.resolve() / d for d in ("data", "versions", "meta", "iam")
        )
        for directory in (data, versions, sidecar, iam):
            directory.mkdir(parents=True, exist_ok=True)
        posix_args = ["posix", "--versioning-dir", str(versions)]
        if not supports_user_xattrs(data):
            posix_args += ["--sidecar", str(sidecar)]
        argv = [
            str(binary),
            "--port",
            f"{self.host}:{self.port}",
            "--health",
            HEALTH_PATH,
            "--iam-dir",
            str(iam),
            # Its IAM cache keys entries by request strings the HTTP server reuses; a removed
            # account was seen to authenticate afterwards. Without it, revocation is immediate.
            "--iam-cache-disable",
            *posix_args,
            str(data),
        ]
        env = {"ROOT_ACCESS_KEY": self.access_key, "ROOT_SECRET_KEY": self.secret_key}
        self.process = ManagedProcess("s3", argv, self.log_path, env=env).start()
        console.print(f"starting versitygw {VERSITYGW_VERSION} on {self.endpoint}")
        wait_for(
            self.ready,
            timeout=timeout,
            step="start the S3 server",
            what=f"GET {HEALTH_PATH} to answer 200",
            log_path=self.log_path,
            alive=self.process.alive,
        )
        return self

    def ready(self) -> bool:
        return httpx.get(self.endpoint + HEALTH_PATH, timeout=1).status_code == 200

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_tail(self) -> str:
        return tail(self.log_path)
