"""values.schema.json refuses wrong values naming the key; values.yaml documents every key; helm lint."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.helm]

Template = Callable[..., subprocess.CompletedProcess[str]]
CI = Path(__file__).parents[1] / "marketpulse" / "ci"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"operator": {"replicas": "two"}}, "at '/operator/replicas': got string, want integer"),
        (
            {"operator": {"watchAnyNamespace": "yes"}},
            "at '/operator/watchAnyNamespace': got string, want boolean",
        ),
        (
            {"operator": {"watchNamespaces": "team-a"}},
            "at '/operator/watchNamespaces': got string, want array",
        ),
        ({"operator": {"metricsPort": 70000}}, "at '/operator/metricsPort'"),
        ({"operater": {"replicas": 1}}, "additional properties 'operater' not allowed"),
        ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"s3": {"endpoint": "minio:9000"}}, "at '/s3/endpoint': 'minio:9000' does not match pattern"),
        ({"dashboards": {"labelValue": 1}}, "at '/dashboards/labelValue': got number, want string"),
        ({"kafka": {"apiVersion": "kafka.strimzi.io/v1alpha1"}}, "at '/kafka/apiVersion'"),
        ({"kafka": {"storage": {"type": "nfs"}}}, "at '/kafka/storage/type'"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "at '/metrics/serviceMonitor/interval'"),
        ({"pipelines": [{"name": "demo"}]}, "at '/pipelines/0': missing property 'spec'"),
        ({"pipelines": [{"name": "Demo", "spec": {"watchlist": ["AAPL"]}}]}, "at '/pipelines/0/name'"),
        ({"pipelines": [{"name": "demo", "spec": {"watchlist": []}}]}, "at '/pipelines/0/spec/watchlist'"),
        ({"pipelines": {"demo": {"watchlist": ["AAPL"]}}}, "at '/pipelines': got object, want array"),
    ],
)
def test_the_schema_refuses_a_wrong_value_naming_its_key(
    template: Template, values: dict[str, Any], message: str
) -> None:
    result = template(values)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("scenario", sorted(p.name for p in CI.glob("*-values.yaml")))
def test_every_ci_scenario_satisfies_the_schema(template: Template, scenario: str) -> None:
    result = template(files=[CI / scenario])
    assert result.returncode == 0, result.stderr


def _free_form(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" and "properties" not in schema


def test_every_key_in_the_schema_has_a_description(chart: Path) -> None:
    def walk(schema: dict[str, Any], path: str) -> list[str]:
        missing = [] if "description" in schema or not path else [path]
        for key, child in schema.get("properties", {}).items():
            missing += walk(child, f"{path}.{key}" if path else key)
        if isinstance(schema.get("items"), dict):
            missing += walk(schema["items"], f"{path}[]") if "properties" in schema["items"] else []
        return missing

    assert walk(json.loads((chart / "values.schema.json").read_text()), "") == []


# Kubernetes objects passed through as a whole: documented once, at the block, by Kubernetes' own docs.
KUBERNETES_BLOCKS = ("resources", "livenessProbe", "readinessProbe", "startupProbe", "kafka.resources")


def test_every_setting_in_values_yaml_has_a_comment_above_it(chart: Path) -> None:
    """Leaf keys (and whole blocks passed through as Kubernetes objects) are documented where they are set."""
    schema = json.loads((chart / "values.schema.json").read_text())
    lines = (chart / "values.yaml").read_text().splitlines()
    values = yaml.safe_load("\n".join(lines))
    stack: list[tuple[int, str]] = []
    undocumented = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(stripped)
        key = stripped.split(":", 1)[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = [k for _, k in stack] + [key]
        stack.append((indent, key))
        node: Any = schema
        value: Any = values
        inside_free_form = False
        for i, part in enumerate(path):
            if i < len(path) - 1 and _free_form(node.get("properties", {}).get(part, {})):
                inside_free_form = True
            node = node.get("properties", {}).get(part, {})
            value = value.get(part) if isinstance(value, dict) else None
        if inside_free_form or any(".".join(path).startswith(f"{block}.") for block in KUBERNETES_BLOCKS):
            continue
        leaf = not isinstance(value, dict) or not value or _free_form(node)
        previous = lines[number - 1].strip() if number else ""
        if leaf and not previous.startswith("#"):
            undocumented.append(".".join(path))

    assert undocumented == []


@pytest.mark.parametrize("scenario", ["defaults", *sorted(p.name for p in CI.glob("*-values.yaml"))])
def test_helm_lint_strict_passes_for_the_defaults_and_every_ci_scenario(
    helm: Template, chart: Path, scenario: str
) -> None:
    values = [] if scenario == "defaults" else ["--values", CI / scenario]
    result = helm("lint", chart, "--strict", *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_the_stack_chart_declares_strimzi_and_minio_as_conditional_dependencies_off_by_default(
    chart: Path,
) -> None:
    stack = chart.parent / "marketpulse-stack"
    dependencies = {d["name"]: d for d in yaml.safe_load((stack / "Chart.yaml").read_text())["dependencies"]}
    values = yaml.safe_load((stack / "values.yaml").read_text())

    assert dependencies["marketpulse"]["repository"] == "file://../marketpulse"
    for name in ("strimzi-kafka-operator", "minio"):
        assert dependencies[name]["condition"] == f"{name}.enabled"
        assert values[name]["enabled"] is False
    # Offline, the main chart must not declare any: helm refuses missing ones whatever their condition.
    assert "dependencies" not in yaml.safe_load((chart / "Chart.yaml").read_text())
