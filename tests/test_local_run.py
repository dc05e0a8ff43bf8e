"""The local executor: same workloads as the operator, and a demo that really runs and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

from marketpulse.contract.workloads import Platform, SecretRef, names_for
from marketpulse.operator.builders import render_children
from marketpulse.operator.builders.context import BuildContext
from marketpulse_dev.local.executor import (
    PLATFORM_BOUND,
    LocalRun,
    schedule_seconds,
)
from marketpulse_dev.local.pipeline_file import PipelineFileError, load_pipeline
from marketpulse_dev.local.secrets import LocalSecrets, MissingSecretError, secret_env_name
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.process import free_port, pid_alive
from marketpulse_dev.localenv.s3 import S3Server

SAMPLES = Path(__file__).parents[1] / "operator" / "config" / "samples"
DEMO = SAMPLES / "stockpipeline-local-demo.yaml"
MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")
LOCAL_ONLY = {"MARKETPULSE_LOG_LEVEL"}


def operator_containers(sample: Path, s3_endpoint: str) -> dict[str, dict[str, object]]:
    pipeline = load_pipeline(sample)
    ctx = BuildContext(
        names_for(pipeline),
        platform=Platform(s3_endpoint=s3_endpoint, s3_credentials_secret="marketpulse-s3"),
    )
    containers = {}
    for child in render_children(pipeline, ctx):
        spec = child.get("spec", {})
        template = spec.get("jobTemplate", {}).get("spec", spec).get("template")
        if child["kind"] in ("Deployment", "CronJob") and template:
            component = child["metadata"]["labels"]["app.kubernetes.io/component"]
            containers[component] = template["spec"]["containers"][0]
    return containers


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_local_executor_runs_the_same_commands_and_environment_as_the_operator(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_pipeline(sample)
    run = LocalRun(pipeline, tmp_path, printer=lambda *_: None)
    run.kafka = KafkaServer(tmp_path / "kafka", port=19092)
    run.s3 = S3Server(tmp_path / "s3", port=17070, secret_key="local-secret")
    for workload in run.workloads():  # secrets the sample references come from the environment locally
        for var in workload.env:
            if var.secret is not None and var.secret.name != "marketpulse-s3":
                monkeypatch.setenv(secret_env_name(var.secret), f"value-of-{var.secret.key}")
        for secret_file in workload.secret_files:
            monkeypatch.setenv(secret_env_name(secret_file.secret), "-----BEGIN PRIVATE KEY-----")

    containers = operator_containers(sample, run.s3.endpoint)
    local = {w.component: (w, run.environment(w)) for w in run.workloads()}
    assert set(local) == set(containers)
    for component, (workload, env) in local.items():
        container = containers[component]
        assert container["command"] == list(workload.command)
        operator_env = {e["name"]: e for e in container["env"]}  # type: ignore[attr-defined]
        assert set(env) - LOCAL_ONLY == set(operator_env), component
        for name, entry in operator_env.items():
            if "value" in entry and name not in PLATFORM_BOUND:
                assert env[name] == entry["value"], f"{component}: {name}"


def test_every_workload_of_a_local_run_listens_on_loopback_and_the_operator_sets_the_pod_address(
    tmp_path: Path,
) -> None:
    pipeline = load_pipeline(DEMO)
    run = LocalRun(pipeline, tmp_path, printer=lambda *_: None)
    run.kafka = KafkaServer(tmp_path / "kafka", port=19092)
    run.s3 = S3Server(tmp_path / "s3", port=17070, secret_key="local-secret")
    local = {w.component: run.environment(w) for w in run.workloads()}
    pods = operator_containers(DEMO, run.s3.endpoint)

    for component, env in local.items():
        pod_env = {e["name"]: e.get("value") for e in pods[component]["env"]}  # type: ignore[attr-defined]
        assert env["MARKETPULSE_METRICS_HOST"] == "127.0.0.1", component
        assert pod_env["MARKETPULSE_METRICS_HOST"] == "0.0.0.0", component
    assert local["dashboard"]["MARKETPULSE_DASHBOARD_ADDRESS"] == "127.0.0.1"
    pod_env = {e["name"]: e.get("value") for e in pods["dashboard"]["env"]}  # type: ignore[attr-defined]
    assert pod_env["MARKETPULSE_DASHBOARD_ADDRESS"] == "0.0.0.0"


def _tcp_listeners(pids: set[int]) -> set[tuple[IPv4Address | IPv6Address, int]]:
    """The (address, port) pairs `pids` listen on over TCP, IPv4 and IPv6, read from /proc."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found: set[tuple[IPv4Address | IPv6Address, int]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                raw = bytes.fromhex(address)  # 32-bit words in host (little-endian) order
                packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add((ip_address(packed), int(port, 16)))
    return found


def _loopback(address: IPv4Address | IPv6Address) -> bool:
    mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found


def test_secrets_resolve_from_named_environment_variables_and_missing_ones_say_which() -> None:
    ref = SecretRef("finnhub", "api-key")
    assert secret_env_name(ref) == "MARKETPULSE_SECRET_FINNHUB_API_KEY"
    assert (
        LocalSecrets({}, {"MARKETPULSE_SECRET_FINNHUB_API_KEY": "k"}).resolve(ref, needed_by="ingest") == "k"
    )
    with pytest.raises(
        MissingSecretError, match="set the environment variable MARKETPULSE_SECRET_FINNHUB_API_KEY"
    ):
        LocalSecrets({}, {}).resolve(ref, needed_by="ingest (FINNHUB_API_KEY)")


def test_a_pipeline_file_is_refused_with_the_crds_messages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "marketpulse.io/v1alpha1",
                "kind": "StockPipeline",
                "metadata": {"name": "x"},
                "spec": {"watchlist": ["AAPL", "aapl"]},
            }
        )
    )
    # As `marketpulse validate` reports it: FILE:LINE: field: message.
    with pytest.raises(PipelineFileError, match=r"bad\.yaml:\d+: spec\.watchlist\[1\]: "):
        load_pipeline(bad)
    (tmp_path / "two.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(PipelineFileError, match="exactly one document of kind StockPipeline"):
        load_pipeline(tmp_path / "two.yaml")


def test_cron_schedules_become_local_periods() -> None:
    assert schedule_seconds("*/5 * * * *") == 300
    assert schedule_seconds("0 * * * *") == 60


def test_run_refuses_once_without_a_finite_source_and_a_busy_dashboard_port() -> None:
    once = subprocess.run(
        [MARKETPULSE, "run", "-f", str(DEMO), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert once.returncode == 2
    assert "--ticks N" in once.stdout
    with subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port := free_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as busy:
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            taken = subprocess.run(
                [MARKETPULSE, "run", "-f", str(DEMO), "--dashboard-port", str(port)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            busy.terminate()
    assert taken.returncode == 1
    assert f"port {port} is already in use" in taken.stdout


@pytest.mark.kafka
@pytest.mark.s3
def test_the_demo_serves_gold_for_every_symbol_on_the_dashboard_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        demo = subprocess.Popen(
            [
                MARKETPULSE,
                "run",
                "-f",
                str(DEMO),
                "--data-dir",
                str(tmp_path / "data"),
                "--dashboard-port",
                str(port),
                "--status-every",
                "2",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "dashboard http://" not in log.read_text():
            assert demo.poll() is None, log.read_text()[-5000:]
            time.sleep(1)
        assert "dashboard http://" in log.read_text(), log.read_text()[-5000:]
        buckets = list((tmp_path / "data" / "s3" / "data").iterdir())
        gold = buckets[0] / "gold" / "ohlc_1m.parquet"
        query = "select distinct symbol from read_parquet($path)"
        symbols = {row[0] for row in duckdb.execute(query, {"path": str(gold)}).fetchall()}
        assert symbols == {"AAPL", "MSFT", "NVDA", "AMZN", "SPY"}
        for path in ("/", "/_stcore/health"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code == 200
        children = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-f", str(tmp_path / "data")], capture_output=True, text=True, check=False
            ).stdout.split()
        ]
        assert children, "the demo's servers run with the data directory in their arguments"
        listening = _tcp_listeners(_descendants(demo.pid))
        assert (IPv4Address("127.0.0.1"), port) in listening
        assert len(listening) >= 6, listening  # the dashboard, four metrics endpoints, Kafka, S3
        assert {(str(a), p) for a, p in listening if not _loopback(a)} == set()
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=120)
    assert code == 0, log.read_text()[-5000:]
    assert "stopping" in log.read_text()
    assert not [pid for pid in children if pid_alive(pid)], "a process of the demo outlived it"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_source_finnhub_needs_a_key_up_front_and_then_feeds_ingest_from_finnhub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = subprocess.run(
        [MARKETPULSE, "run", "-f", str(DEMO), "--source", "finnhub"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if "FINNHUB" not in k},
    )
    assert missing.returncode == 2
    assert "set FINNHUB_API_KEY" in missing.stdout

    from marketpulse_dev.cli.run import with_source

    monkeypatch.setenv("FINNHUB_API_KEY", "k-123")
    pipeline = with_source(load_pipeline(DEMO), "finnhub")
    assert pipeline.spec.watchlist == load_pipeline(DEMO).spec.watchlist
    run = LocalRun(pipeline, tmp_path, printer=lambda *_: None)
    run.kafka = KafkaServer(tmp_path / "kafka", port=19092)
    run.s3 = S3Server(tmp_path / "s3", port=17070, secret_key="local-secret")
    ingest = next(w for w in run.workloads() if w.component == "ingest")
    env = run.environment(ingest)
    assert (env["MARKETPULSE_SOURCE"], env["FINNHUB_API_KEY"]) == ("finnhub", "k-123")


def snowflake_pipeline(path: Path, endpoint: str, database: str) -> Path:
    """A small synthetic pipeline whose warehouse is Snowflake at `endpoint` (fakesnow's server here)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "marketpulse.io/v1alpha1",
                "kind": "StockPipeline",
                "metadata": {"name": "sf-local"},
                "spec": {
                    "watchlist": ["AAPL", "MSFT"],
                    "source": {"type": "synthetic", "synthetic": {"seed": 7}},
                    "warehouse": {
                        "type": "snowflake",
                        "snowflake": {
                            "account": "fakesnow",
                            "user": "marketpulse",
                            "database": database,
                            "endpoint": endpoint,
                            "password": {"secretKeyRef": {"name": "snowflake", "key": "password"}},
                        },
                    },
                    "dashboard": {"enabled": False},
                },
            }
        )
    )
    return path


def test_run_names_the_missing_snowflake_password_variable_before_starting_anything(tmp_path: Path) -> None:
    pipeline = snowflake_pipeline(tmp_path / "sf.yaml", "http://127.0.0.1:9", "MARKETPULSE")
    refused = subprocess.run(
        [
            MARKETPULSE,
            "run",
            "-f",
            str(pipeline),
            "--once",
            "--ticks",
            "10",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("MARKETPULSE_SECRET_", "SNOWFLAKE_"))},
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "set the environment variable MARKETPULSE_SECRET_SNOWFLAKE_PASSWORD" in refused.stdout
    assert "transform (SNOWFLAKE_PASSWORD)" in refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    assert not (tmp_path / "d" / "kafka").exists(), "no server starts when a credential is missing"


@pytest.mark.kafka
@pytest.mark.s3
@pytest.mark.snowflake
def test_run_once_on_snowflake_builds_gold_there_from_every_tick(
    tmp_path: Path, fakesnow_server: object
) -> None:
    import snowflake.connector

    from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

    assert isinstance(fakesnow_server, FakeSnowflakeServer)
    database = "MP_LOCAL_RUN"
    endpoint = f"http://127.0.0.1:{fakesnow_server.port}"
    pipeline = snowflake_pipeline(tmp_path / "sf.yaml", endpoint, database)
    command = [MARKETPULSE, "run", "-f", str(pipeline), "--once", "--ticks", "3000", "--days", "2"]
    done = subprocess.run(
        [*command, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")},
            "MARKETPULSE_SECRET_SNOWFLAKE_PASSWORD": "fakesnow",
            "MARKETPULSE_DBT_THREADS": "1",  # fakesnow's server can stall on concurrent sessions
            "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
            "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
            "COLUMNS": "200",
        },
    )
    logs = "\n".join(p.read_text()[-3000:] for p in (tmp_path / "data" / "logs").glob("*.log"))
    assert done.returncode == 0, done.stdout[-3000:] + logs
    assert f"warehouse Snowflake fakesnow database {database}" in done.stdout
    assert "'ohlc_daily':" in done.stdout, done.stdout[-3000:]
    with (
        snowflake.connector.connect(**fakesnow_server.connect_kwargs(), database=database) as con,
        con.cursor() as cursor,
    ):
        cursor.execute("select count(*), count(distinct producer_id || ':' || seq) from bronze.raw_ticks")
        assert cursor.fetchall() == [(3000, 3000)]
        cursor.execute("select count(*) from silver.fct_ticks")
        assert cursor.fetchall() == [(3000,)]
        cursor.execute("select sum(tick_count), count(distinct symbol) from gold.ohlc_daily")
        assert cursor.fetchall() == [(3000, 2)]


def test_run_full_refresh_gives_the_transform_a_token_as_the_operator_does_for_the_annotation(
    tmp_path: Path,
) -> None:
    pipeline = load_pipeline(SAMPLES / "stockpipeline-local-demo.yaml")
    run = LocalRun(pipeline, tmp_path, printer=lambda *_: None, full_refresh="2026-12-04T02:30:05Z")
    run.kafka = KafkaServer(tmp_path / "kafka", port=19092)
    run.s3 = S3Server(tmp_path / "s3", port=17070, secret_key="local-secret")
    tokens = {w.component: run.environment(w).get("MARKETPULSE_FULL_REFRESH_TOKEN") for w in run.workloads()}
    assert tokens.pop("transform") == "2026-12-04T02:30:05Z"
    assert set(tokens.values()) == {None}
    help_text = subprocess.run(
        [str(Path(sys.executable).with_name("marketpulse")), "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "--full-refresh" in help_text
