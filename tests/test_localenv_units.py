"""Pure parts of the local-component tooling: version pins, wrapper modules, CLI errors, process control."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.gobuild import GoBuild, render_go_mod, render_tools_go
from marketpulse_dev.localenv.kube import KUBERNETES, STAGING_MODULES
from marketpulse_dev.localenv.node import remove_cgroup_dir
from marketpulse_dev.localenv.process import ManagedProcess, free_port, pid_alive, run_step, wait_for
from marketpulse_dev.localenv.stack import DevStack, parse_only
from marketpulse_dev.localenv.versions import staging_version


def test_staging_modules_are_pinned_to_the_v0_release_beside_the_kubernetes_version() -> None:
    assert staging_version("v1.36.3") == "v0.36.3"
    assert set(KUBERNETES.replaces.values()) == {staging_version()}
    assert {f"k8s.io/{m}" for m in STAGING_MODULES} == set(KUBERNETES.replaces)


def test_an_unexpected_kubernetes_major_version_is_refused() -> None:
    with pytest.raises(ValueError, match=r"v1\.<minor>\.<patch>"):
        staging_version("v2.0.0")


def test_the_wrapper_module_requires_and_replaces_exactly_what_it_is_told() -> None:
    build = GoBuild(
        name="demo",
        requires={"example.com/tool": "v1.2.3"},
        packages={"example.com/tool/cmd/tool": "tool"},
        replaces={"example.com/lib": "v0.1.0"},
    )
    go_mod = render_go_mod(build)
    assert "require example.com/tool v1.2.3" in go_mod
    assert "replace example.com/lib => example.com/lib v0.1.0" in go_mod
    assert '_ "example.com/tool/cmd/tool"' in render_tools_go(build)
    assert render_tools_go(build).startswith("//go:build tools")


def test_kubernetes_version_ldflags_make_version_report_the_real_release() -> None:
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in KUBERNETES.ldflags
    assert "gitMinor=36" in KUBERNETES.ldflags


def test_only_accepts_known_components_and_keeps_start_order() -> None:
    assert parse_only("s3,kafka") == ["kafka", "s3"]
    # The node changes this machine's network and needs root: only when asked for, and first.
    assert parse_only(None) == ["kafka", "s3", "k8s", "snowflake"]
    assert parse_only("s3,kafka,cluster") == ["cluster", "kafka", "s3"]
    with pytest.raises(
        ValueError, match=r"unknown component.*zookeeper.*choose from cluster, kafka, s3, k8s, snowflake"
    ):
        parse_only("kafka,zookeeper")


def test_a_cluster_brings_its_own_control_plane_so_asking_for_k8s_too_is_refused() -> None:
    with pytest.raises(ValueError, match="`cluster` includes its own control plane"):
        parse_only("cluster,k8s")


def test_the_cli_rejects_an_unknown_component_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dev", "up", "--only", "zookeeper", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "zookeeper" in result.output
    assert "Traceback" not in result.output


def test_status_with_nothing_started_says_so(tmp_path: Path) -> None:
    rows = DevStack(tmp_path).status()
    assert [(r[0], r[1]) for r in rows] == [
        (name, "not started") for name in ("cluster", "kafka", "s3", "k8s", "snowflake")
    ]


def test_a_failing_build_step_names_the_step_and_shows_the_log(tmp_path: Path) -> None:
    with pytest.raises(ComponentError) as failure:
        run_step(
            "build widget",
            [sys.executable, "-c", "print('compiler says no'); raise SystemExit(3)"],
            log_path=tmp_path / "build.log",
            live=False,
        )
    assert failure.value.step == "build widget"
    assert "exited with 3" in failure.value.reason
    assert "compiler says no" in failure.value.log_tail


def test_a_missing_tool_is_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="no-such-tool-xyz is not installed"):
        run_step("fetch", ["no-such-tool-xyz"], log_path=tmp_path / "x.log", live=False)


def test_waiting_on_a_process_that_died_fails_at_once_with_its_log(tmp_path: Path) -> None:
    process = ManagedProcess(
        "crasher",
        [sys.executable, "-c", "print('bad flag --foo'); raise SystemExit(1)"],
        tmp_path / "crasher.log",
    ).start()
    started = time.monotonic()
    with pytest.raises(ComponentError, match="exited before") as failure:
        wait_for(
            lambda: False,
            timeout=30,
            step="start crasher",
            what="readiness",
            log_path=process.log_path,
            alive=process.alive,
        )
    assert time.monotonic() - started < 10
    assert "bad flag --foo" in failure.value.log_tail


def test_stop_ends_the_whole_process_group_including_children(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess,sys,time;"
        "c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(300)']);"
        f"open({str(child_pid_file)!r},'w').write(str(c.pid)); time.sleep(300)"
    )
    process = ManagedProcess("parent", [sys.executable, "-c", script], tmp_path / "parent.log").start()
    wait_for(child_pid_file.exists, timeout=20, step="spawn", what="the child pid")
    child = int(child_pid_file.read_text())
    assert pid_alive(child)
    process.stop(timeout=5)
    assert not process.alive()
    assert not pid_alive(child)


def test_the_marketpulse_entry_point_is_installed() -> None:
    marketpulse = Path(sys.executable).parent / "marketpulse"
    result = subprocess.run([str(marketpulse), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "dev" in result.stdout


def test_a_free_port_lies_below_the_ephemeral_range_so_no_outgoing_connection_takes_it_before_bind() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(10000 <= port < low for port in ports), ports
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_dev_env_and_the_stack_state_are_written_for_this_user_only_and_removed_when_nothing_runs(
    tmp_path: Path,
) -> None:
    stack = DevStack(tmp_path)
    stack.env_file.write_text("export OLD=1\n")
    stack.env_file.chmod(0o644)  # left by an earlier version
    state = {"s3": {"pids": [], "settings": {"S3_SECRET_KEY": "s3cr3t"}}}

    stack.save(state)

    assert _mode(stack.env_file) == 0o600
    assert _mode(stack.state_file) == 0o600
    assert "export S3_SECRET_KEY=s3cr3t" in stack.env_file.read_text()
    assert not list(tmp_path.glob(".dev.env.*")), "no partial file is left behind"
    stack.save({})
    assert not stack.env_file.exists()


def test_a_private_file_is_created_with_mode_0600_not_narrowed_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from marketpulse_dev.localenv import files

    modes: list[int] = []
    real_open = os.open

    def recording_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        modes.append(mode)
        return real_open(path, flags, mode)

    monkeypatch.setattr(files.os, "open", recording_open)
    monkeypatch.setattr(files.os, "chmod", lambda *_: pytest.fail("chmod after writing"))
    files.write_private(tmp_path / "key.p8", "-----BEGIN PRIVATE KEY-----")

    assert modes == [0o600]
    assert _mode(tmp_path / "key.p8") == 0o600


def test_a_cgroup_directory_that_stays_busy_is_asked_again_for_about_two_seconds_then_left(
    tmp_path: Path,
) -> None:
    busy = tmp_path / "busy"
    (busy / "child").mkdir(parents=True)  # rmdir refuses a directory that is not empty, as a busy cgroup
    started = time.monotonic()
    remove_cgroup_dir(busy)  # gives up quietly: the caller goes on with the other leftovers
    assert 1.5 < time.monotonic() - started < 5
    assert busy.is_dir()


def test_a_cgroup_directory_freed_while_it_is_asked_again_is_removed(tmp_path: Path) -> None:
    freed = tmp_path / "freed"
    (freed / "child").mkdir(parents=True)
    timer = threading.Timer(0.3, (freed / "child").rmdir)
    timer.start()
    started = time.monotonic()
    remove_cgroup_dir(freed)
    timer.join()
    assert not freed.exists()
    assert time.monotonic() - started < 1.5, "removed on the first try after it was freed"
    remove_cgroup_dir(freed)  # gone already: nothing to do, at once
