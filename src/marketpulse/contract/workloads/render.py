"""Render the workloads of a StockPipeline: a pure function of the spec and the platform defaults.

The variable names here are the contract with the workloads' settings classes
(`marketpulse.contract.settings`); tests/test_workload_env_contract.py keeps the two in step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from urllib.parse import urlparse

from marketpulse.contract.api import SecretValue, StockPipelineSpec
from marketpulse.contract.settings.ingest import IngestSettings
from marketpulse.contract.workloads.model import EnvVar, Port, Resources, SecretFile, SecretRef, Workload
from marketpulse.contract.workloads.names import PipelineNames

METRICS_PORT = 9102
DASHBOARD_PORT = 8501
WAREHOUSE_DIR = "/var/lib/marketpulse/warehouse"
DUCKDB_FILE = "marketpulse.duckdb"
SNOWFLAKE_KEY_DIR = "/var/run/secrets/marketpulse/snowflake"
KAFKA_BOOTSTRAP_PORT = 9092

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


def _ref(value: SecretValue) -> SecretRef:
    return SecretRef(value.secret_key_ref.name, value.secret_key_ref.key)


def bootstrap_servers(spec: StockPipelineSpec) -> str:
    if spec.kafka.bootstrap_servers:
        return spec.kafka.bootstrap_servers
    # Strimzi's bootstrap Service of the cluster, in the pipeline's namespace.
    return f"{spec.kafka.cluster_name}-kafka-bootstrap:{KAFKA_BOOTSTRAP_PORT}"


def s3_env(spec: StockPipelineSpec, names: PipelineNames, platform: Platform) -> list[EnvVar]:
    storage = spec.storage
    creds = storage.credentials_secret
    secret = creds.name if creds else platform.s3_credentials_secret
    access_key = creds.access_key_id_key if creds else platform.s3_access_key_key
    secret_key = creds.secret_access_key_key if creds else platform.s3_secret_key_key
    return [
        EnvVar("S3_ENDPOINT", (storage.endpoint or platform.s3_endpoint).rstrip("/")),
        EnvVar("S3_REGION", storage.region or platform.s3_region),
        EnvVar("S3_ACCESS_KEY", secret=SecretRef(secret, access_key)),
        EnvVar("S3_SECRET_KEY", secret=SecretRef(secret, secret_key)),
        EnvVar("MARKETPULSE_BUCKET", names.bucket),
    ]


def common_env(spec: StockPipelineSpec, names: PipelineNames) -> list[EnvVar]:
    env = [
        EnvVar("MARKETPULSE_PIPELINE", names.name),
        EnvVar("MARKETPULSE_NAMESPACE", names.namespace),
        EnvVar("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers(spec)),
        EnvVar("MARKETPULSE_TICKS_TOPIC", names.ticks_topic),
        EnvVar("MARKETPULSE_DLQ_TOPIC", names.dlq_topic),
        # The watchlist is part of every pod template, so changing it rolls the workloads.
        EnvVar("MARKETPULSE_WATCHLIST", ",".join(spec.watchlist)),
        EnvVar("MARKETPULSE_METRICS_PORT", str(METRICS_PORT)),
    ]
    if spec.kafka.authentication == "scram-sha-512":
        # Strimzi's User Operator writes the generated password into a Secret named after the user.
        env += [
            EnvVar("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            EnvVar("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            EnvVar("KAFKA_SASL_USERNAME", names.kafka_user),
            EnvVar("KAFKA_SASL_PASSWORD", secret=SecretRef(names.kafka_user, "password")),
        ]
    return env


def _source_env(spec: StockPipelineSpec, names: PipelineNames, platform: Platform) -> list[EnvVar]:
    source = spec.source
    env = [EnvVar("MARKETPULSE_SOURCE", source.type)]
    if source.type == "synthetic":
        synthetic = source.synthetic_settings
        scenarios = [
            {"kind": _SCENARIO_KINDS[s], "at": (i + 1) * _SCENARIO_SPACING}
            for i, s in enumerate(synthetic.scenarios)
        ]
        env += [
            EnvVar("MARKETPULSE_SYNTHETIC_SEED", str(synthetic.seed)),
            EnvVar("MARKETPULSE_SYNTHETIC_CLOCK", "wall"),
            EnvVar("MARKETPULSE_SYNTHETIC_TICKS_PER_SECOND", str(synthetic.ticks_per_second)),
            # The ingest rate is for the whole watchlist; the spec's is per symbol.
            EnvVar("MARKETPULSE_SYNTHETIC_RATE", str(synthetic.ticks_per_second * len(spec.watchlist))),
        ]
        if scenarios:
            env.append(EnvVar("MARKETPULSE_SYNTHETIC_SCENARIOS", json.dumps(scenarios)))
    elif source.type == "finnhub" and source.finnhub is not None:
        env += [
            EnvVar("FINNHUB_API_KEY", secret=_ref(source.finnhub.api_key)),
            EnvVar("MARKETPULSE_FINNHUB_CALLS_PER_MINUTE", str(source.finnhub.calls_per_minute)),
        ]
    elif source.type == "replay" and source.replay is not None:
        replay = source.replay
        env += [
            EnvVar("MARKETPULSE_REPLAY_URI", replay.uri),
            EnvVar("MARKETPULSE_REPLAY_SPEED", str(replay.speed)),
            EnvVar("MARKETPULSE_REPLAY_LOOP", str(replay.loop).lower()),
        ]
        if replay.format:
            env.append(EnvVar("MARKETPULSE_REPLAY_FORMAT", replay.format))
        if replay.uri.startswith("s3://"):
            env += s3_env(spec, names, platform)
    return env


def warehouse_env(spec: StockPipelineSpec) -> tuple[list[EnvVar], list[SecretFile]]:
    warehouse = spec.warehouse
    env = [EnvVar("MARKETPULSE_WAREHOUSE", warehouse.type)]
    files: list[SecretFile] = []
    if warehouse.type == "duckdb":
        env.append(EnvVar("MARKETPULSE_DUCKDB_PATH", f"{WAREHOUSE_DIR}/{DUCKDB_FILE}"))
        return env, files
    snowflake = warehouse.snowflake
    if snowflake is None:  # refused by validation; kept for the type checker
        return env, files
    env += [
        EnvVar("SNOWFLAKE_ACCOUNT", snowflake.account),
        EnvVar("SNOWFLAKE_USER", snowflake.user),
        EnvVar("SNOWFLAKE_DATABASE", snowflake.database),
        EnvVar("SNOWFLAKE_SCHEMA", snowflake.schema_name),
    ]
    if snowflake.role:
        env.append(EnvVar("SNOWFLAKE_ROLE", snowflake.role))
    if snowflake.warehouse:
        env.append(EnvVar("SNOWFLAKE_WAREHOUSE", snowflake.warehouse))
    if snowflake.endpoint:
        url = urlparse(snowflake.endpoint)
        env += [
            EnvVar("SNOWFLAKE_HOST", url.hostname or ""),
            EnvVar("SNOWFLAKE_PROTOCOL", url.scheme),
            EnvVar("SNOWFLAKE_PORT", str(url.port or (443 if url.scheme == "https" else 80))),
        ]
    if snowflake.password is not None:
        env.append(EnvVar("SNOWFLAKE_PASSWORD", secret=_ref(snowflake.password)))
    if snowflake.private_key is not None:
        # The connector reads a key file; mounting the Secret key keeps it out of the environment.
        key = SecretFile("snowflake-key", _ref(snowflake.private_key), SNOWFLAKE_KEY_DIR, "private-key.p8")
        files.append(key)
        env.append(EnvVar("SNOWFLAKE_PRIVATE_KEY_PATH", key.path))
    if snowflake.private_key_passphrase is not None:
        env.append(EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", secret=_ref(snowflake.private_key_passphrase)))
    return env, files


_METRICS = Port("metrics", METRICS_PORT)
# Warehouse variables only the transform reads: the DuckDB file and the schema dbt builds beside.
_TRANSFORM_ONLY = frozenset({"MARKETPULSE_DUCKDB_PATH", "SNOWFLAKE_SCHEMA"})
# On SIGTERM ingest flushes for up to its delivery timeout (a broker outage can last that long);
# Kubernetes' default 30 s grace period would kill it mid-flush and lose the ticks still queued.
_DELIVERY_TIMEOUT = IngestSettings.model_fields["ingest_delivery_timeout_seconds"].default
INGEST_STOP_GRACE_SECONDS = math.ceil(_DELIVERY_TIMEOUT) + 15


def render_workloads(spec: StockPipelineSpec, names: PipelineNames, platform: Platform) -> list[Workload]:
    """Every workload of the pipeline, in a stable order; alerts only when there are rules."""
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
            tuple(
                common
                + s3
                + wh_env
                + [
                    EnvVar("MARKETPULSE_TRANSFORM_MODE", spec.transform.mode),
                    EnvVar("MARKETPULSE_TRANSFORM_INTERVAL_SECONDS", str(spec.transform.interval_seconds)),
                ]
            ),
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
            EnvVar("MARKETPULSE_ALERTS_TOPIC", names.alerts_topic),
            EnvVar("MARKETPULSE_ALERT_RULES", json.dumps(rules, separators=(",", ":"))),
        ]
        if spec.alerts.webhook_url is not None:
            alerts_env.append(EnvVar("MARKETPULSE_ALERTS_WEBHOOK_URL", secret=_ref(spec.alerts.webhook_url)))
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
                    common + s3 + dashboard_wh + [EnvVar("MARKETPULSE_DASHBOARD_PORT", str(DASHBOARD_PORT))]
                ),
                ports=(Port("http", DASHBOARD_PORT), _METRICS),
                resources=Resources("250m", "512Mi", "1Gi"),
                secret_files=tuple(wh_files),
            )
        )
    return workloads
