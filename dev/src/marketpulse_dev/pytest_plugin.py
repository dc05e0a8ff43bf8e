"""pytest fixtures that run the real components on 127.0.0.1, on free ports, in temporary directories.

Each server starts once per test session on first use, waits for readiness with a bounded timeout,
and stops at the end. When a test that used a component fails, the component's recent log is
attached to the failure report. Kubernetes tests run against a local control plane by default, or
against the cluster in $KUBECONFIG with `--use-existing-cluster` (e.g. kind).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import tenacity
from kubernetes.client.rest import ApiException

from marketpulse_dev.localenv import node_network
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.helm import ensure_helm
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.kafka_cluster import KafkaCluster, PortTakenError
from marketpulse_dev.localenv.kube import ControlPlane, ensure_kubectl
from marketpulse_dev.localenv.node import Node
from marketpulse_dev.localenv.node import prepare as prepare_node
from marketpulse_dev.localenv.promtool import ensure_promtool
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

T = TypeVar("T")

COMPONENT_FIXTURES = (
    "kafka_server",
    "kafka_cluster",
    "s3_server",
    "kube",
    "fakesnow_server",
    "node_cluster",
    "node_kafka",
    "node_s3",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--use-existing-cluster",
        action="store_true",
        default=os.environ.get("MARKETPULSE_USE_EXISTING_CLUSTER", "").lower() in ("1", "true", "yes"),
        help="Run Kubernetes tests against the cluster in $KUBECONFIG instead of a local control plane.",
    )


@dataclass
class KubeTarget:
    """The API server the Kubernetes tests talk to."""

    kubeconfig: Path
    local: ControlPlane | None = None
    log_tails: Callable[[], dict[str, str]] = field(default=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(
        self,
        argv: Sequence[str | Path],
        *,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 180,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl or helm against this cluster; with `check`, fail the test with the tool's output."""
        result = subprocess.run(
            [str(a) for a in argv],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        return result


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.5) -> T:
    """The probe's first truthy value within `timeout` seconds, the one bounded wait of the tests.

    API and HTTP errors, and lookups into an object that is not complete yet, count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (ApiException, httpx.HTTPError, KeyError, IndexError, TypeError) as exc:
            value, last = None, getattr(exc, "reason", None) or exc
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


def container_environment(api: Any, namespace: str, container: Any) -> dict[str, str]:
    """A container's env as its kubelet resolves it (values and secretKeyRefs), for running its command
    on this machine exactly as the pod runs it."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    env = {}
    for var in container.env or []:
        if var.value_from is None:  # an empty value is dropped from the object: the kubelet sets ""
            env[var.name] = var.value or ""
        else:
            ref = var.value_from.secret_key_ref
            secret = core.read_namespaced_secret(ref.name, namespace)
            env[var.name] = base64.b64decode(secret.data[ref.key]).decode()
    return env


def _start(factory: Callable[[], Any]) -> Any:
    try:
        return factory()
    except ComponentError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    server: KafkaServer = _start(lambda: KafkaServer(tmp_path_factory.mktemp("kafka")).start())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three KRaft nodes (brokers and voters); per module, as its tests kill and restart nodes and three
    JVMs are too much to keep for the rest of a session. A test that stops a node starts it again."""

    # Ports are chosen before the JVMs bind them; on a busy machine another server may take one first.
    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(PortTakenError),
        stop=tenacity.stop_after_attempt(3),
        reraise=True,
    )
    def start() -> KafkaCluster:
        return KafkaCluster(tmp_path_factory.mktemp("kafka-cluster")).start()

    cluster: KafkaCluster = _start(start)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server: S3Server = _start(lambda: S3Server(tmp_path_factory.mktemp("s3")).start())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSnowflakeServer]:
    server: FakeSnowflakeServer = _start(
        lambda: FakeSnowflakeServer(tmp_path_factory.mktemp("fakesnow")).start()
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeTarget]:
    if request.config.getoption("--use-existing-cluster"):
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("--use-existing-cluster needs $KUBECONFIG to point at the cluster", pytrace=False)
        yield KubeTarget(Path(kubeconfig))
        return
    plane: ControlPlane = _start(lambda: ControlPlane(tmp_path_factory.mktemp("kube")).start())
    yield KubeTarget(plane.kubeconfig, local=plane, log_tails=plane.log_tails)
    plane.stop()


@dataclass
class NodeCluster(KubeTarget):
    """A control plane with a real node (containerd, kubelet, kube-proxy, CoreDNS) on this machine."""

    node: Node | None = None


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    """One node per session (its network names are fixed: one node per machine at a time)."""
    workdir = tmp_path_factory.mktemp("cluster")

    def start() -> tuple[ControlPlane, Node]:
        prepare_node(workdir / "node")
        plane = ControlPlane(workdir / "control-plane", host=node_network.HOST_IP, for_node=True).start()
        try:
            return plane, Node(workdir / "node", plane).start()
        except BaseException:
            plane.stop()
            raise

    plane, node = _start(start)

    def log_tails() -> dict[str, str]:
        return {**plane.log_tails(), **node.log_tails()}

    yield NodeCluster(plane.kubeconfig, local=plane, log_tails=log_tails, node=node)
    node.stop()
    plane.stop()


@pytest.fixture(scope="session")
def node_kafka(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    """A broker that pods of the node reach (it listens on the node link's host address)."""
    server: KafkaServer = _start(
        lambda: KafkaServer(tmp_path_factory.mktemp("node-kafka"), host=node_network.HOST_IP).start()
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node_s3(node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server that pods of the node reach."""
    server: S3Server = _start(
        lambda: S3Server(tmp_path_factory.mktemp("node-s3"), host=node_network.HOST_IP).start()
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    path: Path = _start(ensure_helm)
    return path


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    path: Path = _start(ensure_kubectl)
    return path


@pytest.fixture(scope="session")
def promtool_binary() -> Path:
    path: Path = _start(ensure_promtool)
    return path


@pytest.fixture
def namespace(kube: KubeTarget) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (works the same on a shared cluster)."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(kube.kubeconfig))
    core = client.CoreV1Api(api_client)
    name = f"mp-test-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
    api_client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed:
        return report
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    for name in COMPONENT_FIXTURES:
        component = funcargs.get(name)
        if component is None:
            continue
        if isinstance(component, KubeTarget):
            for process, text in component.log_tails().items():
                report.sections.append((f"{process} log (last lines)", text))
        elif hasattr(component, "log_tail"):
            report.sections.append((f"{name} log (last lines)", component.log_tail()))
    return report


CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1100",
)
PAGE_TIMEOUT = 60


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver (selenium); Selenium Manager never downloads one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        missing = ", ".join(n for n, p in (("chromium", binary), ("chromedriver", driver)) if p is None)
        pytest.fail(
            f"{missing} not found on PATH: install Debian's chromium and chromium-driver packages "
            "(`apt-get install chromium chromium-driver`, as CI does) to run the browser tests.",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    chrome = webdriver.Chrome(
        service=Service(executable_path=driver, log_output=str(tmp_path / "chromedriver.log")),
        options=options,
    )
    chrome.set_page_load_timeout(PAGE_TIMEOUT)
    yield chrome
    chrome.quit()
