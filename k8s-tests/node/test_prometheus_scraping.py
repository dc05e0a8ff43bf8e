"""A real Prometheus, run by the Prometheus Operator on the node, scrapes what the chart and the
operator declare (ServiceMonitors) and loads the alert rules they render (PrometheusRules)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.pytest_plugin import eventually

pytestmark = pytest.mark.node

Release = Any  # conftest's Release (test modules cannot import the conftest)
# Ingest, archive and transform serve metrics; the operator through the chart's ServiceMonitor.
PIPELINE_JOBS = 3


def api(prometheus_url: str, path: str, **params: str) -> Any:
    reply = httpx.get(f"{prometheus_url}/api/v1/{path}", params=params, timeout=10)
    reply.raise_for_status()
    body = reply.json()
    assert body["status"] == "success", body
    return body["data"]


def namespace_targets(prometheus_url: str, namespace: str) -> list[dict[str, Any]]:
    active: list[dict[str, Any]] = api(prometheus_url, "targets", state="active")["activeTargets"]
    return [t for t in active if t["labels"].get("namespace") == namespace]


@pytest.fixture
def watched(monitored_release: Release) -> Iterator[str]:
    yield "watched"
    monitored_release.delete("watched")


def test_every_marketpulse_target_is_scraped_up_once_a_pipeline_is_applied(
    monitored_release: Release, node_kafka: KafkaServer, prometheus_url: str, watched: str
) -> None:
    release = monitored_release
    applied = time.monotonic()
    release.apply(release.direct_pipeline(watched, node_kafka))
    release.wait_phase(watched, "Ready")

    def all_up() -> list[dict[str, Any]] | None:
        targets = namespace_targets(prometheus_url, release.namespace)
        pipeline = [t for t in targets if watched in t["scrapePool"]]
        return (
            targets if len(pipeline) >= PIPELINE_JOBS and all(t["health"] == "up" for t in targets) else None
        )

    try:
        targets = eventually(all_up, timeout=180, what="every target of the release's namespace up")
    except AssertionError as exc:
        seen = [
            (t["scrapePool"], t["labels"].get("pod"), t["health"], t["lastError"])
            for t in namespace_targets(prometheus_url, release.namespace)
        ]
        raise AssertionError(f"{exc}; targets: {seen}") from None
    first_scrape = time.monotonic() - applied
    print(f"apply -> every target up in {first_scrape:.1f}s")

    pools = sorted({t["scrapePool"] for t in targets})
    assert any(f"/{release.namespace}/" in pool and watched in pool for pool in pools), pools
    assert any("marketpulse" in pool for pool in pools if watched not in pool), pools
    up = api(prometheus_url, "query", query=f'up{{namespace="{release.namespace}"}}')["result"]
    assert up
    assert all(sample["value"][1] == "1" for sample in up), up


def test_the_pipelines_alert_rules_are_loaded_and_evaluated_by_prometheus(
    monitored_release: Release, node_kafka: KafkaServer, prometheus_url: str, watched: str
) -> None:
    release = monitored_release
    manifest = release.direct_pipeline(watched, node_kafka)
    release.apply(manifest)
    release.wait_phase(watched, "Ready")
    (rule_object,) = eventually(
        lambda: client.CustomObjectsApi(release.api).list_namespaced_custom_object(
            "monitoring.coreos.com", "v1", release.namespace, "prometheusrules",
            label_selector=f"app.kubernetes.io/instance={watched}",
        )["items"],
        timeout=60,
        what=f"the operator to create {watched}'s PrometheusRule",
    )  # fmt: skip
    wanted = {
        rule["alert"] for group in rule_object["spec"]["groups"] for rule in group["rules"] if "alert" in rule
    }
    assert len(wanted) >= 10, wanted

    def loaded() -> dict[str, dict[str, Any]] | None:
        groups = api(prometheus_url, "rules", type="alert")["groups"]
        ours = {
            rule["name"]: rule
            for group in groups
            if f"{release.namespace}-{rule_object['metadata']['name']}-" in group["file"]
            for rule in group["rules"]
        }
        evaluated = all(r.get("lastEvaluation", "").startswith("20") for r in ours.values())
        return ours if wanted <= set(ours) and evaluated else None

    rules = eventually(loaded, timeout=120, what=f"Prometheus to load and evaluate {sorted(wanted)}")
    assert all(rule["health"] == "ok" for rule in rules.values()), {
        name: rule.get("lastError") for name, rule in rules.items() if rule["health"] != "ok"
    }
