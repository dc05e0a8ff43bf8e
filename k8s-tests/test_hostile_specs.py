"""Hostile StockPipelines: an author who may create pipelines, but not read Secrets or reach other
tenants, tries to use the shared operator for more. Each attack is refused (at admission, naming the
field, or by the operator with a condition naming it), and a listener standing in for the attacker's
host receives nothing.

The real operator runs against the real API server and S3 server; the attacker's host is a TCP
listener on this machine (`attacker_listener.AttackerListener`). A dashboard host claimed by another
pipeline is refused in `test_operator_dashboard_hosts.py`; the full list of admission refusals is in
`operator/tests/invalid_stockpipelines.yaml`.
"""

from __future__ import annotations

import base64
import gzip
import io
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attacker_listener import MARKER, AttackerListener
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_harness import (
    Cluster,
    condition,
    handled,
    operator_settings,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse.contract.api import GROUP, PLURAL, VERSION
from marketpulse.contract.layout import QUOTES_KEY
from marketpulse.operator.backends.buckets import OWNER_TAG, owner_of
from marketpulse.operator.policy import SECRET_LABEL, SECRET_PIPELINES_ANNOTATION
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]


@pytest.fixture
def attacker() -> Iterator[AttackerListener]:
    with AttackerListener() as listener:
        yield listener


def pipeline(name: str, **spec: Any) -> dict[str, Any]:
    document = sample("synthetic-duckdb")
    document["metadata"] = {"name": name}
    document["spec"].update(spec)
    return document


def secret(cluster: Cluster, namespace: str, name: str, *, marked: bool, only_for: str | None = None) -> None:
    labels = {SECRET_LABEL: "true"} if marked else {}
    annotations = {SECRET_PIPELINES_ANNOTATION: only_for} if only_for is not None else {}
    data = {k: base64.b64encode(b"stolen-" + k.encode()).decode() for k in ("AWS_ACCESS_KEY_ID", "key")}
    data["AWS_SECRET_ACCESS_KEY"] = data["key"]
    cluster.core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, labels=labels, annotations=annotations), data=data
        ),
    )


def refused(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The pipeline once the operator has handled it: its Ready condition."""
    found = wait_status(cluster, namespace, name, handled(1), f"the operator's verdict on {name}")
    return condition(found, "Ready")


def workloads(cluster: Cluster, namespace: str) -> list[str]:
    deployments = cluster.apps.list_namespaced_deployment(namespace).items
    cronjobs = cluster.batch.list_namespaced_cron_job(namespace).items
    return [d.metadata.name for d in deployments] + [c.metadata.name for c in cronjobs]


def test_an_unmarked_secret_sent_to_an_attackers_endpoint_is_refused_before_anything_connects(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str, attacker: AttackerListener
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    secret(cluster, namespace, "team-s3", marked=False)
    spec = {"storage": {"endpoint": attacker.url, "credentialsSecret": {"name": "team-s3"}}}
    with running_operator(operator_settings(kube, s3_server), namespace):
        cluster.apply_yaml(namespace, pipeline("steal", **spec))
        ready = refused(cluster, namespace, "steal")
        phase = cluster.pipeline(namespace, "steal")["status"]["phase"]

    assert (ready["status"], ready["reason"], phase) == ("False", "Refused", "Failed")
    assert "spec.storage.endpoint" in ready["message"]
    assert "spec.storage.credentialsSecret: Secret team-s3 is not marked" in ready["message"]
    assert workloads(cluster, namespace) == []
    assert attacker.received == []


def test_a_marked_secret_still_goes_to_no_endpoint_the_platform_does_not_allow(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str, attacker: AttackerListener
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    secret(cluster, namespace, "team-s3", marked=True)
    secret(cluster, namespace, "snow", marked=True)
    # Only one broker address is allowed: the attacker's port on the same host is not.
    allowing_one_broker = operator_settings(kube, s3_server, allowed_kafka_servers="127.0.0.1:9")
    with running_operator(allowing_one_broker, namespace):
        cluster.apply_yaml(
            namespace,
            pipeline("s3", storage={"endpoint": attacker.url, "credentialsSecret": {"name": "team-s3"}}),
        )
        snowflake = {
            "type": "snowflake",
            "snowflake": {
                "account": "acme",
                "user": "u",
                "database": "D",
                "endpoint": attacker.url,
                "password": {"secretKeyRef": {"name": "snow", "key": "key"}},
            },
        }
        cluster.apply_yaml(namespace, pipeline("snow", warehouse=snowflake))
        kafka = {"topicBackend": "direct", "bootstrapServers": f"{attacker.address},127.0.0.2:9092"}
        cluster.apply_yaml(namespace, pipeline("kafka", kafka=kafka))
        verdicts = {name: refused(cluster, namespace, name) for name in ("s3", "snow", "kafka")}

    assert {n: v["reason"] for n, v in verdicts.items()} == {
        "s3": "Refused",
        "snow": "Refused",
        "kafka": "Refused",
    }
    assert verdicts["s3"]["message"].startswith(f"spec.storage.endpoint: {attacker.url} is not https")
    assert verdicts["snow"]["message"].startswith("spec.warehouse.snowflake.endpoint:")
    assert verdicts["kafka"]["message"].startswith(
        f"spec.kafka.bootstrapServers: {attacker.address}, 127.0.0.2:9092 not an allowed Kafka address"
    )
    assert workloads(cluster, namespace) == []
    assert attacker.received == []


def test_a_secret_its_owner_gave_to_one_pipeline_is_refused_to_another(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    secret(cluster, namespace, "hook", marked=True, only_for="alpha")
    alerts = {
        "rules": [{"name": "move", "priceMove": {}}],
        "webhookUrl": {"secretKeyRef": {"name": "hook", "key": "key"}},
    }
    with running_operator(operator_settings(kube, s3_server), namespace):
        cluster.apply_yaml(namespace, pipeline("alpha", alerts=alerts))
        cluster.apply_yaml(namespace, pipeline("beta", alerts=alerts))
        beta = refused(cluster, namespace, "beta")
        alpha = wait_status(cluster, namespace, "alpha", handled(1), "alpha handled")

    assert beta["reason"] == "Refused"
    assert beta["message"] == (
        "spec.alerts.webhookUrl.secretKeyRef: Secret hook may be used only by the pipelines in its "
        f"annotation {SECRET_PIPELINES_ANNOTATION} (alpha), not by beta"
    )
    assert condition(alpha, "Ready")["reason"] != "Refused"
    assert "alpha-alerts" in workloads(cluster, namespace)
    assert not any(name.startswith("beta-") for name in workloads(cluster, namespace))


def test_a_replay_file_in_another_tenants_bucket_is_refused(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    source = {"type": "replay", "replay": {"uri": "s3://other-team-bucket/ticks.ndjson"}}
    with running_operator(operator_settings(kube, s3_server), namespace):
        cluster.apply_yaml(namespace, pipeline("replayer", source=source))
        ready = refused(cluster, namespace, "replayer")

    assert ready["reason"] == "Refused"
    assert ready["message"].startswith(
        "spec.source.replay.uri: bucket other-team-bucket is not the pipeline's bucket"
    )
    assert workloads(cluster, namespace) == []


def test_another_pipelines_bucket_is_neither_used_nor_deleted(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    with running_operator(operator_settings(kube, s3_server), namespace):
        cluster.apply_yaml(namespace, pipeline("owner"))
        bucket = wait_status(cluster, namespace, "owner", handled(1), "owner handled")["status"]["bucket"]
        s3.put_object(bucket, "bronze/keep.ndjson", io.BytesIO(b"{}\n"), 3)
        cluster.apply_yaml(namespace, pipeline("thief", storage={"bucket": bucket}, deletionPolicy="Delete"))
        ready = refused(cluster, namespace, "thief")
        thief = cluster.pipeline(namespace, "thief")
        cluster.delete_pipeline(namespace, "thief")
        wait_for(lambda: cluster.pipeline_gone(namespace, "thief"), timeout=30, what="thief finalized")

    assert ready["reason"] == "Refused"
    assert condition(thief, "Bucket")["reason"] == "BucketNotOwned"
    assert f"belongs to the pipeline {namespace}/owner" in ready["message"]
    assert "bucket" not in thief["status"]  # never recorded as the thief's
    assert not any(name.startswith("thief-") for name in workloads(cluster, namespace))
    # Deleting the thief with deletionPolicy Delete left the owner's bucket and data alone.
    assert owner_of(s3, bucket) == f"{namespace}/owner"
    assert [o.object_name for o in s3.list_objects(bucket, prefix="bronze/")] == ["bronze/keep.ndjson"]


def test_an_untagged_bucket_is_adopted_only_when_the_platform_allows_and_then_never_deleted(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    bucket = f"legacy-{namespace}"[:63]
    s3.make_bucket(bucket)
    adopting = operator_settings(kube, s3_server, adopt_unowned_buckets=True)
    with running_operator(operator_settings(kube, s3_server), namespace):
        cluster.apply_yaml(namespace, pipeline("refused", storage={"bucket": bucket}))
        first = refused(cluster, namespace, "refused")
        cluster.delete_pipeline(namespace, "refused")
        wait_for(lambda: cluster.pipeline_gone(namespace, "refused"), timeout=30, what="refused finalized")
    with running_operator(adopting, namespace):
        cluster.apply_yaml(
            namespace, pipeline("adopter", storage={"bucket": bucket}, deletionPolicy="Delete")
        )
        adopted = wait_status(cluster, namespace, "adopter", handled(1), "adopter handled")
        cluster.delete_pipeline(namespace, "adopter")
        wait_for(lambda: cluster.pipeline_gone(namespace, "adopter"), timeout=30, what="adopter finalized")

    assert first["reason"] == "Refused"
    assert f"it has no {OWNER_TAG} tag" in first["message"]
    assert "adopted" in condition(adopted, "Bucket")["message"]
    assert s3.bucket_exists(bucket)  # adopted, so deletionPolicy Delete kept it
    assert owner_of(s3, bucket) is None


def test_an_endpoints_answer_reaches_the_status_only_as_a_short_sanitised_reason(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str, attacker: AttackerListener
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    # The platform allows this endpoint; what it answers is still not the operator's to repeat.
    allowing = operator_settings(
        kube, s3_server, allowed_s3_endpoints=attacker.address, allow_plain_http=True
    )
    with running_operator(allowing, namespace):
        cluster.apply_yaml(namespace, pipeline("echo", storage={"endpoint": attacker.url}))
        found = wait_status(cluster, namespace, "echo", handled(1), "echo handled")
        wait_for(lambda: cluster.events(namespace, "echo"), timeout=15, what="an Event")
        events = cluster.events(namespace, "echo")

    bucket = condition(found, "Bucket")
    assert attacker.received  # the platform allowed it, so the operator did ask
    assert bucket["status"] == "False"
    texts = [c["message"] for c in found["status"]["conditions"]] + [e.message or "" for e in events]
    assert all(MARKER not in text for text in texts)
    assert len(bucket["message"]) < 200


def test_a_decompression_bomb_in_a_tenants_bucket_leaves_the_operator_within_its_memory_bound(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    bomb = gzip.compress(b'{"quotes": {"' + b"A" * (200 * 1024 * 1024), compresslevel=9)
    fast = operator_settings(kube, s3_server, resync_seconds=0.5)
    with running_operator(fast, namespace):
        cluster.apply_yaml(namespace, pipeline("bomber"))
        bucket = wait_status(cluster, namespace, "bomber", handled(1), "bomber handled")["status"]["bucket"]
        s3.put_object(bucket, QUOTES_KEY, io.BytesIO(bomb), len(bomb), metadata={"Content-Encoding": "gzip"})
        Path("/proc/self/clear_refs").write_text("5")  # restart the peak-RSS count from here
        before = _peak_rss_kib()
        # Other pipelines keep being served while the bomb is read at every periodic reconcile.
        cluster.apply_yaml(namespace, pipeline("neighbour"))
        neighbour = wait_status(cluster, namespace, "neighbour", handled(1), "neighbour handled")
        wait_for(
            lambda: any("decompresses to more than" in r.getMessage() for r in caplog.records),
            timeout=30,
            what="the bomb refused by size",
        )
        grown_mib = (_peak_rss_kib() - before) / 1024

    assert len(bomb) < 400 * 1024  # a small object that would be 200 MiB in memory
    assert neighbour["status"]["bucket"]
    assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB"


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.mark.parametrize(
    ("dashboard", "field", "message"),
    [
        ({"ingress": {"enabled": True, "host": "*.example.com"}}, "spec.dashboard.ingress.host", "wildcard"),
        ({"ingress": {"enabled": True}}, "spec.dashboard.ingress.host", "needs dashboard.ingress.host"),
        (
            {"ingress": {"annotations": {"nginx.ingress.kubernetes.io/server-snippet": "return 200;"}}},
            "spec.dashboard.ingress.annotations",
            "may not set *-snippet annotations",
        ),
    ],
    ids=["wildcard-host", "catch-all-ingress", "snippet-annotation"],
)
def test_a_hostile_dashboard_is_refused_at_admission_naming_the_field(
    cluster: Cluster, namespace: str, dashboard: dict[str, Any], field: str, message: str
) -> None:
    cluster.crd_set(strimzi=None, monitoring=False)
    with pytest.raises(ApiException) as refused_by:
        cluster.objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, pipeline("claim", dashboard=dashboard)
        )
    assert refused_by.value.status == 422
    assert field in refused_by.value.body
    assert message in refused_by.value.body
