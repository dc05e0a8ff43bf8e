"""The pure builders: every child of a pipeline, rendered from the spec without a cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.utils import parse_quantity

from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.workloads import ScratchSizes, names_for
from marketpulse.contract.workloads.scratch import MI
from marketpulse.operator.builders import (
    BuildContext,
    Capabilities,
    build_pipeline_kafka_secret,
    dashboard_url,
    render_children,
)
from marketpulse.operator.diff import covers, manifest_hash, up_to_date, with_hash
from marketpulse.operator.rbac import CLUSTER_RULES
from marketpulse.operator.settings import OperatorSettings

SAMPLES = Path(__file__).parents[1] / "config" / "samples"
ALL = Capabilities("kafka.strimzi.io/v1", "kafka.strimzi.io/v1", True, True)


def pipeline(name: str = "synthetic-duckdb", namespace: str = "trading", **spec: Any) -> StockPipeline:
    document = yaml.safe_load((SAMPLES / f"stockpipeline-{name}.yaml").read_text())
    document["metadata"]["namespace"] = namespace
    document["spec"].update(spec)
    return validate_stockpipeline(document)


def render(p: StockPipeline, caps: Capabilities = ALL) -> dict[str, dict[str, Any]]:
    ctx = BuildContext(names=names_for(p), image="img:1", capabilities=caps)
    return {f"{m['kind']}/{m['metadata']['name']}": m for m in render_children(p, ctx)}


def pod_of(manifest: dict[str, Any]) -> dict[str, Any]:
    if manifest["kind"] == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(manifest["spec"]["template"]["spec"])


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod_of(manifest)["containers"][0]["env"]}


def test_the_smallest_pipeline_renders_topics_volume_workloads_dashboard_and_monitoring_but_no_ingress() -> (
    None
):
    assert set(render(pipeline())) == {
        "KafkaTopic/demo-ticks",
        "KafkaTopic/demo-ticks-dlq",
        "KafkaTopic/demo-alerts",
        "PersistentVolumeClaim/demo-warehouse",
        "Deployment/demo-ingest",
        "Deployment/demo-archive",
        "CronJob/demo-transform",
        "Deployment/demo-dashboard",
        "Service/demo-dashboard",
        "Service/demo-metrics",
        "NetworkPolicy/demo",
        "ServiceMonitor/demo",
        "PrometheusRule/demo",
    }


def test_monitoring_and_kafkatopics_are_left_out_where_the_cluster_does_not_serve_them() -> None:
    kinds = {key.split("/")[0] for key in render(pipeline(), Capabilities())}
    assert kinds == {"PersistentVolumeClaim", "Deployment", "CronJob", "Service", "NetworkPolicy"}


def test_a_v1beta2_cluster_gets_v1beta2_kafkatopics() -> None:
    found = render(pipeline(), Capabilities(kafka_topic_version="kafka.strimzi.io/v1beta2"))
    assert found["KafkaTopic/demo-ticks"]["apiVersion"] == "kafka.strimzi.io/v1beta2"


def test_every_child_carries_the_standard_labels_and_a_name_that_fits() -> None:
    for key, child in render(pipeline()).items():
        labels = child["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "marketpulse", key
        assert labels["app.kubernetes.io/instance"] == "demo", key
        assert labels["app.kubernetes.io/part-of"] == "marketpulse", key
        assert labels["app.kubernetes.io/managed-by"] == "marketpulse-operator", key
        assert "app.kubernetes.io/component" in labels, key
        assert child["metadata"]["namespace"] == "trading"


def test_names_of_a_40_character_pipeline_fit_63_and_the_cronjob_52() -> None:
    long = pipeline(namespace="n" * 63)
    found = render(long.model_copy(update={"metadata": long.metadata.model_copy(update={"name": "a" * 40})}))
    for key, child in found.items():
        limit = 52 if key.startswith("CronJob/") else 63
        assert len(child["metadata"]["name"]) <= limit, key


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    for key, child in render(pipeline()).items():
        if child["kind"] not in ("Deployment", "CronJob"):
            continue
        pod = pod_of(child)
        assert pod["securityContext"]["runAsNonRoot"] is True, key
        assert isinstance(pod["securityContext"]["runAsUser"], int), key
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, key
        container = pod["containers"][0]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, key
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}, key
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, key
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], key
        assert container["image"] == "img:1"


def test_a_workload_that_dies_at_start_up_leaves_its_last_log_lines_as_its_termination_message() -> None:
    # The operator reports that message in the pipeline's condition (podhealth).
    workloads = {**render(pipeline()), **render(pipeline("direct-topics"))}
    assert {"Deployment/fx-lab-transform", "CronJob/demo-transform", "Deployment/demo-ingest"} <= set(
        workloads
    )
    for key, child in workloads.items():
        if child["kind"] not in ("Deployment", "CronJob"):
            continue
        for container in pod_of(child)["containers"]:
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", key


def test_only_transform_mounts_the_duckdb_volume() -> None:
    mounting = [
        key
        for key, child in render(pipeline()).items()
        if child["kind"] in ("Deployment", "CronJob")
        and any("persistentVolumeClaim" in v for v in pod_of(child)["volumes"])
    ]
    assert mounting == ["CronJob/demo-transform"]


def test_the_transform_cronjob_never_overlaps_and_continuous_mode_is_one_recreated_replica() -> None:
    cron = render(pipeline())["CronJob/demo-transform"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    continuous = render(pipeline("direct-topics"))["Deployment/fx-lab-transform"]
    assert continuous["spec"]["strategy"] == {"type": "Recreate"}
    assert continuous["spec"]["replicas"] == 1
    assert env(continuous)["MARKETPULSE_TRANSFORM_MODE"] == "continuous"


def test_ingest_may_flush_for_its_whole_delivery_timeout_before_it_is_killed() -> None:
    from marketpulse.contract.settings.ingest import IngestSettings

    delivery = IngestSettings.model_fields["ingest_delivery_timeout_seconds"].default
    found = render(pipeline())
    grace = pod_of(found["Deployment/demo-ingest"])["terminationGracePeriodSeconds"]
    assert grace > delivery
    # The others stop within Kubernetes' default grace period.
    assert "terminationGracePeriodSeconds" not in pod_of(found["Deployment/demo-archive"])


def test_suspend_scales_deployments_to_zero_and_suspends_the_cronjob() -> None:
    found = render(pipeline(suspend=True))
    assert {c["spec"]["replicas"] for c in found.values() if c["kind"] == "Deployment"} == {0}
    assert found["CronJob/demo-transform"]["spec"]["suspend"] is True
    resumed = render(pipeline(suspend=False))
    assert {c["spec"]["replicas"] for c in resumed.values() if c["kind"] == "Deployment"} == {1}


def test_a_watchlist_change_changes_every_workload_pod_template() -> None:
    before, after = render(pipeline()), render(pipeline(watchlist=["AAPL", "TSLA"]))
    for key, child in before.items():
        if child["kind"] in ("Deployment", "CronJob"):
            assert pod_of(child) != pod_of(after[key]), key
            assert env(after[key])["MARKETPULSE_WATCHLIST"] == "AAPL,TSLA"


def test_secrets_are_referenced_never_copied() -> None:
    found = render(pipeline("finnhub-snowflake"))
    ingest, transform = env(found["Deployment/us-tech-ingest"]), env(found["CronJob/us-tech-transform"])
    assert ingest["FINNHUB_API_KEY"] == {"secretKeyRef": {"name": "finnhub", "key": "api-key"}}
    assert transform["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"] == {
        "secretKeyRef": {"name": "snowflake", "key": "passphrase"}
    }
    assert transform["SNOWFLAKE_PRIVATE_KEY_PATH"].endswith("/private-key.p8")
    key_volume = next(v for v in pod_of(found["CronJob/us-tech-transform"])["volumes"] if "secret" in v)
    assert key_volume["secret"]["items"] == [{"key": "private-key", "path": "private-key.p8"}]
    alerts = env(found["Deployment/us-tech-alerts"])
    assert alerts["MARKETPULSE_ALERTS_WEBHOOK_URL"] == {
        "secretKeyRef": {"name": "slack-webhook", "key": "url"}
    }
    assert "PersistentVolumeClaim/us-tech-warehouse" not in found


def test_workload_env_matches_the_entrypoints_settings() -> None:
    found = render(pipeline())
    ingest = env(found["Deployment/demo-ingest"])
    assert ingest["MARKETPULSE_PIPELINE"] == "demo"
    assert ingest["MARKETPULSE_NAMESPACE"] == "trading"
    assert ingest["MARKETPULSE_TICKS_TOPIC"] == "trading.demo.ticks"
    assert ingest["MARKETPULSE_DLQ_TOPIC"] == "trading.demo.ticks.dlq"
    assert ingest["MARKETPULSE_SYNTHETIC_SEED"] == "42"
    assert ingest["MARKETPULSE_SYNTHETIC_RATE"] == "25"
    archive = env(found["Deployment/demo-archive"])
    # The readable part, then a hash of namespace/name that keeps look-alike pairs apart.
    assert archive["MARKETPULSE_BUCKET"] == "mp-trading-demo-04e1344a"
    assert archive["S3_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "marketpulse-s3", "key": "AWS_ACCESS_KEY_ID"}
    }


def test_the_kafkauser_may_use_only_the_pipelines_topics_and_groups() -> None:
    found = render(
        pipeline("strimzi-topics", kafka={"topicBackend": "strimzi", "authentication": "scram-sha-512"})
    )
    acls = found["KafkaUser/indices"]["spec"]["authorization"]["acls"]
    topics = sorted(a["resource"]["name"] for a in acls if a["resource"]["type"] == "topic")
    assert topics == ["trading.indices.alerts", "trading.indices.ticks", "trading.indices.ticks.dlq"]
    assert all(a["resource"]["patternType"] == "literal" for a in acls if a["resource"]["type"] == "topic")
    groups = [a["resource"] for a in acls if a["resource"]["type"] == "group"]
    assert groups == [{"type": "group", "name": "trading.indices.", "patternType": "prefix"}]
    assert env(found["Deployment/indices-ingest"])["KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "indices", "key": "password"}
    }


def test_a_direct_scram_pipeline_logs_in_as_its_namespaced_user_with_the_password_of_its_own_secret() -> None:
    p = pipeline(
        "direct-topics",
        kafka={"topicBackend": "direct", "bootstrapServers": "k:9092", "authentication": "scram-sha-512"},
    )
    found = render(p)
    ingest = env(found["Deployment/fx-lab-ingest"])
    secret = build_pipeline_kafka_secret(BuildContext(names=names_for(p)), "pw")

    assert not [k for k in found if k.startswith("KafkaUser/")]
    assert ingest["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert ingest["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert ingest["KAFKA_SASL_USERNAME"] == "trading.fx-lab"
    assert ingest["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": "fx-lab-kafka", "key": "password"}}
    assert env(found["Deployment/fx-lab-archive"])["KAFKA_SASL_PASSWORD"] == ingest["KAFKA_SASL_PASSWORD"]
    assert secret["metadata"]["name"] == "fx-lab-kafka"
    assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == "fx-lab"
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "marketpulse-operator"
    assert secret["stringData"] == {"password": "pw"}


def test_the_dashboard_ingress_serves_its_host_over_tls_with_its_class_and_annotations() -> None:
    ingress = render(pipeline("strimzi-topics"))["Ingress/indices-dashboard"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["indices.marketpulse.example.com"]
    assert ingress["spec"]["tls"] == [
        {"hosts": ["indices.marketpulse.example.com"], "secretName": "indices-dashboard-tls"}
    ]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"] == (
        "https://oauth2.marketpulse.example.com/oauth2/auth"
    )
    assert ingress["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboard"


def test_an_enabled_dashboard_without_an_enabled_ingress_gets_only_a_cluster_ip_service() -> None:
    found = render(pipeline(dashboard={"ingress": {"enabled": False, "host": "markets.example.com"}}))
    assert "Ingress/demo-dashboard" not in found
    assert found["Service/demo-dashboard"]["spec"]["type"] == "ClusterIP"


def test_a_disabled_dashboard_gets_no_ingress_even_when_the_ingress_is_enabled() -> None:
    found = render(
        pipeline(dashboard={"enabled": False, "ingress": {"enabled": True, "host": "m.example.com"}})
    )
    assert not [k for k in found if "dashboard" in k]


def test_the_dashboard_url_is_the_ingress_host_only_while_the_ingress_is_in_place() -> None:
    p = pipeline("strimzi-topics")
    ctx = BuildContext(names=names_for(p), image="img:1", capabilities=ALL)
    assert dashboard_url(p.spec, ctx) == "https://indices.marketpulse.example.com/"
    assert dashboard_url(p.spec, ctx, ingress=False) == "http://indices-dashboard.trading.svc:80/"


def test_direct_topics_and_no_alert_rules_render_no_kafkatopics_and_no_alerts_workload() -> None:
    found = render(pipeline("direct-topics"))
    assert not [k for k in found if k.startswith("KafkaTopic/") or k == "Deployment/fx-lab-alerts"]


def test_rendering_is_deterministic() -> None:
    assert render(pipeline()) == render(pipeline())


# --- diff -----------------------------------------------------------------------------------------


def test_a_child_as_the_server_returns_it_is_up_to_date_and_a_changed_one_is_not() -> None:
    desired = with_hash(
        {"kind": "X", "metadata": {"name": "a"}, "spec": {"cpu": "500m", "env": [{"name": "A"}]}}
    )
    live = {
        "kind": "X",
        "metadata": {"name": "a", "uid": "u", "annotations": dict(desired["metadata"]["annotations"])},
        "spec": {"cpu": "0.5", "env": [{"name": "A", "extra": 1}], "defaulted": True},
        "status": {},
    }
    assert up_to_date(desired, live)
    assert not up_to_date(desired, None)
    drifted = {**live, "spec": {**live["spec"], "env": [{"name": "A"}, {"name": "B"}]}}
    assert not up_to_date(desired, drifted)
    stale = {**live, "metadata": {**live["metadata"], "annotations": {"marketpulse.io/applied-hash": "old"}}}
    assert not up_to_date(desired, stale)


def test_covers_compares_quantities_by_value_and_lists_item_by_item() -> None:
    assert covers({"memory": "1Gi"}, {"memory": "1024Mi"})
    assert not covers({"memory": "1Gi"}, {"memory": "1G"})
    assert not covers([1, 2], [1])
    assert manifest_hash({"a": 1, "b": 2}) == manifest_hash({"b": 2, "a": 1})


# --- rbac -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", CLUSTER_RULES, ids=lambda r: ",".join(r["resources"]))
def test_rbac_rules_name_every_group_resource_and_verb_without_wildcards(rule: dict[str, list[str]]) -> None:
    for key in ("apiGroups", "resources", "verbs"):
        assert rule[key]
        assert "*" not in rule[key]


def test_the_workloads_renderer_imports_neither_kubernetes_nor_kopf() -> None:
    # The local executor reuses it on machines without a cluster client.
    code = (
        "import sys, marketpulse.contract.workloads; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_alert_rules_select_their_pipeline_by_its_instance_label_not_a_pod_name_prefix() -> None:
    children = render(pipeline())
    monitor = children["ServiceMonitor/demo"]["spec"]
    assert "app.kubernetes.io/instance" in monitor["podTargetLabels"]
    ingest_pod_labels = children["Deployment/demo-ingest"]["spec"]["template"]["metadata"]["labels"]
    assert ingest_pod_labels["app.kubernetes.io/instance"] == "demo"
    for rule in children["PrometheusRule/demo"]["spec"]["groups"][0]["rules"]:
        assert 'app_kubernetes_io_instance="demo"' in rule["expr"]
        assert 'pod=~"demo-.*"' not in rule["expr"], "would also match a pipeline named demo-eu"


def test_every_alert_rule_names_its_pipeline_a_severity_and_explains_itself() -> None:
    (group,) = render(pipeline())["PrometheusRule/demo"]["spec"]["groups"]
    assert [r["alert"] for r in group["rules"]] == [
        "MarketPulseFeedStale",
        "MarketPulseConsumerLag",
        "MarketPulseDeadLetters",
        "MarketPulseDeadLettersNotArchived",
        "MarketPulseRetentionGap",
        "MarketPulseTransformFailed",
        "MarketPulseBronzeQuarantined",
        "MarketPulseGoldStale",
        "MarketPulseSymbolGoldStale",
        "MarketPulsePipelineSilent",
        "MarketPulseDeliveryErrors",
        "MarketPulseAlertWebhookFailing",
    ]
    for rule in group["rules"]:
        assert rule["labels"]["pipeline"] == "demo"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_the_transform_alert_watches_only_this_pipelines_cronjob_jobs() -> None:
    (group,) = render(pipeline())["PrometheusRule/demo"]["spec"]["groups"]
    (rule,) = [r for r in group["rules"] if r["alert"] == "MarketPulseTransformFailed"]
    # CronJob Jobs are <cronjob>-<digits>; a pipeline named demo-eu has demo-eu-transform-<digits>.
    assert 'job_name=~"demo-transform-[0-9]+"' in rule["expr"]
    assert 'namespace="trading"' in rule["expr"]


def scratch_of(manifest: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The /tmp emptyDir's size limit and the container's resources."""
    pod = pod_of(manifest)
    [tmp] = [v for v in pod["volumes"] if v["name"] == "tmp"]
    return tmp["emptyDir"]["sizeLimit"], pod["containers"][0]["resources"]


def test_every_workload_has_a_bounded_tmp_and_requests_and_limits_it_plus_its_logs_as_ephemeral_storage() -> (
    None
):
    workloads = {k: v for k, v in render(pipeline()).items() if v["kind"] in ("Deployment", "CronJob")}
    assert len(workloads) == 4
    for key, child in workloads.items():
        limit, resources = scratch_of(child)
        expected = parse_quantity(limit) + ScratchSizes().logs
        assert parse_quantity(resources["requests"]["ephemeral-storage"]) == expected, key
        assert parse_quantity(resources["limits"]["ephemeral-storage"]) == expected, key


def test_scratch_is_sized_from_the_chunk_settings_transform_a_chunk_of_objects_archive_a_few_objects() -> (
    None
):
    obj = 8 * MI + 1 * MI  # archive_max_bytes and one consumed batch of overshoot
    duckdb = render(pipeline())
    assert scratch_of(duckdb["CronJob/demo-transform"])[0] == f"{(64 * MI + 400 * obj + 1024 * MI) // MI}Mi"
    assert scratch_of(duckdb["Deployment/demo-archive"])[0] == f"{(64 * MI + 4 * obj) // MI}Mi"
    assert scratch_of(duckdb["Deployment/demo-ingest"])[0] == "64Mi"
    # Snowflake: the chunk's Parquet beside its downloads, and no gold Parquet to publish.
    snowflake = {k: v for k, v in render(pipeline("finnhub-snowflake")).items() if k.endswith("-transform")}
    [transform] = snowflake.values()
    assert scratch_of(transform)[0] == f"{(64 * MI + 2 * 400 * obj) // MI}Mi"


def test_the_platforms_scratch_settings_size_the_workloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE_SCRATCH_BASE", "128Mi")
    monkeypatch.setenv("MARKETPULSE_SCRATCH_GOLD", "3Gi")
    monkeypatch.setenv("MARKETPULSE_SCRATCH_LOGS", "32Mi")
    platform = OperatorSettings().platform()
    p = pipeline()
    ctx = BuildContext(names=names_for(p), image="img:1", capabilities=ALL, platform=platform)
    found = {f"{m['kind']}/{m['metadata']['name']}": m for m in render_children(p, ctx)}
    limit, resources = scratch_of(found["CronJob/demo-transform"])
    assert parse_quantity(limit) == 128 * MI + 400 * 9 * MI + 3 * 1024 * MI
    assert parse_quantity(resources["limits"]["ephemeral-storage"]) == parse_quantity(limit) + 32 * MI
    assert scratch_of(found["Deployment/demo-ingest"])[0] == "128Mi"


def test_a_scratch_setting_that_is_not_a_size_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE_SCRATCH_GOLD", "lots")
    with pytest.raises(ValueError, match=r"scratch_gold[\s\S]*'lots': expected a size"):
        OperatorSettings()
