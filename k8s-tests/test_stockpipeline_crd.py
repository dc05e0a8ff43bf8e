"""The generated StockPipeline CRD on a real API server: admission refuses what the model refuses.

The table of invalid resources is shared with operator/tests/test_api_model.py, so the CEL rules and
their Python mirrors are held to the same cases and the same messages.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from marketpulse.contract.api import (
    GROUP,
    PLURAL,
    VERSION,
    Condition,
    StockPipelineStatus,
    SymbolFreshness,
    validate_stockpipeline,
)
from marketpulse.contract.api.crd import CRD_NAME, CRD_RELATIVE_PATH
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).parents[1]
CRD_FILE = ROOT / CRD_RELATIVE_PATH
SAMPLES = sorted((ROOT / "operator" / "config" / "samples").glob("*.yaml"))
INVALID = yaml.safe_load((ROOT / "operator" / "tests" / "invalid_stockpipelines.yaml").read_text())


def manifest(spec: dict[str, Any], name: str = "bad-pipeline") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "StockPipeline",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module", autouse=True)
def stockpipeline_crd(kube: KubeTarget, kubectl_binary: Path) -> None:
    kube.run([kubectl_binary, "apply", "--server-side", "-f", CRD_FILE])
    kube.run([kubectl_binary, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}"])


class Cluster:
    """kubectl and the Python client, bound to one test namespace."""

    def __init__(self, kube: KubeTarget, kubectl: Path, namespace: str, api: client.ApiClient) -> None:
        self.kube, self.kubectl, self.namespace = kube, kubectl, namespace
        self.objects = client.CustomObjectsApi(api)

    def apply(self, document: dict[str, Any], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.kubectl, "apply", "--server-side", "-n", self.namespace, "-f", "-"]
        return self.kube.run(argv, stdin=yaml.safe_dump(document), check=check)

    def refusal(self, document: dict[str, Any]) -> str:
        result = self.apply(document, check=False)
        assert result.returncode != 0, f"the API server accepted it:\n{result.stdout}"
        return result.stderr

    def kubectl_out(self, *args: str) -> str:
        return self.kube.run([self.kubectl, *args, "-n", self.namespace]).stdout

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found


@pytest.fixture
def cluster(kube: KubeTarget, kubectl_binary: Path, namespace: str, api_client: client.ApiClient) -> Cluster:
    return Cluster(kube, kubectl_binary, namespace, api_client)


def test_the_crd_is_served_namespaced_under_the_short_name_sp(kube: KubeTarget, kubectl_binary: Path) -> None:
    listed = kube.run([kubectl_binary, "api-resources", f"--api-group={GROUP}", "--no-headers"]).stdout

    assert listed.split() == ["stockpipelines", "sp", f"{GROUP}/{VERSION}", "true", "StockPipeline"]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_a_sample_is_accepted_and_the_server_defaults_it_exactly_as_the_model_does(
    cluster: Cluster, sample: Path
) -> None:
    document = yaml.safe_load(sample.read_text())
    cluster.apply(document)

    stored = cluster.get(document["metadata"]["name"])

    expected = validate_stockpipeline(document).spec.model_dump(mode="json", exclude_none=True)
    assert stored["spec"] == expected
    assert validate_stockpipeline(stored).spec == validate_stockpipeline(document).spec


@pytest.mark.parametrize("case", INVALID, ids=[case["id"] for case in INVALID])
def test_an_invalid_stockpipeline_is_refused_at_admission_naming_the_field(
    cluster: Cluster, case: dict[str, Any]
) -> None:
    stderr = cluster.refusal(manifest(case["spec"], case.get("name", "bad-pipeline")))

    assert case["field"] in stderr
    assert case.get("message", "") in stderr


def test_a_watchlist_of_more_than_200_symbols_is_refused_at_admission(cluster: Cluster) -> None:
    stderr = cluster.refusal(manifest({"watchlist": [f"T{i:03d}" for i in range(201)]}))

    assert "spec.watchlist" in stderr
    assert "at most 200 items" in stderr


def test_partitions_may_grow_on_update_but_shrinking_them_is_refused(cluster: Cluster) -> None:
    cluster.apply(manifest({"watchlist": ["AAPL"], "kafka": {"partitions": 3}}, name="grow"))

    stderr = cluster.refusal(manifest({"watchlist": ["AAPL"], "kafka": {"partitions": 2}}, name="grow"))
    assert "spec.kafka.partitions" in stderr
    assert "kafka.partitions may grow but not shrink" in stderr

    cluster.apply(manifest({"watchlist": ["AAPL"], "kafka": {"partitions": 6}}, name="grow"))
    assert cluster.get("grow")["spec"]["kafka"]["partitions"] == 6


@pytest.mark.parametrize("new_storage", [{"bucket": "other-prices"}, {}], ids=["changed", "removed"])
def test_the_bucket_cannot_change_once_set(cluster: Cluster, new_storage: dict[str, Any]) -> None:
    cluster.apply(manifest({"watchlist": ["AAPL"], "storage": {"bucket": "prices"}}, name="fixed"))

    stderr = cluster.refusal(manifest({"watchlist": ["AAPL"], "storage": new_storage}, name="fixed"))

    assert "spec.storage.bucket" in stderr
    assert "storage.bucket is immutable" in stderr
    assert cluster.get("fixed")["spec"]["storage"]["bucket"] == "prices"


def test_the_topic_backend_cannot_change_once_the_pipeline_exists(cluster: Cluster) -> None:
    cluster.apply(manifest({"watchlist": ["AAPL"]}, name="topics"))
    direct = {"topicBackend": "direct", "bootstrapServers": "kafka:9092"}

    stderr = cluster.refusal(manifest({"watchlist": ["AAPL"], "kafka": direct}, name="topics"))

    assert "spec.kafka.topicBackend" in stderr


def test_other_updates_such_as_a_new_watchlist_and_suspend_are_accepted(cluster: Cluster) -> None:
    spec = {"watchlist": ["AAPL"], "storage": {"bucket": "prices"}, "kafka": {"partitions": 3}}
    cluster.apply(manifest(spec, name="edit"))

    cluster.apply(manifest(spec | {"watchlist": ["AAPL", "MSFT"], "suspend": True}, name="edit"))

    stored = cluster.get("edit")
    assert stored["spec"]["watchlist"] == ["AAPL", "MSFT"]
    assert stored["spec"]["suspend"] is True
    assert stored["metadata"]["generation"] == 2


def test_a_status_from_the_model_is_kept_by_the_status_subresource_and_shown_by_kubectl_get_sp(
    cluster: Cluster,
) -> None:
    cluster.apply(manifest({"watchlist": ["AAPL", "MSFT"]}, name="shown"))
    now = "2025-03-04T14:30:00Z"
    status = StockPipelineStatus.model_validate(
        {
            "observedGeneration": 1,
            "phase": "Ready",
            "conditions": [
                Condition.model_validate(
                    {"type": "Ready", "status": "True", "reason": "AllReady", "lastTransitionTime": now}
                )
            ],
            "topics": [f"{cluster.namespace}.shown.ticks"],
            "bucket": "prices",
            "freshness": [SymbolFreshness.model_validate({"symbol": "AAPL", "lastTickTime": now})],
        }
    ).model_dump(mode="json", exclude_none=True)

    cluster.objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, cluster.namespace, PLURAL, "shown", {"status": status}
    )

    stored = cluster.get("shown")
    assert stored["status"] == status
    assert stored["metadata"]["generation"] == 1, "a status write must not bump the generation"
    header, row = cluster.kubectl_out("get", "sp").splitlines()
    assert header.split() == ["NAME", "SYMBOLS", "PHASE", "READY", "AGE"]
    assert row.split()[:4] == ["shown", '["AAPL","MSFT"]', "Ready", "True"]
    wide_header = cluster.kubectl_out("get", "stockpipelines", "-o", "wide").splitlines()[0]
    assert wide_header.split() == ["NAME", "SYMBOLS", "PHASE", "READY", "SOURCE", "WAREHOUSE", "AGE"]
