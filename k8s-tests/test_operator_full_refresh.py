"""`kubectl annotate sp demo marketpulse.io/full-refresh=true`: the operator acts on it at once (not at
the next periodic reconcile), once: the transform gets the request's token, the annotation goes, the
status and an Event record it. Any other value is named in a condition and an Event."""

from __future__ import annotations

from typing import Any

import pytest
from operator_harness import (
    Cluster,
    condition,
    handled,
    operator_settings,
    running_operator,
    sample,
    wait_status,
)

from marketpulse.contract.settings.environment import variable
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.operator.full_refresh import ANNOTATION
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.s3]

TOKEN = variable(TransformSettings, "full_refresh_token")


def annotate(cluster: Cluster, namespace: str, value: str) -> None:
    argv = [cluster.kubectl, "annotate", "-n", namespace, "stockpipeline", "demo", f"{ANNOTATION}={value}"]
    cluster.kube.run([*argv, "--overwrite"])


def transform_token(cluster: Cluster, namespace: str) -> str | None:
    cronjob = cluster.batch.read_namespaced_cron_job("demo-transform", namespace)
    [container] = cronjob.spec.job_template.spec.template.spec.containers
    return next((e.value for e in container.env or [] if e.name == TOKEN), None)


def annotations(pipeline: dict[str, Any]) -> dict[str, str]:
    return pipeline["metadata"].get("annotations") or {}


def test_the_full_refresh_annotation_is_taken_once_and_a_wrong_value_is_named(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    # No periodic reconcile within the test: only the annotation's own handler can act on it.
    slow = operator_settings(kube, s3_server, resync_seconds=3600)
    with running_operator(slow, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        assert transform_token(cluster, namespace) is None

        annotate(cluster, namespace, "true")
        taken = wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: ANNOTATION not in annotations(p) and (p.get("status") or {}).get("lastFullRefresh"),
            "the full refresh to be taken",
        )
        token = taken["status"]["lastFullRefresh"]
        assert transform_token(cluster, namespace) == token
        assert condition(taken, "FullRefresh")["reason"] == "Requested"
        assert taken["status"]["phase"] != "Failed"

        annotate(cluster, namespace, "yes")
        refused = wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: (
                (p.get("status") or {}).get("conditions")
                and any(
                    c["type"] == "FullRefresh" and c["status"] == "False" for c in p["status"]["conditions"]
                )
            ),
            "the wrong value to be named",
        )
        reasons = {e.reason: e.message for e in cluster.events(namespace, "demo")}

    assert annotations(refused)[ANNOTATION] == "yes", "a value it does not take is left for the user to fix"
    assert refused["status"]["lastFullRefresh"] == token
    message = condition(refused, "FullRefresh")["message"]
    assert ANNOTATION in message
    assert "'yes'" in message
    assert 'set it to "true"' in message
    assert transform_token(cluster, namespace) == token, "the last request still stands"
    assert token in reasons["FullRefreshRequested"]
    assert ANNOTATION in reasons["InvalidAnnotation"]
