"""Render the workloads of a StockPipeline: a pure function of the spec and the platform defaults.

Every variable is named through the settings field that reads it (`environment.variable`), so the
renderer and the workloads' settings classes (`marketpulse.contract.settings`) cannot disagree on a
name; tests/test_workload_env_contract.py checks that each workload reads what it is given.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from urllib.parse import urlparse

from marketpulse.contract.api import SecretValue, StockPipelineSpec
from marketpulse.contract.settings.alerts import AlertsSettings
from marketpulse.contract.settings.common import CommonSettings, S3Settings
from marketpulse.contract.settings.dashboard import DashboardSettings
from marketpulse.contract.settings.environment import variable
from marketpulse.contract.settings.ingest import IngestSettings
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.contract.workloads.model import EnvVar, Port, Resources, SecretFile, SecretRef, Workload
from marketpulse.contract.workloads.names import PipelineNames
from marketpulse.contract.workloads.scratch import ScratchSizes, quantity, scratch_bytes

METRICS_PORT = 9102
POD_BIND_ADDRESS = "0.0.0.0"  # a pod has its own network namespace, reached through its Service
DASHBOARD_PORT = 8501
WAREHOUSE_DIR = "/var/lib/marketpulse/warehouse"
DUCKDB_FILE = "marketpulse.duckdb"
SNOWFLAKE_KEY_DIR = "/var/run/secrets/marketpulse/snowflake"
KAFKA_BOOTSTRAP_PORT = 9092
KAFKA_PASSWORD_KEY = "password"  # noqa: S105 - the key in the Secret, as Strimzi names it

# A spec scenario is a fault injected once, early enough to be seen in a demo; the ingest
# settings express scenarios as {kind, at} with `at` a global tick index.
_SCENARIO_KINDS = {"gap": "gap", "spike": "spike", "duplicate": "duplicate", "badRecord": "malformed"}
_SCENARIO_SPACING = 1000


@dataclass(frozen=True)
class Platform:
    """What the installation provides when a spec leaves it unset (the operator's settings)."""

    s3_endpoint: str = "http://minio.marketpulse.svc:9000"
    s3_region: str = "us-east-1"
    s3_credentials_secret: str = "marketpulse-s3"  # noqa: S105 - the name of a Secret, not a secret
    s3_access_key_key: str = "AWS_ACCESS_KEY_ID"
    s3_secret_key_key: str = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a key name in the Secret
    # The operator issues each pipeline its own S3 accounts (MARKETPULSE_S3_IAM is not `shared`).
    s3_per_pipeline: bool = False
    scratch: ScratchSizes = field(default_factory=ScratchSizes)


def with_scratch(workload: Workload, platform: Platform, *, snowflake: bool) -> Workload:
    """The workload with its /tmp size limit, and ephemeral storage for that plus its logs."""
    scratch = scratch_bytes(workload.component, platform.scratch, snowflake=snowflake)
    resources = replace(workload.resources, ephemeral_storage=quantity(scratch + platform.scratch.logs))
    return replace(workload, scratch_limit=quantity(scratch), resources=resources)


def issues_pipeline_credentials(spec: StockPipelineSpec, platform: Platform) -> bool:
    """Whether the pipeline's workloads use its own S3 accounts (Secrets `<pipeline>-s3` and
    `<pipeline>-s3-readonly`) instead of the platform's: only where the platform issues them, for
    a bucket on the platform's own S3 server, and not when the spec brings its own credentials."""
    storage = spec.storage
    on_platform = storage.endpoint is None or storage.endpoint.rstrip("/") == platform.s3_endpoint.rstrip("/")
    return platform.s3_per_pipeline and storage.credentials_secret is None and on_platform


def _ref(value: SecretValue) -> SecretRef:
    return SecretRef(value.secret_key_ref.name, value.secret_key_ref.key)


def bootstrap_servers(spec: StockPipelineSpec) -> str:
    if spec.kafka.bootstrap_servers:
        return spec.kafka.bootstrap_servers
    # Strimzi's bootstrap Service of the cluster, in the pipeline's namespace.
    return f"{spec.kafka.cluster_name}-kafka-bootstrap:{KAFKA_BOOTSTRAP_PORT}"


def s3_env(
    spec: StockPipelineSpec, names: PipelineNames, platform: Platform, *, readonly: bool = False
) -> list[EnvVar]:
    """S3 settings of a workload; `readonly`: one that only reads the bucket (the dashboard)."""
    storage = spec.storage
    creds = storage.credentials_secret
    secret = creds.name if creds else platform.s3_credentials_secret
    if issues_pipeline_credentials(spec, platform):
        secret = names.s3_readonly_secret if readonly else names.s3_secret
    access_key = creds.access_key_id_key if creds else platform.s3_access_key_key
    secret_key = creds.secret_access_key_key if creds else platform.s3_secret_key_key
    return [
        EnvVar(variable(S3Settings, "s3_endpoint"), (storage.endpoint or platform.s3_endpoint).rstrip("/")),
        EnvVar(variable(S3Settings, "s3_region"), storage.region or platform.s3_region),
        EnvVar(variable(S3Settings, "s3_access_key"), secret=SecretRef(secret, access_key)),
        EnvVar(variable(S3Settings, "s3_secret_key"), secret=SecretRef(secret, secret_key)),
        EnvVar(variable(S3Settings, "bucket"), names.bucket),
    ]


def common_env(spec: StockPipelineSpec, names: PipelineNames) -> list[EnvVar]:
    env = [
        EnvVar(variable(CommonSettings, "pipeline"), names.name),
        EnvVar(variable(CommonSettings, "namespace"), names.namespace),
        EnvVar(variable(CommonSettings, "kafka_bootstrap_servers"), bootstrap_servers(spec)),
        EnvVar(variable(CommonSettings, "ticks_topic"), names.ticks_topic),
        EnvVar(variable(CommonSettings, "dlq_topic"), names.dlq_topic),
        # The watchlist is part of every pod template, so changing it rolls the workloads.
        EnvVar(variable(CommonSettings, "watchlist"), ",".join(spec.watchlist)),
        EnvVar(variable(CommonSettings, "metrics_port"), str(METRICS_PORT)),
        # In a pod the listeners face the pod network (Prometheus scrapes the pod's address); the
        # settings' default, for a process on a laptop, is loopback.
        EnvVar(variable(CommonSettings, "metrics_host"), POD_BIND_ADDRESS),
    ]
    if spec.kafka.authentication == "scram-sha-512":
        user, password = kafka_credentials(spec, names)
        env += [
            EnvVar(variable(CommonSettings, "kafka_security_protocol"), "SASL_PLAINTEXT"),
            EnvVar(variable(CommonSettings, "kafka_sasl_mechanism"), "SCRAM-SHA-512"),
            EnvVar(variable(CommonSettings, "kafka_sasl_username"), user),
            EnvVar(variable(CommonSettings, "kafka_sasl_password"), secret=password),
        ]
    return env


def kafka_credentials(spec: StockPipelineSpec, names: PipelineNames) -> tuple[str, SecretRef]:
    """The SCRAM user of a pipeline and where its password is. Strimzi's User Operator writes the
    password into a Secret named after the KafkaUser; with the direct backend the operator makes
    both the user and its Secret."""
    if spec.kafka.topic_backend == "direct":
        return names.kafka_scram_user, SecretRef(names.kafka_secret, KAFKA_PASSWORD_KEY)
    return names.kafka_user, SecretRef(names.kafka_user, KAFKA_PASSWORD_KEY)


def _source_env(spec: StockPipelineSpec, names: PipelineNames, platform: Platform) -> list[EnvVar]:
    source = spec.source
    env = [EnvVar(variable(IngestSettings, "source"), source.type)]
    if source.type == "synthetic":
        synthetic = source.synthetic_settings
        scenarios = [
            {"kind": _SCENARIO_KINDS[s], "at": (i + 1) * _SCENARIO_SPACING}
            for i, s in enumerate(synthetic.scenarios)
        ]
        env += [
            EnvVar(variable(IngestSettings, "synthetic_seed"), str(synthetic.seed)),
            EnvVar(variable(IngestSettings, "synthetic_clock"), "wall"),
            EnvVar(variable(IngestSettings, "synthetic_ticks_per_second"), str(synthetic.ticks_per_second)),
            # The ingest rate is for the whole watchlist; the spec's is per symbol.
            EnvVar(
                variable(IngestSettings, "synthetic_rate"),
                str(synthetic.ticks_per_second * len(spec.watchlist)),
            ),
        ]
        if scenarios:
            env.append(EnvVar(variable(IngestSettings, "synthetic_scenarios"), json.dumps(scenarios)))
    elif source.type == "finnhub" and source.finnhub is not None:
        env += [
            EnvVar(variable(IngestSettings, "finnhub_api_key"), secret=_ref(source.finnhub.api_key)),
            EnvVar(
                variable(IngestSettings, "finnhub_calls_per_minute"), str(source.finnhub.calls_per_minute)
            ),
        ]
    elif source.type == "replay" and source.replay is not None:
        replay = source.replay
        env += [
            EnvVar(variable(IngestSettings, "replay_uri"), replay.uri),
            EnvVar(variable(IngestSettings, "replay_speed"), str(replay.speed)),
            EnvVar(variable(IngestSettings, "replay_loop"), str(replay.loop).lower()),
        ]
        if replay.format:
            env.append(EnvVar(variable(IngestSettings, "replay_format"), replay.format))
        if replay.uri.startswith("s3://"):
            env += s3_env(spec, names, platform)
    return env


def warehouse_env(spec: StockPipelineSpec) -> tuple[list[EnvVar], list[SecretFile]]:
    warehouse = spec.warehouse
    env = [EnvVar(variable(TransformSettings, "warehouse"), warehouse.type)]
    files: list[SecretFile] = []
    if warehouse.type == "duckdb":
        env.append(EnvVar(variable(TransformSettings, "duckdb_path"), f"{WAREHOUSE_DIR}/{DUCKDB_FILE}"))
        return env, files
    snowflake = warehouse.snowflake
    if snowflake is None:  # refused by validation; kept for the type checker
        return env, files
    env += [
        EnvVar(variable(TransformSettings, "snowflake_account"), snowflake.account),
        EnvVar(variable(TransformSettings, "snowflake_user"), snowflake.user),
        EnvVar(variable(TransformSettings, "snowflake_database"), snowflake.database),
        EnvVar(variable(TransformSettings, "snowflake_schema"), snowflake.schema_name),
    ]
    if snowflake.role:
        env.append(EnvVar(variable(TransformSettings, "snowflake_role"), snowflake.role))
    if snowflake.warehouse:
        env.append(EnvVar(variable(TransformSettings, "snowflake_warehouse"), snowflake.warehouse))
    if snowflake.endpoint:
        url = urlparse(snowflake.endpoint)
        env += [
            EnvVar(variable(TransformSettings, "snowflake_host"), url.hostname or ""),
            EnvVar(variable(TransformSettings, "snowflake_protocol"), url.scheme),
            EnvVar(
                variable(TransformSettings, "snowflake_port"),
                str(url.port or (443 if url.scheme == "https" else 80)),
            ),
        ]
    if snowflake.password is not None:
        env.append(EnvVar(variable(TransformSettings, "snowflake_password"), secret=_ref(snowflake.password)))
    if snowflake.private_key is not None:
        # The connector reads a key file; mounting the Secret key keeps it out of the environment.
        key = SecretFile("snowflake-key", _ref(snowflake.private_key), SNOWFLAKE_KEY_DIR, "private-key.p8")
        files.append(key)
        env.append(EnvVar(variable(TransformSettings, "snowflake_private_key_path"), key.path))
    if snowflake.private_key_passphrase is not None:
        env.append(
            EnvVar(
                variable(TransformSettings, "snowflake_private_key_passphrase"),
                secret=_ref(snowflake.private_key_passphrase),
            )
        )
    return env, files


_METRICS = Port("metrics", METRICS_PORT)
# Warehouse variables only the transform reads: the DuckDB file and the schema dbt builds beside.
_TRANSFORM_ONLY = frozenset(
    {variable(TransformSettings, "duckdb_path"), variable(TransformSettings, "snowflake_schema")}
)
# On SIGTERM ingest flushes for up to its delivery timeout (a broker outage can last that long);
# Kubernetes' default 30 s grace period would kill it mid-flush and lose the ticks still queued.
_DELIVERY_TIMEOUT = IngestSettings.model_fields["ingest_delivery_timeout_seconds"].default
INGEST_STOP_GRACE_SECONDS = math.ceil(_DELIVERY_TIMEOUT) + 15


def transform_env(spec: StockPipelineSpec, full_refresh: str | None) -> list[EnvVar]:
    """How the transform runs, its dbt vars when the spec sets any, and the full refresh last
    requested (kept in every later render, so a restarted transform still knows it)."""
    env = [
        EnvVar(variable(TransformSettings, "transform_mode"), spec.transform.mode),
        EnvVar(
            variable(TransformSettings, "transform_interval_seconds"), str(spec.transform.interval_seconds)
        ),
    ]
    dbt_vars = spec.transform.vars.model_dump(mode="json", by_alias=True, exclude_none=True)
    if dbt_vars:
        env.append(EnvVar(variable(TransformSettings, "dbt_vars"), json.dumps(dbt_vars, sort_keys=True)))
    if full_refresh:
        env.append(EnvVar(variable(TransformSettings, "full_refresh_token"), full_refresh))
    return env


def render_workloads(
    spec: StockPipelineSpec, names: PipelineNames, platform: Platform, *, full_refresh: str | None = None
) -> list[Workload]:
    """Every workload of the pipeline, in a stable order; alerts only when there are rules.

    `full_refresh`: the token of the full refresh last requested (see `transform.refresh`), if any.
    """
    common = common_env(spec, names)
    s3 = s3_env(spec, names, platform)
    wh_env, wh_files = warehouse_env(spec)
    duckdb = spec.warehouse.type == "duckdb"
    continuous = spec.transform.mode == "continuous"

    workloads = [
        Workload(
            "ingest",
            ("marketpulse", "ingest"),
            tuple(common + _source_env(spec, names, platform)),
            ports=(_METRICS,),
            resources=Resources("250m", "256Mi", "512Mi"),
            stop_grace_seconds=INGEST_STOP_GRACE_SECONDS,
        ),
        Workload(
            "archive",
            ("marketpulse", "archive"),
            tuple(common + s3),
            ports=(_METRICS,),
            resources=Resources("250m", "256Mi", "1Gi"),
        ),
        Workload(
            "transform",
            ("marketpulse", "transform"),
            tuple(common + s3 + wh_env + transform_env(spec, full_refresh)),
            mode=spec.transform.mode,
            ports=(_METRICS,),
            resources=Resources("500m", "1Gi", "2Gi"),
            warehouse_dir=WAREHOUSE_DIR if duckdb else None,
            secret_files=tuple(wh_files),
            schedule=None if continuous else spec.transform.schedule,
            time_zone=spec.transform.time_zone,
        ),
    ]
    if spec.alerts.rules:
        rules = [rule.model_dump(mode="json", by_alias=True, exclude_none=True) for rule in spec.alerts.rules]
        alerts_env = [
            EnvVar(variable(AlertsSettings, "alerts_topic"), names.alerts_topic),
            EnvVar(variable(AlertsSettings, "alert_rules"), json.dumps(rules, separators=(",", ":"))),
        ]
        if spec.alerts.webhook_url is not None:
            alerts_env.append(
                EnvVar(variable(AlertsSettings, "alerts_webhook_url"), secret=_ref(spec.alerts.webhook_url))
            )
        workloads.append(
            Workload(
                "alerts",
                ("marketpulse", "alerts"),
                tuple(common + alerts_env),
                ports=(_METRICS,),
                resources=Resources("100m", "128Mi", "256Mi"),
            )
        )
    if spec.dashboard.enabled:
        # The dashboard never opens the DuckDB file (one writer only): it reads gold Parquet from
        # the bucket, or Snowflake's gold schema, so it gets the warehouse's connection, not the
        # file's path, dbt's base schema or a volume.
        dashboard_wh = [e for e in wh_env if e.name not in _TRANSFORM_ONLY]
        workloads.append(
            Workload(
                "dashboard",
                ("marketpulse", "dashboard"),
                tuple(
                    common
                    + s3_env(spec, names, platform, readonly=True)
                    + dashboard_wh
                    + [
                        EnvVar(variable(DashboardSettings, "dashboard_address"), POD_BIND_ADDRESS),
                        EnvVar(variable(DashboardSettings, "dashboard_port"), str(DASHBOARD_PORT)),
                    ]
                ),
                # No metrics port: Streamlit replaces the process and serves no /metrics, and a
                # declared port would make the pipeline's ServiceMonitor scrape a target that is down.
                ports=(Port("http", DASHBOARD_PORT),),
                resources=Resources("250m", "512Mi", "1Gi"),
                secret_files=tuple(wh_files),
            )
        )
    return [with_scratch(w, platform, snowflake=not duckdb) for w in workloads]
