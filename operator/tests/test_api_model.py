"""The typed StockPipeline API: defaults, refusals that name the field, samples, update rules."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from marketpulse.contract.api import (
    Condition,
    KafkaSpec,
    StockPipeline,
    StockPipelineInvalid,
    StockPipelineSpec,
    StockPipelineStatus,
    validate_spec,
    validate_stockpipeline,
    validate_update,
)
from marketpulse.contract.api.base import ApiModel, Rule

SAMPLES = sorted((Path(__file__).parents[1] / "config" / "samples").glob("*.yaml"))
INVALID = yaml.safe_load((Path(__file__).parent / "invalid_stockpipelines.yaml").read_text())


def manifest(spec: dict[str, Any], name: str = "bad-pipeline") -> dict[str, Any]:
    return {
        "apiVersion": "marketpulse.io/v1alpha1",
        "kind": "StockPipeline",
        "metadata": {"name": name},
        "spec": spec,
    }


def names_field(error: StockPipelineInvalid, field: str) -> bool:
    return any(e.path == field or e.path.startswith((f"{field}[", f"{field}.")) for e in error.errors)


def all_rules() -> list[Rule]:
    found, pending = [], list(ApiModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        found.extend(declared for declared, _ in model.__stockpipeline_rules__)
    return found


def test_a_spec_with_only_a_watchlist_is_a_complete_pipeline_with_working_defaults() -> None:
    spec = validate_spec({"watchlist": ["AAPL", "MSFT"]})

    assert spec.watchlist == ["AAPL", "MSFT"]
    assert spec.source.type == "synthetic"
    assert spec.source.synthetic_settings.seed == 42
    assert spec.kafka.topic_backend == "strimzi"
    assert spec.kafka.cluster_name == "marketpulse"
    assert spec.kafka.partitions == 3
    assert spec.kafka.replicas is None  # the brokers' default replication factor
    assert spec.storage.bucket is None  # derived from namespace and name by the operator
    assert spec.storage.retention_days == 30
    assert spec.warehouse.type == "duckdb"
    assert spec.warehouse.duckdb_settings.volume_size == "1Gi"
    assert spec.transform.mode == "cron"
    assert spec.transform.schedule == "*/5 * * * *"
    assert spec.dashboard.enabled is True
    assert spec.alerts.rules == []
    assert spec.suspend is False
    assert spec.deletion_policy == "Retain"


def test_the_wire_format_is_camel_case_and_leaves_unset_fields_out() -> None:
    spec = validate_spec(
        {"watchlist": ["AAPL"], "kafka": {"topicBackend": "direct", "bootstrapServers": "k:9092"}}
    )

    wire = spec.model_dump(mode="json", exclude_none=True)

    assert wire["kafka"] == {
        "topicBackend": "direct",
        "clusterName": "marketpulse",
        "bootstrapServers": "k:9092",
        "partitions": 3,
        "retentionHours": 168,
        "authentication": "none",
    }
    assert wire["deletionPolicy"] == "Retain"
    assert "bucket" not in wire["storage"]


def test_python_code_builds_a_spec_with_snake_case_names() -> None:
    kafka = KafkaSpec(topic_backend="direct", bootstrap_servers="kafka:9092", partitions=6)
    spec = StockPipelineSpec(watchlist=["AAPL"], kafka=kafka, deletion_policy="Delete")

    assert spec.kafka.partitions == 6
    assert spec.model_dump(mode="json")["deletionPolicy"] == "Delete"


@pytest.mark.parametrize("case", INVALID, ids=[case["id"] for case in INVALID])
def test_an_invalid_stockpipeline_is_refused_with_a_message_naming_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(StockPipelineInvalid) as refused:
        validate_stockpipeline(manifest(case["spec"], case.get("name", "bad-pipeline")))

    assert names_field(refused.value, case["field"]), str(refused.value)
    assert case.get("message", "") in str(refused.value)


def test_every_cross_field_rule_is_exercised_by_the_table_of_invalid_resources() -> None:
    # The same table runs against the API server, so this keeps each CEL rule and its Python
    # mirror tested together: a new rule without a case fails here.
    rules = [r for r in all_rules() if not r.transition]
    expected = [case["message"] for case in INVALID if "message" in case]
    untested = [r.message for r in rules if not any(m in r.message for m in expected)]
    assert len(rules) >= 10
    assert untested == []


def test_an_ingress_annotation_value_longer_than_4096_characters_is_refused() -> None:
    with pytest.raises(StockPipelineInvalid) as refused:
        validate_spec({"watchlist": ["AAPL"], "dashboard": {"ingress": {"annotations": {"a": "x" * 4097}}}})

    assert names_field(refused.value, "spec.dashboard.ingress.annotations")


def test_the_dashboard_ingress_is_off_unless_asked_for_and_takes_annotations_for_a_sign_in_proxy() -> None:
    assert validate_spec({"watchlist": ["AAPL"]}).dashboard.ingress_enabled is False
    ingress = validate_spec(
        {
            "watchlist": ["AAPL"],
            "dashboard": {
                "ingress": {
                    "enabled": True,
                    "host": "markets.example.com",
                    "annotations": {"nginx.ingress.kubernetes.io/auth-url": "https://sso/oauth2/auth"},
                }
            },
        }
    ).dashboard.ingress
    assert (ingress.enabled, ingress.host) == (True, "markets.example.com")


def test_a_watchlist_of_more_than_200_symbols_is_refused() -> None:
    with pytest.raises(StockPipelineInvalid) as refused:
        validate_spec({"watchlist": [f"T{i:03d}" for i in range(201)]})

    assert names_field(refused.value, "spec.watchlist")
    assert "at most 200" in str(refused.value)


def test_every_problem_in_a_resource_is_reported_not_only_the_first() -> None:
    with pytest.raises(StockPipelineInvalid) as refused:
        validate_spec({"watchlist": ["aapl"], "kafka": {"partitions": 0}, "suspend": "no"})

    assert {e.path for e in refused.value.errors} == {
        "spec.watchlist[0]",
        "spec.kafka.partitions",
        "spec.suspend",
    }


def test_the_refusal_names_the_file_and_shows_the_offending_value() -> None:
    with pytest.raises(StockPipelineInvalid) as refused:
        validate_stockpipeline(
            manifest({"watchlist": ["AAPL"], "kafka": {"partitions": "3"}}), source="p.yaml"
        )

    message = str(refused.value)
    assert message.startswith("StockPipeline (p.yaml) is invalid:")
    assert "spec.kafka.partitions: Input should be a valid integer (got '3')" in message


def test_a_document_that_is_not_a_mapping_is_refused_with_a_clear_message() -> None:
    with pytest.raises(StockPipelineInvalid, match="expected a mapping of fields, got list"):
        validate_stockpipeline([{"watchlist": ["AAPL"]}])


def test_a_resource_of_another_kind_is_refused_naming_kind() -> None:
    document = manifest({"watchlist": ["AAPL"]}) | {"kind": "KafkaTopic"}

    with pytest.raises(StockPipelineInvalid) as refused:
        validate_stockpipeline(document)

    assert names_field(refused.value, "kind")


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_a_sample_is_a_valid_stockpipeline(sample: Path) -> None:
    pipeline = validate_stockpipeline(yaml.safe_load(sample.read_text()), source=sample.name)

    assert pipeline.metadata.name
    assert pipeline.metadata.namespace is None, "samples are applied to whatever namespace the user picks"


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_a_sample_reads_back_unchanged_from_its_wire_format(sample: Path) -> None:
    pipeline = validate_stockpipeline(yaml.safe_load(sample.read_text()))

    assert validate_stockpipeline(pipeline.to_manifest()) == pipeline


def test_the_samples_cover_each_common_case() -> None:
    specs = [validate_stockpipeline(yaml.safe_load(s.read_text())).spec for s in SAMPLES]

    assert any(s.source.type == "synthetic" and s.warehouse.type == "duckdb" for s in specs)
    assert any(s.source.type == "finnhub" and s.warehouse.type == "snowflake" for s in specs)
    assert {s.kafka.topic_backend for s in specs} == {"strimzi", "direct"}


def pipeline(**spec: Any) -> StockPipeline:
    return validate_stockpipeline(manifest({"watchlist": ["AAPL"], **spec}, name="p"))


def test_growing_the_partitions_is_an_accepted_update() -> None:
    validate_update(pipeline(kafka={"partitions": 3}), pipeline(kafka={"partitions": 6}))


def test_shrinking_the_partitions_is_refused_as_an_update() -> None:
    with pytest.raises(StockPipelineInvalid) as refused:
        validate_update(pipeline(kafka={"partitions": 6}), pipeline(kafka={"partitions": 3}))

    assert [str(e) for e in refused.value.errors] == [
        "spec.kafka.partitions: kafka.partitions may grow but not shrink: "
        "Kafka cannot remove partitions from a topic"
    ]


@pytest.mark.parametrize(
    ("old_bucket", "new_bucket"),
    [("prices", "other-prices"), ("prices", None), (None, "prices")],
    ids=["changed", "removed", "added later"],
)
def test_the_bucket_cannot_change_once_the_pipeline_exists(
    old_bucket: str | None, new_bucket: str | None
) -> None:
    def storage(bucket: str | None) -> dict[str, Any]:
        return {"bucket": bucket} if bucket else {}

    with pytest.raises(StockPipelineInvalid) as refused:
        validate_update(pipeline(storage=storage(old_bucket)), pipeline(storage=storage(new_bucket)))

    assert names_field(refused.value, "spec.storage.bucket")
    assert "storage.bucket is immutable" in str(refused.value)


def test_the_topic_backend_cannot_change_once_the_pipeline_exists() -> None:
    direct = {"topicBackend": "direct", "bootstrapServers": "kafka:9092"}

    with pytest.raises(StockPipelineInvalid) as refused:
        validate_update(pipeline(), pipeline(kafka=direct))

    assert names_field(refused.value, "spec.kafka.topicBackend")


def test_other_changes_such_as_the_watchlist_are_accepted_updates() -> None:
    old = pipeline(storage={"bucket": "prices"})
    new_spec = copy.deepcopy(old.to_manifest()["spec"]) | {"watchlist": ["AAPL", "MSFT"], "suspend": True}

    validate_update(old, validate_stockpipeline(manifest(new_spec, name="p")))


def test_status_timestamps_are_written_the_way_kubernetes_writes_them() -> None:
    eastern = timezone(timedelta(hours=-5))
    status = StockPipelineStatus(
        observed_generation=2,
        phase="Ready",
        conditions=[
            Condition(
                type="Ready",
                status="True",
                reason="AllChildrenReady",
                last_transition_time=datetime(2025, 3, 4, 9, 30, 0, 123456, tzinfo=eastern),
            )
        ],
    )

    wire = status.model_dump(mode="json", exclude_none=True)

    assert wire["observedGeneration"] == 2
    assert wire["conditions"][0] == {
        "type": "Ready",
        "status": "True",
        "reason": "AllChildrenReady",
        "message": "",
        "lastTransitionTime": "2025-03-04T14:30:00Z",
    }
    assert StockPipelineStatus.model_validate(wire).conditions[0].last_transition_time == datetime(
        2025, 3, 4, 14, 30, tzinfo=UTC
    )
