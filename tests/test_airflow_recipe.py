"""docs/recipes/airflow.md stays true: its DAG (read with ast, Airflow is not installed) runs the pod the
operator renders for a DuckDB pipeline's transform, with settings the transform really reads."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from marketpulse.cli import app
from marketpulse.contract.settings.common import S3Settings
from marketpulse.contract.settings.environment import variables_read
from marketpulse.contract.settings.transform import TransformSettings

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "docs" / "recipes" / "airflow.md"
SAMPLE = ROOT / "operator" / "config" / "samples" / "stockpipeline-synthetic-duckdb.yaml"
DOCKERFILE = ROOT / "images" / "marketpulse" / "Dockerfile"
TRANSFORM_VARIABLES = variables_read(TransformSettings) | variables_read(S3Settings)
# What the operator sets that a one-off run does without: the transform reads no Kafka topic, the
# interval only spaces the cycles of continuous mode, and no Prometheus scrapes a one-cycle pod.
NOT_NEEDED_ONCE = re.compile(
    r"^(KAFKA_.*|MARKETPULSE_(TICKS|DLQ)_TOPIC|MARKETPULSE_TRANSFORM_INTERVAL_SECONDS|MARKETPULSE_METRICS_(PORT|HOST))$"
)


def _recipe_code() -> str:
    fences = [
        token.content
        for token in MarkdownIt("commonmark").parse(RECIPE.read_text())
        if token.type == "fence" and token.info.strip() == "python"
    ]
    assert len(fences) == 1, f"{RECIPE.name}: expected one ```python block, found {len(fences)}"
    return fences[0]


def _operator_call() -> ast.Call:
    calls = [
        node
        for node in ast.walk(ast.parse(_recipe_code()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "KubernetesPodOperator"
    ]
    assert len(calls) == 1, "the recipe's DAG must create exactly one KubernetesPodOperator"
    return calls[0]


def _keyword(call: ast.Call, name: str) -> ast.expr:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    raise AssertionError(f"the recipe's KubernetesPodOperator sets no {name}=")


def _calls(node: ast.AST, function: str) -> list[ast.Call]:
    return [
        call
        for call in ast.walk(node)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute | ast.Name)
        and (call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id) == function
    ]


def _constant_keywords(call: ast.Call) -> dict[str, Any]:
    return {k.arg: k.value.value for k in call.keywords if k.arg and isinstance(k.value, ast.Constant)}


@pytest.fixture(scope="module")
def rendered_transform() -> dict[str, Any]:
    """The transform CronJob's pod spec, as `marketpulse render` prints it for the DuckDB sample."""
    result = CliRunner().invoke(app, ["render", "-f", str(SAMPLE), "-o", "json"])
    assert result.exit_code == 0, result.output
    (cronjob,) = [item for item in json.loads(result.stdout)["items"] if item["kind"] == "CronJob"]
    pod: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return pod


def test_the_recipe_runs_the_image_entrypoint_with_the_transform_command(
    rendered_transform: dict[str, Any],
) -> None:
    call = _operator_call()
    cmds = ast.literal_eval(_keyword(call, "cmds"))
    arguments = ast.literal_eval(_keyword(call, "arguments"))
    (container,) = rendered_transform["containers"]
    assert [*cmds, *arguments] == container["command"]
    entrypoints = re.findall(r"^ENTRYPOINT (\[.*\])$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert entrypoints
    assert all(json.loads(entrypoint) == cmds for entrypoint in entrypoints)
    assert CliRunner().invoke(app, [*arguments, "--help"]).exit_code == 0
    assert ast.literal_eval(_keyword(call, "image")).rsplit(":", 1)[0] == container["image"].rsplit(":", 1)[0]


def test_the_recipe_sets_only_real_settings_and_every_one_the_transform_needs(
    rendered_transform: dict[str, Any],
) -> None:
    env = _calls(_keyword(_operator_call(), "env_vars"), "V1EnvVar")
    names = [_constant_keywords(variable)["name"] for variable in env]
    assert len(names) == len(set(names)), f"set twice: {sorted(n for n in names if names.count(n) > 1)}"
    unknown = sorted(set(names) - TRANSFORM_VARIABLES)
    assert not unknown, f"the recipe sets variables the transform does not read: {unknown}"
    (container,) = rendered_transform["containers"]
    rendered = {variable["name"]: variable for variable in container["env"]}
    needed = {name for name in rendered if not NOT_NEEDED_ONCE.match(name)}
    assert needed <= set(names), f"the recipe leaves out {sorted(needed - set(names))}"

    values = {
        name: _constant_keywords(variable).get("value") for name, variable in zip(names, env, strict=True)
    }
    # One cycle, then exit: never the loop.
    assert values["MARKETPULSE_TRANSFORM_MODE"] == rendered["MARKETPULSE_TRANSFORM_MODE"]["value"] == "cron"
    assert values["MARKETPULSE_WAREHOUSE"] == "duckdb"
    assert values["MARKETPULSE_DUCKDB_PATH"] == rendered["MARKETPULSE_DUCKDB_PATH"]["value"]
    # Credentials come from the Secret the operator's pods read, never as plain values.
    for name in ("S3_ACCESS_KEY", "S3_SECRET_KEY"):
        (selector,) = _calls(env[names.index(name)], "secret")
        assert [ast.literal_eval(arg) for arg in selector.args] == list(
            rendered[name]["valueFrom"]["secretKeyRef"].values()
        )


def test_every_variable_the_recipe_names_in_its_prose_is_a_transform_setting() -> None:
    named = set(re.findall(r"\b(?:MARKETPULSE|SNOWFLAKE|S3)_[A-Z0-9_]+\b", RECIPE.read_text()))
    assert len(named) > 10, "the recipe names almost no setting"
    assert not sorted(named - TRANSFORM_VARIABLES)
    # dbt's folders, which the recipe says the image sets under /tmp, are the image's.
    for folder in re.findall(r"`(DBT_[A-Z_]+=/tmp/[^`]+)`", RECIPE.read_text()):
        assert folder in DOCKERFILE.read_text()


def test_the_recipe_runs_under_the_security_context_and_mounts_the_operator_gives_the_transform(
    rendered_transform: dict[str, Any],
) -> None:
    call = _operator_call()
    (container,) = rendered_transform["containers"]
    assert ast.literal_eval(_keyword(call, "security_context")) == rendered_transform["securityContext"]
    assert ast.literal_eval(_keyword(call, "container_security_context")) == container["securityContext"]
    mounts = {
        kw["name"]: kw["mount_path"]
        for kw in map(_constant_keywords, _calls(_keyword(call, "volume_mounts"), "V1VolumeMount"))
    }
    assert mounts == {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = _keyword(call, "volumes")
    assert _calls(volumes, "V1EmptyDirVolumeSource"), "/tmp must be an emptyDir"
    assert _calls(volumes, "V1PersistentVolumeClaimVolumeSource"), (
        "DuckDB's file lives on the warehouse claim"
    )
    assert ast.literal_eval(_keyword(call, "automount_service_account_token")) is False
