"""The environment the renderer gives each workload is the environment that workload reads.

A variable rendered under a name no settings class reads is a silent default in the pod (the
settings ignore unknown variables), so every rendered name must be one its entrypoint's settings
read, for every sample pipeline and for the options the samples leave out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from marketpulse.alerts.main import AlertsSettings
from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.settings.archive import ArchiveSettings
from marketpulse.contract.settings.common import S3Settings
from marketpulse.contract.settings.dashboard import DashboardSettings
from marketpulse.contract.settings.ingest import IngestSettings
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.contract.workloads import Platform, render_workloads
from marketpulse.operator.builders import names_for

SAMPLES = sorted((Path(__file__).parents[1] / "operator" / "config" / "samples").glob("stockpipeline-*.yaml"))

# What each entrypoint loads (`marketpulse.cli.workloads`, `cli.dashboard`, `ingest.main` for an
# S3 replay file): the bucket's settings come from S3Settings beside the workload's own.
READERS: dict[str, tuple[type[BaseSettings], ...]] = {
    "ingest": (IngestSettings, S3Settings),
    "archive": (ArchiveSettings, S3Settings),
    "transform": (TransformSettings, S3Settings),
    "alerts": (AlertsSettings,),
    "dashboard": (DashboardSettings,),
}

# Options no sample uses, each applied to the synthetic-duckdb sample's spec.
VARIANTS: dict[str, dict[str, Any]] = {
    "scram-kafka-user": {"kafka": {"authentication": "scram-sha-512"}},
    "snowflake-password-endpoint": {
        "warehouse": {
            "type": "snowflake",
            "snowflake": {
                "account": "org-acct",
                "user": "MP",
                "database": "DB",
                "endpoint": "http://fakesnow.local:8080",
                "password": {"secretKeyRef": {"name": "sf", "key": "password"}},
            },
        }
    },
}


def read_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable `settings` reads, upper-cased (pydantic-settings ignores case)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field}".upper())
    return names


def load(path: Path, **spec: Any) -> StockPipeline:
    document = yaml.safe_load(path.read_text())
    document["spec"].update(spec)
    return validate_stockpipeline(document)


def pipelines() -> list[Any]:
    base = next(p for p in SAMPLES if p.name == "stockpipeline-synthetic-duckdb.yaml")
    return [pytest.param(load(p), id=p.stem.removeprefix("stockpipeline-")) for p in SAMPLES] + [
        pytest.param(load(base, **spec), id=name) for name, spec in VARIANTS.items()
    ]


@pytest.mark.parametrize("pipeline", pipelines())
def test_every_variable_rendered_for_a_workload_is_one_its_settings_read(pipeline: StockPipeline) -> None:
    workloads = render_workloads(pipeline.spec, names_for(pipeline), Platform())
    unread = {
        w.component: sorted(
            {e.name for e in w.env} - set().union(*(read_names(s) for s in READERS[w.component]))
        )
        for w in workloads
    }
    assert {component: names for component, names in unread.items() if names} == {}


def test_each_variant_renders_variables_no_sample_does() -> None:
    def rendered(pipeline: StockPipeline) -> set[str]:
        workloads = render_workloads(pipeline.spec, names_for(pipeline), Platform())
        return {e.name for w in workloads for e in w.env}

    in_samples = set().union(*(rendered(load(p)) for p in SAMPLES))
    base = next(p for p in SAMPLES if p.name == "stockpipeline-synthetic-duckdb.yaml")
    for name, spec in VARIANTS.items():
        assert rendered(load(base, **spec)) - in_samples, f"{name} covers nothing the samples do not"
