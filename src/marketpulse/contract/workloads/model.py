"""The shape of a rendered workload: plain data that any executor can run.

Deliberately free of Kubernetes and kopf: the operator turns a `Workload` into a Deployment or a
CronJob, the local executor into a supervised process whose environment it builds from `env`
(resolving `SecretRef`s from wherever it keeps secrets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# How a workload runs: always on (Deployment); or, in the words of the spec's `transform.mode`, one
# run per schedule (CronJob) or a single looping instance that never overlaps with itself
# (Deployment, one replica, Recreate). The process reads the same word (MARKETPULSE_TRANSFORM_MODE).
RunMode = Literal["service", "cron", "continuous"]


@dataclass(frozen=True)
class SecretRef:
    """A key in a Secret in the pipeline's namespace. The value is never read by the renderer."""

    name: str
    key: str


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: a literal value or a reference to a Secret key, never both."""

    name: str
    value: str | None = None
    secret: SecretRef | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.secret is None):
            raise ValueError(f"env {self.name}: exactly one of value or secret")

    def manifest(self) -> dict[str, Any]:
        """The Kubernetes EnvVar form; secrets stay references (`valueFrom.secretKeyRef`)."""
        if self.secret is not None:
            return {
                "name": self.name,
                "valueFrom": {"secretKeyRef": {"name": self.secret.name, "key": self.secret.key}},
            }
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True)
class Port:
    name: str
    port: int


@dataclass(frozen=True)
class Resources:
    """Requests and limits in Kubernetes quantity syntax, canonical forms only (`250m`, `256Mi`).

    Canonical spellings matter: the API server normalises quantities, and a spelling it rewrites
    would make the operator see a difference where there is none and write on every reconcile.
    """

    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    cpu_limit: str | None = None
    # Node disk: the /tmp emptyDir plus the container's logs (see scratch.py); requested as it is limited.
    ephemeral_storage: str | None = None

    def manifest(self) -> dict[str, Any]:
        requests = {"cpu": self.cpu_request, "memory": self.memory_request}
        limits = {"memory": self.memory_limit}
        if self.cpu_limit is not None:
            limits["cpu"] = self.cpu_limit
        if self.ephemeral_storage is not None:
            requests["ephemeral-storage"] = limits["ephemeral-storage"] = self.ephemeral_storage
        return {"requests": requests, "limits": limits}


@dataclass(frozen=True)
class SecretFile:
    """A Secret key mounted as a file (e.g. a PEM key a library wants by path)."""

    volume: str
    secret: SecretRef
    mount_dir: str
    file_name: str

    @property
    def path(self) -> str:
        return f"{self.mount_dir}/{self.file_name}"


@dataclass(frozen=True)
class Workload:
    """One process of the pipeline: what to run, with which environment, exposing which ports."""

    component: str
    command: tuple[str, ...]
    env: tuple[EnvVar, ...]
    mode: RunMode = "service"
    ports: tuple[Port, ...] = ()
    resources: Resources = field(default_factory=Resources)
    # Directory of the warehouse file when this workload owns it (DuckDB: one writer only).
    warehouse_dir: str | None = None
    secret_files: tuple[SecretFile, ...] = ()
    # Cron schedule and time zone, for mode "cron".
    schedule: str | None = None
    time_zone: str | None = None
    # Seconds the process may take to stop after SIGTERM; None keeps the platform's default.
    stop_grace_seconds: int | None = None
    # Size limit of the /tmp scratch directory (a Kubernetes quantity); None: unbounded.
    scratch_limit: str | None = None

    def env_manifest(self) -> list[dict[str, Any]]:
        return [var.manifest() for var in self.env]

    def env_value(self, name: str) -> str | None:
        """The literal value of a variable (None when unset or a secret reference)."""
        return next((var.value for var in self.env if var.name == name), None)
