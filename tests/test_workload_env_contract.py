"""The environment the renderer gives each workload is the environment that workload reads.

A variable rendered under a name no settings class reads would be a silent default in the pod, so
every rendered name must be one its entrypoint's settings read, for every sample pipeline and for the
options the samples leave out. The other way round, every variable a workload reads is rendered for
some pipeline or is one of the tuning knobs listed here, which pods leave at their defaults; and a
`MARKETPULSE_*` variable nobody reads stops the workload, naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.settings.environment import (
    READERS,
    UnknownVariableError,
    check_environment,
    variable,
    variables_read,
)
from marketpulse.contract.workloads import Platform, names_for, render_workloads

SAMPLES = sorted((Path(__file__).parents[1] / "operator" / "config" / "samples").glob("stockpipeline-*.yaml"))

# Options no sample uses, each applied to the synthetic-duckdb sample's spec.
VARIANTS: dict[str, dict[str, Any]] = {
    "scram-kafka-user": {
        "kafka": {"authentication": "scram-sha-512"},
        "alerts": {"rules": [{"name": "stale", "staleFeed": {"seconds": 60}}]},
    },
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
            {e.name for e in w.env} - set().union(*(variables_read(s) for s in READERS[w.component]))
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


# Read by the workload, never rendered by the operator: tuning knobs and development settings whose
# defaults pods use, and second spellings of a rendered variable. A new settings field lands either
# in the renderer or here.
DEFAULT_ONLY: dict[str, set[str]] = {
    "ingest": {
        "BUCKET",
        "MARKETPULSE_FINNHUB_API_KEY",
        "MARKETPULSE_FINNHUB_MAX_POLL_SECONDS",
        "MARKETPULSE_FINNHUB_REST_URL",
        "MARKETPULSE_FINNHUB_WS_URL",
        "MARKETPULSE_INGEST_DELIVERY_TIMEOUT_SECONDS",
        "MARKETPULSE_INGEST_LEDGER",
        "MARKETPULSE_KAFKA_BOOTSTRAP_SERVERS",
        "MARKETPULSE_LOG_LEVEL",
        "MARKETPULSE_LOG_FORMAT",
        "MARKETPULSE_PRODUCER_ID",
        "MARKETPULSE_REPLAY_FORMAT",
        "MARKETPULSE_SYNTHETIC_LEAD_IN",
        "MARKETPULSE_SYNTHETIC_START",
        "MARKETPULSE_TICK_LIMIT",
    },
    "archive": {
        "BUCKET",
        "MARKETPULSE_ARCHIVE_GROUP",
        "MARKETPULSE_ARCHIVE_GZIP",
        "MARKETPULSE_ARCHIVE_MAX_AGE_SECONDS",
        "MARKETPULSE_ARCHIVE_MAX_BYTES",
        "MARKETPULSE_ARCHIVE_SESSION_TIMEOUT_SECONDS",
        "MARKETPULSE_KAFKA_BOOTSTRAP_SERVERS",
        "MARKETPULSE_LOG_LEVEL",
        "MARKETPULSE_LOG_FORMAT",
        "MARKETPULSE_QUOTES_INTERVAL_SECONDS",
    },
    "transform": {
        "BUCKET",
        "MARKETPULSE_BRONZE_SCHEMA",
        "MARKETPULSE_GOLD_SCHEMA",
        "MARKETPULSE_KAFKA_BOOTSTRAP_SERVERS",
        "MARKETPULSE_LOG_LEVEL",
        "MARKETPULSE_LOG_FORMAT",
        "MARKETPULSE_PUBLISH_GOLD",
        "MARKETPULSE_TRANSFORM_BUILD_INTERVAL_SECONDS",
    },
    "alerts": {
        "MARKETPULSE_ALERTS_OFFSET_RESET",
        "MARKETPULSE_KAFKA_BOOTSTRAP_SERVERS",
        "MARKETPULSE_LOG_LEVEL",
        "MARKETPULSE_LOG_FORMAT",
        "MARKETPULSE_STALE_CHECK_SECONDS",
    },
    "dashboard": {
        "BUCKET",
        "MARKETPULSE_DASHBOARD_HEALTH_REFRESH_SECONDS",
        "MARKETPULSE_DASHBOARD_QUOTES_REFRESH_SECONDS",
        "MARKETPULSE_DASHBOARD_STALE_AFTER_SECONDS",
        "MARKETPULSE_GOLD_SCHEMA",
        "MARKETPULSE_KAFKA_BOOTSTRAP_SERVERS",
        "MARKETPULSE_LOG_LEVEL",
        "MARKETPULSE_LOG_FORMAT",
    },
}


def test_every_variable_a_workload_reads_is_rendered_for_some_pipeline_or_is_a_listed_default() -> None:
    rendered: dict[str, set[str]] = {component: set() for component in READERS}
    for param in pipelines():
        (pipeline,) = param.values
        assert isinstance(pipeline, StockPipeline)
        # As once a full refresh has been requested (the annotation marketpulse.io/full-refresh).
        requested = "2026-01-02T03:04:05Z"
        for workload in render_workloads(
            pipeline.spec, names_for(pipeline), Platform(), full_refresh=requested
        ):
            rendered[workload.component] |= {e.name for e in workload.env}
    never_rendered = {
        component: set().union(*(variables_read(s) for s in readers)) - rendered[component]
        for component, readers in READERS.items()
    }
    assert never_rendered == DEFAULT_ONLY


def test_a_misspelt_variable_stops_the_workload_naming_it_and_the_closest_name() -> None:
    env = {**os.environ, "MARKETPULSE_ARCHIVE_MAX_BYTE": "1000"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("marketpulse")), "archive"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert (
        "archive: MARKETPULSE_ARCHIVE_MAX_BYTE is not a MarketPulse variable "
        "(did you mean MARKETPULSE_ARCHIVE_MAX_BYTES?)" in " ".join(result.stderr.split())
    )


def test_every_unknown_variable_is_named_and_known_ones_of_other_workloads_pass() -> None:
    check_environment({"MARKETPULSE_DASHBOARD_PORT": "1", "MARKETPULSE_SECRET_SF_PASSWORD": "x", "PATH": "/"})
    with pytest.raises(UnknownVariableError) as raised:
        check_environment({"MARKETPULSE_WATCHLST": "AAPL", "marketpulse_nonsense": "1"})
    message = str(raised.value)
    assert (
        "MARKETPULSE_WATCHLST is not a MarketPulse variable (did you mean MARKETPULSE_WATCHLIST?)" in message
    )
    assert "marketpulse_nonsense is not a MarketPulse variable" in message


def test_a_variable_is_named_by_its_settings_field_and_an_unknown_field_is_refused() -> None:
    assert variable(READERS["ingest"][0], "synthetic_seed") == "MARKETPULSE_SYNTHETIC_SEED"
    assert variable(READERS["ingest"][0], "kafka_bootstrap_servers") == "KAFKA_BOOTSTRAP_SERVERS"
    assert variable(READERS["ingest"][1], "s3_endpoint") == "S3_ENDPOINT"
    with pytest.raises(KeyError, match="IngestSettings has no field 'synthetic_seeed'"):
        variable(READERS["ingest"][0], "synthetic_seeed")


def test_every_workloads_own_variables_keep_the_marketpulse_prefix_with_the_blocks_mixed_in() -> None:
    for component, readers in READERS.items():
        own = readers[0]
        assert own.model_config.get("env_prefix") == "MARKETPULSE_", component
        assert "MARKETPULSE_LOG_LEVEL" in variables_read(own), component


@pytest.mark.parametrize("pipeline", pipelines())
def test_only_workloads_that_serve_metrics_declare_the_metrics_port(pipeline: StockPipeline) -> None:
    # The pipeline's ServiceMonitor scrapes every pod with a port named "metrics"; Streamlit replaces
    # the dashboard's process and serves no /metrics, so a declared port there is a target that is down.
    workloads = render_workloads(pipeline.spec, names_for(pipeline), Platform())
    declaring = {w.component for w in workloads if any(p.name == "metrics" for p in w.ports)}
    assert "dashboard" not in declaring
    assert declaring == {w.component for w in workloads} - {"dashboard"}
