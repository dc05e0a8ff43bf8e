"""Every alert rule we ship passes `promtool check rules` and its unit tests in promtool/*.test.yaml:
the per-pipeline PrometheusRule the operator renders and the operator's own rules in the chart."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.api.v1alpha1 import MonitoringSpec
from marketpulse.contract.workloads import names_for
from marketpulse.operator.builders import BuildContext, Capabilities, render_children
from marketpulse.operator.builders.context import RUNBOOK_BASE_URL
from marketpulse.operator.settings import OperatorSettings
from marketpulse.runtime.http import serve_metrics_and_health
from marketpulse_dev.localenv.versions import PROMETHEUS_VERSION

pytestmark = pytest.mark.promtool

HERE = Path(__file__).parent
UNIT_TESTS = HERE / "promtool"
SAMPLES = HERE.parent / "config" / "samples"
CHART = HERE.parents[1] / "charts" / "marketpulse"
RUNBOOKS = HERE.parents[1] / "docs" / "runbooks"
ALL = Capabilities("kafka.strimzi.io/v1", "kafka.strimzi.io/v1", True, True)
# What the unit tests' series are labelled with (see the comments at the top of each test file).
PIPELINE_NAMESPACE, RELEASE, RELEASE_NAMESPACE = "trading", "mp", "markets"
UNIT_TESTED_SAMPLE = "stockpipeline-synthetic-duckdb.yaml"  # the pipeline named `demo`


class _NoAliases(yaml.SafeDumper):
    """Rules files are read by people too: write shared label maps out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def sample(name: str, namespace: str = PIPELINE_NAMESPACE) -> StockPipeline:
    document = yaml.safe_load((SAMPLES / name).read_text())
    document["metadata"]["namespace"] = namespace
    return validate_stockpipeline(document)


def pipeline_rules(p: StockPipeline, runbook_base_url: str = RUNBOOK_BASE_URL) -> dict[str, Any]:
    ctx = BuildContext(names=names_for(p), image="img:1", capabilities=ALL, runbook_base_url=runbook_base_url)
    (rule,) = [m for m in render_children(p, ctx) if m["kind"] == "PrometheusRule"]
    spec: dict[str, Any] = rule["spec"]
    return spec


def chart_rules(helm: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            RELEASE_NAMESPACE,
            "--values",
            str(CHART / "ci" / "monitoring-values.yaml"),
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load(result.stdout)
    assert manifest["kind"] == "PrometheusRule"
    spec: dict[str, Any] = manifest["spec"]
    return spec


def write_rules(path: Path, spec: dict[str, Any]) -> Path:
    # A PrometheusRule's spec is exactly a Prometheus rules file: `groups:`.
    path.write_text(yaml.dump(spec, Dumper=_NoAliases, sort_keys=False, width=200))
    return path


def promtool(binary: Path, *args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def alert_names(spec: dict[str, Any]) -> set[str]:
    return {r["alert"] for g in spec["groups"] for r in g["rules"] if "alert" in r}


def alert_rules(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in spec["groups"] for r in g["rules"] if "alert" in r]


def with_objective(objective: str) -> StockPipeline:
    p = sample(UNIT_TESTED_SAMPLE)
    return p.model_copy(
        update={
            "spec": p.spec.model_copy(
                update={"monitoring": MonitoringSpec(gold_freshness_objective=objective)}
            )
        }
    )


def alerts_under_test(test_file: Path) -> set[str]:
    document = yaml.safe_load(test_file.read_text())
    return {case["alertname"] for test in document["tests"] for case in test.get("alert_rule_test", [])}


@pytest.fixture
def rules_dir(tmp_path: Path, helm_binary: Path) -> Path:
    """The rules files the unit tests name, rendered fresh, beside copies of the unit tests."""
    write_rules(tmp_path / "pipeline-rules.yaml", pipeline_rules(sample(UNIT_TESTED_SAMPLE)))
    write_rules(tmp_path / "operator-rules.yaml", chart_rules(helm_binary))
    for test_file in UNIT_TESTS.glob("*.test.yaml"):
        shutil.copy(test_file, tmp_path)
    return tmp_path


def test_promtool_reports_the_pinned_prometheus_version(promtool_binary: Path) -> None:
    result = promtool(promtool_binary, "--version")
    assert result.returncode == 0, result.stderr
    assert f"promtool, version {PROMETHEUS_VERSION.lstrip('v')}" in result.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("stockpipeline-*.yaml")))
def test_the_prometheusrule_of_every_sample_pipeline_passes_promtool_check_rules(
    name: str, tmp_path: Path, promtool_binary: Path
) -> None:
    spec = pipeline_rules(sample(name))
    rules = write_rules(tmp_path / "rules.yaml", spec)
    result = promtool(promtool_binary, "check", "rules", "--lint=all", "--lint-fatal", rules)
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = sum(len(group["rules"]) for group in spec["groups"])
    assert rendered >= 5, "feed, lag, dead letters (two) and transform alerts at least"
    assert f"SUCCESS: {rendered} rules found" in result.stdout


@pytest.mark.parametrize("objective", ["1m", "90s", "1h30m", "24h"])
def test_the_prometheusrule_passes_promtool_check_rules_for_any_gold_freshness_objective(
    objective: str, tmp_path: Path, promtool_binary: Path
) -> None:
    rules = write_rules(tmp_path / "rules.yaml", pipeline_rules(with_objective(objective)))
    result = promtool(promtool_binary, "check", "rules", "--lint=all", "--lint-fatal", rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gold_freshness_objective_of_the_spec_is_what_the_gold_alerts_compare_with() -> None:
    rules = {r["alert"]: r for r in alert_rules(pipeline_rules(with_objective("1h30m")))}
    assert (
        "> 5400 and on() sum(increase(marketpulse_ingest_ticks_acked_total"
        in rules["MarketPulseGoldStale"]["expr"]
    )
    assert "[1h30m]" in rules["MarketPulseGoldStale"]["expr"]
    assert rules["MarketPulseSymbolGoldStale"]["for"] == "1h30m"
    # Silent: three objectives without a tick reaching gold.
    assert "offset 4h30m" in rules["MarketPulsePipelineSilent"]["expr"]
    assert "objective of 1h30m" in rules["MarketPulseGoldStale"]["annotations"]["summary"]


@pytest.mark.helm
def test_every_alert_has_a_runbook_url_whose_runbook_is_in_docs_runbooks(rules_dir: Path) -> None:
    shipped = alert_rules(yaml.safe_load((rules_dir / "pipeline-rules.yaml").read_text()))
    shipped += alert_rules(yaml.safe_load((rules_dir / "operator-rules.yaml").read_text()))
    assert len(shipped) >= 14
    for rule in shipped:
        url = rule["annotations"].get("runbook_url")
        assert url == f"{RUNBOOK_BASE_URL}/{rule['alert']}.md", rule["alert"]
        runbook = RUNBOOKS / f"{rule['alert']}.md"
        assert runbook.is_file(), f"{rule['alert']}: no runbook at docs/runbooks/{runbook.name}"
        text = runbook.read_text()
        assert text.startswith(f"# {rule['alert']}\n"), runbook.name
        for section in ("## What it means", "## How to confirm", "## What to do"):
            assert section in text, f"{runbook.name} has no {section!r}"
    index = (RUNBOOKS / "README.md").read_text()
    missing = sorted(r["alert"] for r in shipped if f"]({r['alert']}.md)" not in index)
    assert not missing, f"docs/runbooks/README.md does not list {missing}"


def test_the_runbook_base_url_the_platform_sets_is_where_every_runbook_url_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MARKETPULSE_RUNBOOK_BASE_URL", "https://wiki.example.com/sre/marketpulse")
    base = OperatorSettings().runbook_base_url
    rules = alert_rules(pipeline_rules(sample(UNIT_TESTED_SAMPLE), runbook_base_url=base))
    assert {r["annotations"]["runbook_url"] for r in rules} == {
        f"https://wiki.example.com/sre/marketpulse/{r['alert']}.md" for r in rules
    }


@pytest.mark.parametrize(
    "value", ["wiki.example.com/runbooks", "https://wiki.example.com/runbooks/", "https://a b"]
)
def test_a_runbook_base_url_that_is_no_url_or_ends_in_a_slash_is_refused_naming_the_setting(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETPULSE_RUNBOOK_BASE_URL", value)
    with pytest.raises(ValueError, match="runbook_base_url"):
        OperatorSettings()


@pytest.mark.helm
def test_the_charts_operator_prometheusrule_passes_promtool_check_rules(
    rules_dir: Path, promtool_binary: Path
) -> None:
    result = promtool(
        promtool_binary, "check", "rules", "--lint=all", "--lint-fatal", rules_dir / "operator-rules.yaml"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout


@pytest.mark.helm
@pytest.mark.parametrize("test_file", ["pipeline-alerts.test.yaml", "operator-alerts.test.yaml"])
def test_every_alert_fires_and_stays_quiet_as_its_promtool_unit_tests_say(
    test_file: str, rules_dir: Path, promtool_binary: Path
) -> None:
    result = promtool(promtool_binary, "test", "rules", rules_dir / test_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.helm
def test_every_shipped_alert_has_unit_tests(rules_dir: Path) -> None:
    shipped = alert_names(yaml.safe_load((rules_dir / "pipeline-rules.yaml").read_text()))
    shipped |= alert_names(yaml.safe_load((rules_dir / "operator-rules.yaml").read_text()))
    tested = set().union(*(alerts_under_test(f) for f in UNIT_TESTS.glob("*.test.yaml")))
    assert shipped == tested


def test_the_unit_tests_catch_a_transform_alert_blind_to_the_first_failure(
    tmp_path: Path, promtool_binary: Path
) -> None:
    # increase() alone misses the failure that creates the series: the unit tests must say so.
    spec = pipeline_rules(sample(UNIT_TESTED_SAMPLE))
    (rule,) = [r for r in spec["groups"][0]["rules"] if r["alert"] == "MarketPulseTransformFailed"]
    rule["expr"] = (
        'increase(marketpulse_transform_runs_total{namespace="trading",app_kubernetes_io_instance="demo",'
        'result="failure"}[1h]) > 0'
    )
    write_rules(tmp_path / "pipeline-rules.yaml", spec)
    shutil.copy(UNIT_TESTS / "pipeline-alerts.test.yaml", tmp_path)
    result = promtool(promtool_binary, "test", "rules", tmp_path / "pipeline-alerts.test.yaml")
    assert result.returncode != 0
    assert "MarketPulseTransformFailed" in result.stdout + result.stderr


def test_the_metrics_the_workloads_serve_pass_promtool_check_metrics(promtool_binary: Path) -> None:
    # Importing the entrypoints registers every workload's and the operator's metrics, as each
    # process does for its own; the endpoint is the one every workload serves.
    import marketpulse.alerts.main
    import marketpulse.archive.main
    import marketpulse.ingest.main
    import marketpulse.operator.metrics
    import marketpulse.transform.main  # noqa: F401

    server = serve_metrics_and_health(0, healthy=lambda: True, host="127.0.0.1")
    try:
        scrape = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert scrape.status_code == 200
    assert "marketpulse_archive_records_total" in scrape.text
    result = promtool(promtool_binary, "check", "metrics", stdin=scrape.text)
    assert result.returncode == 0, result.stdout + result.stderr
