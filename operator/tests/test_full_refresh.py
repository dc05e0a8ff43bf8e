"""A full refresh on request: the annotation is taken once, its token reaches the transform and stays
there, and a value other than "true" is named in a condition, never a traceback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from marketpulse.contract.api import validate_stockpipeline
from marketpulse.contract.settings.environment import variable
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.contract.workloads import Platform, names_for, render_workloads
from marketpulse.operator.builders import BuildContext, render_children
from marketpulse.operator.full_refresh import ANNOTATION, full_refresh
from marketpulse.operator.status import Check, Observed, summarize

NOW = datetime(2026, 12, 4, 2, 30, 5, 123456, tzinfo=UTC)
TOKEN_VARIABLE = variable(TransformSettings, "full_refresh_token")
VARS_VARIABLE = variable(TransformSettings, "dbt_vars")


def body(annotation: str | None = None, last: str | None = None) -> dict[str, Any]:
    annotations = {ANNOTATION: annotation} if annotation is not None else {}
    status = {"lastFullRefresh": last} if last else {}
    return {"metadata": {"name": "p", "annotations": annotations}, "status": status}


def transform_env(**kwargs: Any) -> dict[str, str | None]:
    pipeline = validate_stockpipeline(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"watchlist": ["AAPL"], **kwargs.pop("spec", {})},
        }
    )
    [transform] = [
        w
        for w in render_workloads(pipeline.spec, names_for(pipeline), Platform(), **kwargs)
        if w.component == "transform"
    ]
    return {var.name: var.value for var in transform.env}


def test_the_annotation_true_is_taken_as_a_request_named_by_its_time_to_the_second() -> None:
    taken = full_refresh(body("true"), NOW, act=True)
    assert (taken.token, taken.requested) == ("2026-12-04T02:30:05Z", True)
    assert taken.check is not None
    assert (taken.check.status, taken.check.reason) == ("True", "Requested")


def test_a_reconcile_that_may_not_act_keeps_the_last_request_and_leaves_the_annotation() -> None:
    kept = full_refresh(body("true", last="2026-12-01T00:00:00Z"), NOW, act=False)
    assert (kept.token, kept.requested) == ("2026-12-01T00:00:00Z", False)


def test_without_the_annotation_the_last_request_stays_the_token_of_every_render() -> None:
    kept = full_refresh(body(last="2026-12-01T00:00:00Z"), NOW, act=True)
    assert (kept.token, kept.requested) == ("2026-12-01T00:00:00Z", False)
    assert full_refresh(body(), NOW, act=True).token is None
    assert full_refresh(body(), NOW, act=True).check is None


@pytest.mark.parametrize("value", ["yes", "True", "1", "", "'; drop table gold.ohlc_daily; --", "x" * 5000])
def test_any_other_value_is_refused_naming_the_annotation_and_the_value_it_takes(value: str) -> None:
    refused = full_refresh(body(value, last="2026-12-01T00:00:00Z"), NOW, act=True)
    assert (refused.token, refused.requested) == ("2026-12-01T00:00:00Z", False)
    assert refused.check is not None
    assert (refused.check.status, refused.check.reason) == ("False", "InvalidAnnotation")
    assert ANNOTATION in refused.check.message
    assert 'set it to "true"' in refused.check.message
    assert len(refused.check.message) < 400


def test_the_token_reaches_the_transform_only_and_no_token_renders_no_variable() -> None:
    assert TOKEN_VARIABLE not in transform_env()
    assert transform_env(full_refresh="2026-12-04T02:30:05Z")[TOKEN_VARIABLE] == "2026-12-04T02:30:05Z"
    pipeline = validate_stockpipeline(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"watchlist": ["AAPL"]},
        }
    )
    ctx = BuildContext(names=names_for(pipeline), full_refresh="2026-12-04T02:30:05Z")
    carrying = {m["metadata"]["name"] for m in render_children(pipeline, ctx) if TOKEN_VARIABLE in str(m)}
    assert carrying == {"p-transform"}


def test_the_spec_dbt_vars_reach_the_transform_as_json_and_are_read_back_typed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert VARS_VARIABLE not in transform_env()
    env = transform_env(
        spec={"transform": {"vars": {"movingAverageDays": [3, 10], "indexBaseDate": "2026-01-02"}}}
    )
    value = env[VARS_VARIABLE]
    assert value is not None
    monkeypatch.setenv(VARS_VARIABLE, value)
    settings = TransformSettings()
    assert settings.dbt_vars.dbt_vars() == {"moving_average_days": [3, 10], "index_base_date": "2026-01-02"}


def test_the_status_records_the_request_and_its_condition_without_touching_ready() -> None:
    ready = {name: Check.ok("Fine") for name in ("Topics", "Bucket", "Ingest", "Archive", "Transform")}
    taken = full_refresh(body("true"), NOW, act=True)
    assert taken.check is not None
    status = summarize(
        Observed(ready, NOW, notices={"FullRefresh": taken.check}, last_full_refresh=taken.token), 2
    )
    assert status["lastFullRefresh"] == "2026-12-04T02:30:05Z"
    assert status["phase"] == "Ready"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["FullRefresh"]["reason"] == "Requested"

    refused = full_refresh(body("yes"), NOW, act=True)
    assert refused.check is not None
    status = summarize(Observed(ready, NOW, notices={"FullRefresh": refused.check}), 2)
    assert status["phase"] == "Ready"
    assert {c["type"]: c for c in status["conditions"]}["FullRefresh"]["status"] == "False"
    assert "lastFullRefresh" not in status
