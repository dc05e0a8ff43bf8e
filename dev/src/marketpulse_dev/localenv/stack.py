"""`marketpulse dev up|status|down`: the local components as long-running background processes.

State lives in `<state-dir>/dev/state.json` (pids, ports, settings) and connection settings in
`<state-dir>/dev.env`, which a shell can `source`. Ports are remembered so that a restarted stack
keeps its addresses; data directories are kept until `down --purge`.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from marketpulse_dev.localenv import node_network
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.files import write_private
from marketpulse_dev.localenv.gobuild import GoBuild, ensure_built
from marketpulse_dev.localenv.helm import HELM, ensure_helm
from marketpulse_dev.localenv.kafka import KafkaServer, ensure_kafka
from marketpulse_dev.localenv.kube import (
    ETCD,
    KUBERNETES,
    ControlPlane,
    ensure_control_plane_binaries,
    ensure_kubectl,
)
from marketpulse_dev.localenv.node import Node, node_ready
from marketpulse_dev.localenv.node import prepare as prepare_node
from marketpulse_dev.localenv.node import remove_leftovers as remove_node_leftovers
from marketpulse_dev.localenv.node_binaries import CONTAINERD, COREDNS, RUNC, ensure_node_binaries
from marketpulse_dev.localenv.process import ManagedProcess, pid_alive, port_is_open, stop_process_group
from marketpulse_dev.localenv.promtool import PROMTOOL, ensure_promtool
from marketpulse_dev.localenv.s3 import VERSITYGW, S3Server, ensure_versitygw
from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

# `cluster` is a control plane with a real node (containerd, kubelet, ...): it needs root and changes
# this machine's network (see node_network.py), so plain `dev up` leaves it out. It starts first, so
# that Kafka and S3 started beside it listen where its pods reach them.
COMPONENTS = ("cluster", "kafka", "s3", "k8s", "snowflake")
DEFAULT_COMPONENTS = ("kafka", "s3", "k8s", "snowflake")
# Tools the tests run that `dev obtain` fetches too but that `dev up` has nothing to start for.
TOOLS: dict[str, Callable[[], object]] = {"promtool": ensure_promtool}
TOOL_BUILDS: dict[str, tuple[GoBuild, ...]] = {"promtool": (PROMTOOL,)}
# Builds side by side: their module downloads and links overlap the compilation of the others.
PARALLEL_BUILDS = 4
OBTAINABLE = (*COMPONENTS, *TOOLS)


class Server(Protocol):
    def settings(self) -> dict[str, str]: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class ComponentSpec:
    obtain: Callable[[], object]
    build: Callable[[Path, dict[str, Any]], tuple[Server, list[ManagedProcess]]]
    port_names: tuple[str, ...]
    # What stopping the processes leaves behind (mounts, network namespaces, cgroups), removed after.
    cleanup: Callable[[Path], None] | None = None
    # Checks of the machine before anything is obtained or started (root, kernel features, routes).
    preflight: Callable[[], None] | None = None
    # The Go builds `obtain` needs, which `dev obtain` runs side by side.
    builds: tuple[GoBuild, ...] = ()


def _kafka(workdir: Path, ports: dict[str, Any]) -> tuple[Server, list[ManagedProcess]]:
    server = replace(KafkaServer(workdir, host=_listen_host(workdir)), **ports).start()
    assert server.process is not None
    return server, [server.process]


def _s3(workdir: Path, ports: dict[str, Any]) -> tuple[Server, list[ManagedProcess]]:
    server = replace(S3Server(workdir, host=_listen_host(workdir)), **ports).start()
    assert server.process is not None
    return server, [server.process]


def _listen_host(workdir: Path) -> str:
    """The node link's host address while a `cluster` runs beside (pods reach it), else loopback."""
    return (
        node_network.HOST_IP
        if (workdir.parent / "cluster").is_dir() and node_network.exists()
        else "127.0.0.1"
    )


def _link_tools(workdir: Path) -> None:
    # kubectl and helm of matching versions, linked where dev.env puts them on PATH.
    tools = workdir.parent.parent / "bin"
    tools.mkdir(parents=True, exist_ok=True)
    for binary in (ensure_kubectl(), ensure_helm()):
        link = tools / binary.name
        link.unlink(missing_ok=True)
        link.symlink_to(binary)


def _k8s(workdir: Path, ports: dict[str, Any]) -> tuple[Server, list[ManagedProcess]]:
    _link_tools(workdir)
    server = replace(ControlPlane(workdir), **ports).start()
    return server, list(server.processes)


@dataclass
class _Cluster:
    plane: ControlPlane
    node: Node

    def settings(self) -> dict[str, str]:
        return {**self.plane.settings(), **self.node.settings()}

    def stop(self) -> None:
        self.node.stop()
        self.plane.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.plane, name)


def _cluster(workdir: Path, ports: dict[str, Any]) -> tuple[Server, list[ManagedProcess]]:
    _link_tools(workdir)
    # The API server listens on the node link, which must exist first.
    prepare_node(workdir / "node")
    plane = replace(
        ControlPlane(workdir / "control-plane", host=node_network.HOST_IP, for_node=True), **ports
    )
    try:
        plane.start()
        node = Node(workdir / "node", plane).start()
    except BaseException:
        plane.stop()
        remove_node_leftovers(workdir / "node")
        raise
    return _Cluster(plane, node), [*plane.processes, *node.processes]


def _obtain_cluster() -> None:
    _obtain_k8s()
    ensure_node_binaries()


def _snowflake(workdir: Path, ports: dict[str, Any]) -> tuple[Server, list[ManagedProcess]]:
    server = replace(FakeSnowflakeServer(workdir), **ports).start()
    assert server.process is not None
    return server, [server.process]


def _obtain_k8s() -> None:
    ensure_control_plane_binaries()
    ensure_helm()


SPECS: dict[str, ComponentSpec] = {
    "cluster": ComponentSpec(
        _obtain_cluster,
        _cluster,
        ("etcd_port", "etcd_peer_port", "apiserver_port", "controller_manager_port"),
        cleanup=lambda workdir: remove_node_leftovers(workdir / "node"),
        preflight=node_network.preflight,
        builds=(KUBERNETES, ETCD, HELM, CONTAINERD, RUNC, COREDNS),
    ),
    "kafka": ComponentSpec(ensure_kafka, _kafka, ("port", "controller_port", "sasl_port")),
    "s3": ComponentSpec(ensure_versitygw, _s3, ("port",), builds=(VERSITYGW,)),
    "k8s": ComponentSpec(
        _obtain_k8s,
        _k8s,
        ("etcd_port", "etcd_peer_port", "apiserver_port", "controller_manager_port"),
        builds=(KUBERNETES, ETCD, HELM),
    ),
    "snowflake": ComponentSpec(lambda: None, _snowflake, ("port",)),
}


def parse_only(
    only: str | None, choices: Sequence[str] = COMPONENTS, default: Sequence[str] = DEFAULT_COMPONENTS
) -> list[str]:
    """`--only kafka,s3` → ["kafka", "s3"]; an unknown name is a user error that lists the valid ones."""
    if not only:
        return list(default)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise ValueError(
            f"--only: unknown component(s) {', '.join(unknown)}; choose from {', '.join(choices)}"
        )
    if choices is COMPONENTS and "cluster" in names and "k8s" in names:
        raise ValueError("--only: `cluster` includes its own control plane; choose cluster or k8s, not both")
    return [n for n in choices if n in names]


class DevStack:
    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir
        self.dir = state_dir / "dev"
        self.state_file = self.dir / "state.json"
        self.env_file = state_dir / "dev.env"

    def load(self) -> dict[str, Any]:
        if not self.state_file.exists():
            return {}
        data: dict[str, Any] = orjson.loads(self.state_file.read_bytes())
        return data

    def save(self, state: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # Both hold the components' connection settings, S3 keys included: this user's only.
        write_private(self.state_file, orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        self.write_env(state)

    def write_env(self, state: dict[str, Any]) -> None:
        lines = ["# Written by `marketpulse dev up`; load with: source .marketpulse/dev.env"]
        if "k8s" in state or "cluster" in state:
            lines.append(f'export PATH={shlex.quote(str(self.root.resolve() / "bin"))}:"$PATH"')
        for name in COMPONENTS:
            for key, value in state.get(name, {}).get("settings", {}).items():
                lines.append(f"export {key}={shlex.quote(value)}")
        if not any(name in state for name in COMPONENTS):
            # Nothing runs: no settings to source, and no credentials left lying around.
            self.env_file.unlink(missing_ok=True)
            return
        write_private(self.env_file, "\n".join(lines) + "\n")

    @staticmethod
    def is_running(entry: dict[str, Any]) -> bool:
        return bool(entry.get("pids")) and all(pid_alive(pid) for pid in entry["pids"])

    def obtain(self, names: Iterable[str]) -> None:
        """Obtain components: every Go build and Kafka's download side by side, then what is left
        (checks and links, at once since everything is cached by then)."""
        wanted = list(names)
        builds = {
            build.name: build
            for name in wanted
            for build in (TOOL_BUILDS[name] if name in TOOLS else SPECS[name].builds)
        }
        with ThreadPoolExecutor(max_workers=PARALLEL_BUILDS) as pool:
            jobs = [pool.submit(ensure_built, build, live=False) for build in builds.values()]
            if "kafka" in wanted:
                jobs.append(pool.submit(ensure_kafka, live=False))
            # Every job runs to its end; the first failure is raised after all have finished.
            errors = [job.exception() for job in jobs]
        for error in errors:
            if error is not None:
                raise error
        for name in wanted:
            if name in TOOLS:
                TOOLS[name]()
            else:
                SPECS[name].obtain()

    def up(self, names: Iterable[str]) -> dict[str, Any]:
        names = list(names)
        for name in names:  # before anything is obtained, started or written
            preflight = SPECS[name].preflight
            if preflight is not None:
                preflight()
        state = self.load()
        for name in names:
            entry = state.get(name)
            if entry and self.is_running(entry):
                continue
            spec = SPECS[name]
            if entry:  # partly dead: clean up what is left before starting again
                self._stop_entry(entry)
                if spec.cleanup is not None:
                    spec.cleanup(self.dir / name)
            spec.obtain()
            ports = self._reusable_ports(entry)
            server, processes = spec.build(self.dir / name, ports)
            state[name] = {
                "pids": [p.pid for p in processes],
                "ports": {k: getattr(server, k) for k in spec.port_names},
                "settings": server.settings(),
                "logs": [str(p.log_path) for p in processes],
            }
            self.save(state)
        return state

    @staticmethod
    def _reusable_ports(entry: dict[str, Any] | None) -> dict[str, int]:
        if not entry:
            return {}
        ports: dict[str, int] = entry.get("ports", {})
        return ports if not any(port_is_open(p) for p in ports.values()) else {}

    @staticmethod
    def _stop_entry(entry: dict[str, Any]) -> None:
        for pid in reversed(entry.get("pids", [])):
            stop_process_group(pid)

    def down(self, purge: bool = False) -> list[str]:
        state = self.load()
        stopped = []
        for name in reversed(COMPONENTS):
            if name in state:
                self._stop_entry(state.pop(name))
                stopped.append(name)
            cleanup = SPECS[name].cleanup
            if cleanup is not None and (self.dir / name).exists():
                cleanup(self.dir / name)
        self.save(state)
        if purge:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.env_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> list[tuple[str, str, str, str]]:
        """(component, state, pids, connection settings) per component."""
        state = self.load()
        rows = []
        for name in COMPONENTS:
            entry = state.get(name)
            if not entry:
                rows.append((name, "not started", "", ""))
                continue
            alive = [pid_alive(p) for p in entry["pids"]]
            label = "running" if all(alive) else ("stopped" if not any(alive) else "degraded")
            if name == "cluster" and all(alive):
                label = f"running, node {node_ready(Path(entry['settings']['KUBECONFIG']))}"
            pids = " ".join(str(p) for p in entry["pids"])
            settings = " ".join(
                f"{k}={v}" for k, v in entry["settings"].items() if "SECRET" not in k and "PASSWORD" not in k
            )
            rows.append((name, label, pids, settings))
        return rows


__all__ = ["COMPONENTS", "DEFAULT_COMPONENTS", "OBTAINABLE", "ComponentError", "DevStack", "parse_only"]
