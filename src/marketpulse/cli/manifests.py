"""`marketpulse validate -f FILE` and `marketpulse render -f FILE`: a StockPipeline checked, and the
objects the operator would make of it, without a cluster (the `helm template` / `kubectl apply
--dry-run` habit).

Both apply the API's own validation (`validate_stockpipeline`: the CRD's schema and its CEL rules
with their messages, as the operator applies them) and report every problem as
`FILE:LINE: field.path: message` on stderr. Exit codes: 0 valid, 2 any problem (a file that cannot
be read, is not YAML or holds no StockPipeline included).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from marketpulse.contract.api import KIND, StockPipeline
from marketpulse.contract.api.documents import Checked, check_files

if TYPE_CHECKING:
    # The operator's modules load only when `render` runs: a pod's entrypoint does not pay for them.
    from marketpulse.operator.builders import Capabilities

INVALID = 2

Files = Annotated[
    list[str],
    typer.Option(
        "--file",
        "-f",
        help="A YAML file of one or more documents (repeatable); - reads standard input.",
        metavar="FILE",
        show_default=False,
    ),
]


def _report(checked: Checked) -> None:
    for line in (*checked.notes, *checked.problems):
        typer.echo(line, err=True)
    if checked.problems:
        raise typer.Exit(code=INVALID)


def validate(files: Files) -> None:
    """Check StockPipeline files with the API's rules and messages (exit 2 on any problem)."""
    checked = check_files(files, require_pipeline=True)
    _report(checked)
    for name, pipeline in checked.pipelines:
        typer.echo(f"{name}: {KIND} {pipeline.metadata.name} is valid")


class Output(StrEnum):
    yaml = "yaml"
    json = "json"


# What a cluster with Strimzi and the Prometheus Operator serves: the chart's intended home.
DEFAULT_API_VERSIONS = ("kafka.strimzi.io/v1", "monitoring.coreos.com/v1")


def capabilities_for(api_versions: Sequence[str]) -> Capabilities:
    """The optional kinds a cluster serving `api_versions` (`group/version`, as `helm template
    --api-versions` takes them) would report to the operator's discovery."""
    from marketpulse.operator.builders import Capabilities
    from marketpulse.operator.kube import MONITORING_GROUP, STRIMZI_GROUP, STRIMZI_VERSIONS

    served = {v.strip() for v in api_versions}
    strimzi = next(
        (f"{STRIMZI_GROUP}/{v}" for v in STRIMZI_VERSIONS if f"{STRIMZI_GROUP}/{v}" in served), None
    )
    monitoring = f"{MONITORING_GROUP}/v1" in served
    return Capabilities(strimzi, strimzi, monitoring, monitoring)


def render_pipeline(pipeline: StockPipeline, api_versions: Sequence[str]) -> list[dict[str, Any]]:
    """The children the operator's reconcile renders, with the operator's default settings (the
    MARKETPULSE_* of its Deployment are not read here: this is what a default install makes)."""
    from marketpulse.contract.workloads import names_for
    from marketpulse.operator.builders import render_children
    from marketpulse.operator.settings import OperatorSettings

    class Defaults(OperatorSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    context = Defaults().build_context(names_for(pipeline), capabilities_for(api_versions))
    return render_children(pipeline, context)


def _in_namespace(pipeline: StockPipeline, namespace: str | None, name: str) -> StockPipeline | str:
    """The pipeline in its namespace: its own, else `--namespace`, else default (kubectl's rule: the
    two must agree when both are given)."""
    own = pipeline.metadata.namespace
    if own and namespace and own != namespace:
        return (
            f"{name}: metadata.namespace: {own} does not match --namespace {namespace}; "
            "drop one or make them agree"
        )
    chosen = own or namespace or "default"
    return pipeline.model_copy(
        update={"metadata": pipeline.metadata.model_copy(update={"namespace": chosen})}
    )


def render(
    files: Files,
    output: Annotated[
        Output, typer.Option("--output", "-o", help="yaml: a multi-document stream. json: a v1 List.")
    ] = (Output.yaml),
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Namespace of a pipeline whose metadata names none.",
            show_default="default",
        ),
    ] = None,
    api_versions: Annotated[
        list[str] | None,
        typer.Option(
            "--api-versions",
            "-a",
            metavar="GROUP/VERSION",
            help="The optional APIs the cluster serves (repeatable, group/version), as discovery finds them: "
            "KafkaTopics and the KafkaUser with kafka.strimzi.io/v1 or v1beta2, the ServiceMonitor and "
            "PrometheusRule with monitoring.coreos.com/v1. Pass `-a v1` for a cluster with neither.",
            show_default=", ".join(DEFAULT_API_VERSIONS),
        ),
    ] = None,
) -> None:
    """Print the objects the operator would create for StockPipeline files, without a cluster.

    Invalid files are reported as `validate` reports them, with exit code 2.

    Left out: the ownerReferences and applied-hash annotation the operator adds when it applies them.

    Left out: the direct topic backend's topics, SCRAM user and Secret (made through Kafka's admin API).
    """
    checked = check_files(files, require_pipeline=True)
    placed: list[StockPipeline] = []
    for name, pipeline in checked.pipelines:
        result = _in_namespace(pipeline, namespace, name)
        if isinstance(result, str):
            checked.problems.append(result)
        else:
            placed.append(result)
    _report(checked)
    served = api_versions if api_versions else DEFAULT_API_VERSIONS
    manifests = [m for pipeline in placed for m in render_pipeline(pipeline, served)]
    if output is Output.json:
        typer.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}, indent=2))
    else:
        typer.echo(yaml.safe_dump_all(manifests, sort_keys=False, explicit_start=True), nl=False)
