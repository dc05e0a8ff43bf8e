"""What the figures were measured on: they mean little without it."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from marketpulse_dev.localenv import versions

LIBRARIES = (
    "marketpulse",
    "confluent-kafka",
    "duckdb",
    "dbt-core",
    "dbt-duckdb",
    "minio",
    "orjson",
    "pyarrow",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _java() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0] if first else "unknown"


def _library(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def describe_machine() -> dict[str, str]:
    load = os.getloadavg()
    components = {
        "Kafka": versions.KAFKA_VERSION,
        "versitygw": versions.VERSITYGW_VERSION,
        "Kubernetes": versions.KUBERNETES_VERSION,
        "etcd": versions.ETCD_VERSION,
        "helm": versions.HELM_VERSION,
    }
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": _java(),
        "components": ", ".join(f"{name} {pin}" for name, pin in components.items()),
        "libraries": ", ".join(f"{name} {_library(name)}" for name in LIBRARIES),
        "load average at start (1, 5, 15 min)": ", ".join(f"{value:.2f}" for value in load),
    }
