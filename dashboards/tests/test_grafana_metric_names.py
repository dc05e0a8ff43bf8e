"""Every metric name a Grafana panel or an alert rule uses is one the code's metrics expose."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from marketpulse.contract.workloads import PipelineNames
from marketpulse.operator.builders import BuildContext
from marketpulse.operator.builders.monitoring import build_pipeline_prometheusrule

ROOT = Path(__file__).parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
if str(GRAFANA) not in sys.path:  # the generators are scripts beside the chart, not part of the package
    sys.path.insert(0, str(GRAFANA))

import marketpulse_dashboards as boards  # noqa: E402
import marketpulse_metric_names as names  # noqa: E402

SOURCES = [ROOT / "src"]
# Series that other exporters provide: name -> who. Anything else must be defined in our code.
EXTERNAL = {
    "kube_job_failed": "kube-state-metrics (the Failed condition of the transform CronJob's Jobs)",
    "kube_job_status_start_time": "kube-state-metrics (when each of those Jobs started)",
}


@pytest.fixture(scope="module")
def definitions() -> list[names.Definition]:
    return names.definitions(root / "marketpulse" for root in SOURCES)


@pytest.fixture(scope="module")
def exposed(definitions: list[names.Definition]) -> dict[str, names.Definition]:
    return names.exposed(definitions)


def test_reading_the_source_finds_every_workload_and_operator_metric(
    definitions: list[names.Definition],
) -> None:
    found = {d.name for d in definitions}
    for prefix in ("ingest", "archive", "transform", "alerts", "operator"):
        assert any(n.startswith(f"marketpulse_{prefix}_") for n in found), prefix
    assert len(found) == len(definitions), "a metric name is defined twice"


def test_reading_the_source_agrees_with_the_registry_after_importing_the_modules(
    definitions: list[names.Definition],
) -> None:
    for module in sorted({d.where.split(":")[0] for d in definitions}):
        path = Path(module)
        root = next(r for r in SOURCES if path.is_relative_to(r))
        importlib.import_module(".".join(path.relative_to(root).with_suffix("").parts))
    kinds = {"counter": "Counter", "gauge": "Gauge", "histogram": "Histogram", "summary": "Summary"}
    registered = {
        (family.name, kinds.get(family.type, family.type))
        for family in REGISTRY.collect()
        if family.name.startswith("marketpulse_")
    }
    assert registered == {(d.family, d.kind) for d in definitions}


def test_every_metric_in_every_dashboard_is_defined(exposed: dict[str, names.Definition]) -> None:
    expressions: dict[str, str] = {}
    for name, text in boards.render_all().items():
        expressions |= names.dashboard_expressions(json.loads(text), name)
    assert len(expressions) > 20
    problems = names.check(expressions, exposed, external={})
    assert not problems, "\n".join(map(str, problems))


def test_every_metric_in_the_operators_prometheusrule_is_defined(
    exposed: dict[str, names.Definition],
) -> None:
    rule = build_pipeline_prometheusrule(BuildContext(names=PipelineNames(namespace="trading", name="eu")))
    expressions = names.rule_expressions(rule, "PrometheusRule")
    assert len(expressions) >= 3
    problems = names.check(expressions, exposed, EXTERNAL)
    assert not problems, "\n".join(map(str, problems))


# --- the checker itself ----------------------------------------------------------------------------

SOURCE = """
from prometheus_client import Counter, Gauge, Histogram as H
import prometheus_client as pc
import enum

TICKS = Counter("shop_ticks_total", "Ticks.")
ORDERS = Counter("shop_orders", "Orders, named without _total.", ["side"])
DEPTH = Gauge("shop_book_depth", "Depth.")
LATENCY = H("shop_latency_seconds", "Latency.", buckets=(1, 2))
ERRORS = pc.Counter(name="shop_errors_total", documentation="Errors.")
Side = enum.Enum("Side", "BUY SELL")
"""


@pytest.fixture
def shop() -> dict[str, names.Definition]:
    return names.exposed(names.definitions_in(SOURCE, "shop.py"))


def test_definitions_expose_the_sample_names_prometheus_client_writes(
    shop: dict[str, names.Definition],
) -> None:
    assert set(shop) == {
        "shop_ticks_total", "shop_ticks_created",
        "shop_orders_total", "shop_orders_created",
        "shop_book_depth",
        "shop_latency_seconds_bucket", "shop_latency_seconds_sum", "shop_latency_seconds_count",
        "shop_latency_seconds_created",
        "shop_errors_total", "shop_errors_created",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (side) (rate(shop_orders_total{side="buy", job=~"a"}[$__interval]))', {"shop_orders_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(shop_seconds_bucket[5m])))", {"shop_seconds_bucket"}),
        ("a_total / on(pod) group_left(node) b offset 5m > bool 1e3", {"a_total", "b"}),
        ('label_replace(up{x="foo_bar"}, "dst", "$1", "src", "(.*)")', {"up"}),
        ("max_over_time(rate(c_total[5m])[1h:1m]) unless d", {"c_total", "d"}),
        ('label_values(shop_book_depth{namespace="$namespace"}, service)', {"shop_book_depth"}),
        ('{__name__="shop_book_depth", pod="p"} and time() - vector(1)', {"shop_book_depth"}),
    ],
)  # fmt: skip
def test_metric_names_ignores_functions_labels_strings_durations_and_variables(
    expr: str, expected: set[str]
) -> None:
    assert names.metric_names(expr) == expected


def test_the_checker_fails_on_an_unknown_metric(shop: dict[str, names.Definition]) -> None:
    problems = names.check({"panel X": "sum(rate(shop_tickz_total[5m]))"}, shop, external={})
    assert [(p.where, p.name) for p in problems] == [("panel X", "shop_tickz_total")]
    assert "no metric definition" in problems[0].why


@pytest.mark.parametrize(
    ("expr", "bare", "hint"),
    [
        ("rate(shop_orders[5m])", "shop_orders", "shop_orders_total"),
        ("histogram_quantile(0.9, rate(shop_latency_seconds[5m]))", "shop_latency_seconds", "_bucket"),
    ],
)
def test_the_checker_fails_on_a_counter_without_total_or_a_histogram_without_its_suffix(
    shop: dict[str, names.Definition], expr: str, bare: str, hint: str
) -> None:
    (problem,) = names.check({"rule Y": expr}, shop, external={})
    assert problem.name == bare
    assert hint in problem.why


def test_the_checker_accepts_defined_and_external_names_only(shop: dict[str, names.Definition]) -> None:
    expr = "shop_book_depth > 0 or kube_job_status_failed > 0"
    assert names.check({"r": expr}, shop, external={"kube_job_status_failed": "kube-state-metrics"}) == []
    assert [p.name for p in names.check({"r": expr}, shop, external={})] == ["kube_job_status_failed"]


def test_a_computed_metric_name_or_a_name_matcher_regex_is_refused() -> None:
    with pytest.raises(ValueError, match="not a string literal"):
        names.definitions_in("from prometheus_client import Gauge\nG = Gauge(NAME, 'doc')\n", "m.py")
    with pytest.raises(ValueError, match="__name__=~"):
        names.metric_names('{__name__=~"shop_.*"}')
