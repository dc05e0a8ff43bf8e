"""The chart on the real node, as a user installs it: the operator's own image under the chart's RBAC
in a namespace that enforces the restricted Pod Security Standard, and a StockPipeline whose every
workload runs as a pod of the workloads image, against Kafka and S3 on the node's host address.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pyarrow.parquet as pq
import pytest
from minio.error import S3Error

from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.pytest_plugin import eventually

if TYPE_CHECKING:  # the fixture's class; conftest is not importable at run time
    from conftest import Release

pytestmark = [pytest.mark.node, pytest.mark.helm, pytest.mark.kafka, pytest.mark.s3, pytest.mark.browser]

WATCHLIST = {"AAPL", "MSFT", "NVDA"}


def gold_symbols(release: Release, bucket: str) -> set[str]:
    """Symbols of the published 1-minute bars; none before the first publication."""
    s3 = minio_client(release.s3.endpoint, release.s3.access_key, release.s3.secret_key)
    try:
        response = s3.get_object(bucket, "gold/ohlc_1m.parquet")
    except S3Error as exc:
        if exc.code == "NoSuchKey":
            return set()
        raise
    try:
        table = pq.read_table(io.BytesIO(response.read()))
    finally:
        response.close()
        response.release_conn()
    return {str(s) for s in table.column("symbol").to_pylist()}


def test_the_operator_pod_is_ready_under_the_charts_rbac_and_serves_metrics_through_its_service(
    release: Release,
) -> None:
    pods = release.pods("app.kubernetes.io/component=operator")
    metrics = httpx.get(release.service_url(f"{release.name}-marketpulse-metrics", "/metrics"), timeout=5)

    assert [release.pod_ready(p) for p in pods] == [True], release.describe(pods)
    (pod,) = pods
    assert pod.spec.containers[0].image.startswith("localhost/marketpulse-operator:")
    assert pod.status.container_statuses[0].restart_count == 0
    assert metrics.status_code == 200
    assert "marketpulse_operator_reconciles_total" in metrics.text


# What the dashboard's page shows, read in one round trip.
PAGE_STATE_JS = """
return {
  title: Array.from(document.querySelectorAll('h1')).map(h => h.innerText.trim()).join(' | '),
  exceptions: Array.from(document.querySelectorAll('[data-testid="stException"]')).map(e => e.innerText),
  metrics: Array.from(document.querySelectorAll('[data-testid="stMetric"]')).map(e => e.innerText),
};
"""


def live_page(browser: Any, url: str) -> dict[str, Any]:
    """The live-quotes page once it shows a metric per symbol (or an exception)."""
    browser.get(url)
    deadline = time.monotonic() + 90
    while True:
        state: dict[str, Any] = browser.execute_script(PAGE_STATE_JS)
        if state["exceptions"] or len(state["metrics"]) >= len(WATCHLIST) or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def chart_test(release: Release, pipeline: str) -> subprocess.CompletedProcess[str]:
    """`helm test` of the release with `pipeline` in tests.dashboards; the release's values after."""
    release.upgrade({**release.values, "tests": {"dashboards": [pipeline]}})
    try:
        argv = [release.helm, "test", release.name, "-n", release.namespace, "--logs", "--timeout", "150s"]
        return release.cluster.run(argv, timeout=200, check=False)
    finally:
        release.upgrade(release.values)


@pytest.fixture
def lab(release: Release) -> Iterator[str]:
    """The pipeline's name; deleted afterwards, since the node's 2 CPUs hold one pipeline's requests."""
    yield "lab"
    release.delete("lab")


def test_an_applied_pipeline_runs_every_workload_as_a_ready_pod_and_delivers_gold_for_every_symbol(
    release: Release, node_kafka: KafkaServer, browser: Any, lab: str
) -> None:
    applied = time.monotonic()
    release.apply(release.direct_pipeline(lab, node_kafka))
    ready = release.wait_phase("lab", "Ready")
    ready_after = time.monotonic() - applied
    pods = release.all_pods_ready("lab", components=4)
    bucket = ready["status"]["bucket"]
    symbols = eventually(
        lambda: (found := gold_symbols(release, bucket)) >= WATCHLIST and found,
        timeout=120,
        what="gold 1-minute bars for every symbol",
    )
    health = httpx.get(release.service_url("lab-dashboard", "/_stcore/health"), timeout=10)
    page = live_page(browser, release.service_url("lab-dashboard", "/live"))
    helm_test = chart_test(release, "lab")

    print(f"apply -> phase Ready in {ready_after:.1f}s")
    components = sorted(p.metadata.labels["app.kubernetes.io/component"] for p in pods)
    assert components == ["archive", "dashboard", "ingest", "transform"], release.describe(pods)
    restarts = [s.restart_count for p in pods for s in p.status.container_statuses]
    assert restarts == [0, 0, 0, 0], release.describe(pods)
    assert release.condition(ready, "Ready")["status"] == "True"
    assert symbols >= WATCHLIST
    assert health.status_code == 200, health.text
    assert health.text == "ok"
    # `helm test`: the chart's test pod, on this node under the restricted standard, reached the dashboard.
    assert helm_test.returncode == 0, helm_test.stdout + helm_test.stderr
    assert re.search(r"Phase:\s+Succeeded", helm_test.stdout), helm_test.stdout
    assert "ok http://lab-dashboard." in helm_test.stdout, helm_test.stdout
    assert "1/1 dashboards answer" in helm_test.stdout, helm_test.stdout
    # Headless Chromium through the Service: Streamlit's websocket works through kube-proxy too.
    assert page["exceptions"] == [], page
    assert "Live quotes" in page["title"], page
    assert {m.split()[0] for m in page["metrics"]} >= WATCHLIST, page
