"""`marketpulse dev up --only cluster`: a node that reports Ready, recovers from a crash, and leaves
nothing behind on `dev down`; what cannot work is refused in one line before anything is created.

These run before the session's `node_cluster` starts (this module sorts first): one node per machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from marketpulse_dev.localenv import node_network
from marketpulse_dev.localenv.node import CGROUP_ROOT, KUBELET_ROOT, SOCKET_DIR

pytestmark = pytest.mark.node

MARKETPULSE = [str(Path(sys.executable).parent / "marketpulse")]


def dev(*args: str, state: Path, user: int | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*MARKETPULSE, "dev", *args, "--state-dir", str(state)]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def what_is_left(state: Path) -> dict[str, object]:
    """Everything a node could leave on this machine, by kind."""
    roots = (str(state), str(KUBELET_ROOT.parent), str(SOCKET_DIR))
    mounts = [
        point
        for point in (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
        if point.startswith(roots)
    ]
    processes = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(state).encode() in cmdline.read_bytes():
                processes.append(cmdline.parent.name)
        except OSError:
            continue
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=False).stdout
    return {
        "processes": processes,
        "mounts": mounts,
        "netns": node_network.netns_path().exists(),
        "host link": node_network.exists(),
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}")],
        "host iptables rules": [r for r in rules.splitlines() if "KUBE-" in r or "CNI-" in r],
        "host routes": [r for r in routes.splitlines() if node_network.HOST_LINK in r],
        "/var/log/containers": Path("/var/log/containers").exists(),
        "runtime dirs": [str(d) for d in (KUBELET_ROOT.parent, SOCKET_DIR) if d.exists()],
    }


NOTHING = {
    "processes": [],
    "mounts": [],
    "netns": False,
    "host link": False,
    "cgroups": [],
    "host iptables rules": [],
    "host routes": [],
    "/var/log/containers": False,
    "runtime dirs": [],
}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    if node_network.exists():
        pytest.fail(
            "a node already runs on this machine (dev up --only cluster?); stop it first", pytrace=False
        )
    return tmp_path / "state"


def test_up_reports_the_node_ready_recovers_after_a_crash_and_down_leaves_nothing(state: Path) -> None:
    started = dev("up", "--only", "cluster", state=state)
    assert started.returncode == 0, started.stderr
    status = dev("status", state=state).stdout
    assert "marketpulse-node" in status
    assert "Ready" in status

    # A crash: every process of the cluster killed at once, mounts and network left as they were.
    pids = json.loads((state / "dev" / "state.json").read_text())["cluster"]["pids"]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    again = dev("up", "--only", "cluster", state=state)
    assert again.returncode == 0, again.stderr
    assert "Ready" in dev("status", state=state).stdout

    stopped = dev("down", state=state)
    assert stopped.returncode == 0, stopped.stderr
    assert what_is_left(state) == NOTHING


def test_a_route_over_the_nodes_addresses_is_named_and_nothing_is_created(state: Path) -> None:
    subprocess.run(["ip", "route", "add", "10.244.0.128/25", "dev", "lo"], check=True)
    try:
        refused = dev("up", "--only", "cluster", state=state)
    finally:
        subprocess.run(["ip", "route", "del", "10.244.0.128/25", "dev", "lo"], check=True)
    assert refused.returncode == 1
    assert "the route 10.244.0.128/25 on lo overlaps the node's 10.244.0.0/24" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert what_is_left(state) == NOTHING


def test_without_root_up_says_so_in_one_line(state: Path) -> None:
    state.mkdir(parents=True)
    state.chmod(0o777)
    refused = dev("up", "--only", "cluster", state=state, user=65534)
    assert refused.returncode == 1
    assert "the node needs root" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert what_is_left(state) == NOTHING
