"""StockPipeline v1alpha1: the typed spec and status, the single source of truth for the CRD.

Every field has a default that works where one is sensible, so a spec that lists only a watchlist
is a complete pipeline: synthetic ticks, Strimzi-managed topics, an embedded DuckDB warehouse.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from marketpulse.contract.api.base import (
    RULE_ERROR,
    ApiModel,
    Bool,
    DnsLabel,
    DnsSubdomain,
    Integer,
    Number,
    SecretValue,
    Timestamp,
    optional_object,
    rule,
    text,
    transition_rule,
)
from marketpulse.contract.api.formats import (
    CRON_SCHEDULE,
    DURATION,
    LABEL_VALUE,
    MAX_EXTRA_LABELS,
    QUALIFIED_NAME,
    RESERVED_LABEL_DOMAINS,
    RESERVED_LABEL_KEY,
    TIME_ZONES,
    cel_string_list,
    duration_seconds,
    s3_bucket_name_ok,
)
from marketpulse.contract.ticks.model import TICKER_PATTERN

GROUP = "marketpulse.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "StockPipeline"
PLURAL = "stockpipelines"
SINGULAR = "stockpipeline"
SHORT_NAMES = ("sp",)

MAX_SYMBOLS = 200
# Children are named `<pipeline>-<component>`; a CronJob name may have at most 52 characters.
MAX_NAME_LENGTH = 40
# A DNS-1035 label, because Services are named after the pipeline.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

Ticker = Annotated[str, text(10, pattern=TICKER_PATTERN)]

SourceType = Literal["synthetic", "finnhub", "replay"]
TopicBackend = Literal["strimzi", "direct"]
KafkaAuthentication = Literal["none", "scram-sha-512"]
WarehouseType = Literal["duckdb", "snowflake"]
TransformMode = Literal["cron", "continuous"]
DeletionPolicy = Literal["Retain", "Delete"]
Scenario = Literal["gap", "spike", "duplicate", "badRecord"]
Phase = Literal["Pending", "Provisioning", "Ready", "Degraded", "Suspended", "Failed", "Deleting"]
ConditionStatus = Literal["True", "False", "Unknown"]

SnowflakeIdentifier = Annotated[str, text(255, pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")]
Quantity = Annotated[str, text(32, pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")]


# --- source ---------------------------------------------------------------------------------------


class SyntheticSource(ApiModel):
    """A seeded, deterministic intraday random walk per symbol."""

    seed: Annotated[Integer, Field(ge=0, le=2**31 - 1)] = Field(
        default=42, description="Random seed; the same seed and watchlist give the same ticks."
    )
    ticks_per_second: Annotated[Integer, Field(ge=1, le=100_000)] = Field(
        default=5, description="Ticks per second for each symbol."
    )
    scenarios: list[Scenario] = Field(
        default=[],  # a literal default, so the CRD states it and the API server applies it
        max_length=4,
        description="Faults to inject now and then: gap, spike, duplicate, badRecord.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class FinnhubSource(ApiModel):
    """Real trades from Finnhub's websocket, with REST quotes as the fallback."""

    api_key: SecretValue = Field(description="The Finnhub API token.")
    calls_per_minute: Annotated[Integer, Field(ge=1, le=10_000)] = Field(
        default=60, description="REST call budget; 60 is the free tier's limit."
    )


class ReplaySource(ApiModel):
    """Ticks replayed from an NDJSON or CSV file."""

    uri: Annotated[str, text(1024)] = Field(
        description="s3://bucket/key in the pipeline's S3 storage, or a file path in the ingest container."
    )
    format: Literal["ndjson", "csv"] | None = Field(
        default=None,
        description="File format; unset means inferred from the file name (.csv, .csv.gz or NDJSON).",
    )
    speed: Annotated[Number, Field(ge=0, le=10_000)] = Field(
        default=1.0, description="Replay speed relative to the recorded time; 0 replays as fast as possible."
    )
    loop: Bool = Field(default=False, description="Start again from the beginning at the end of the file.")


class SourceSpec(ApiModel):
    """Where ticks come from: `type` picks the source, the field of the same name holds its settings."""

    type: SourceType = Field(default="synthetic", description="synthetic, finnhub or replay.")
    synthetic: SyntheticSource | None = Field(default=None, description="Settings of the synthetic source.")
    finnhub: FinnhubSource | None = Field(default=None, description="Settings of the Finnhub source.")
    replay: ReplaySource | None = Field(default=None, description="Settings of the replay source.")

    @rule(
        cel="self.type != 'finnhub' || has(self.finnhub)",
        message=(
            "source.type finnhub needs source.finnhub.apiKey.secretKeyRef "
            "(the Secret with the Finnhub API token)"
        ),
        field_path=".finnhub",
        reason="FieldValueRequired",
    )
    def _finnhub_has_settings(self) -> bool:
        return self.type != "finnhub" or self.finnhub is not None

    @rule(
        cel="self.type != 'replay' || has(self.replay)",
        message="source.type replay needs source.replay.uri (the file of ticks to replay)",
        field_path=".replay",
        reason="FieldValueRequired",
    )
    def _replay_has_settings(self) -> bool:
        return self.type != "replay" or self.replay is not None

    @rule(
        cel=(
            "(!has(self.synthetic) || self.type == 'synthetic')"
            " && (!has(self.finnhub) || self.type == 'finnhub')"
            " && (!has(self.replay) || self.type == 'replay')"
        ),
        message=(
            "source holds settings for a type other than source.type: keep only the settings of source.type"
        ),
    )
    def _only_settings_of_its_type(self) -> bool:
        present = {"synthetic": self.synthetic, "finnhub": self.finnhub, "replay": self.replay}
        return all(value is None or name == self.type for name, value in present.items())

    @property
    def synthetic_settings(self) -> SyntheticSource:
        """The synthetic settings in effect (defaults when none are written)."""
        return self.synthetic or SyntheticSource()


# --- kafka ----------------------------------------------------------------------------------------


class KafkaSpec(ApiModel):
    """The pipeline's topics `<namespace>.<name>.ticks`, `.ticks.dlq` and `.alerts`."""

    topic_backend: TopicBackend = Field(
        default="strimzi",
        description=(
            "strimzi: KafkaTopic resources for the Strimzi topic operator. "
            "direct: topics created through the Kafka admin API at bootstrapServers."
        ),
    )
    cluster_name: DnsLabel = Field(
        default="marketpulse",
        description="The Strimzi Kafka cluster (the strimzi.io/cluster label of the KafkaTopics).",
    )
    bootstrap_servers: (
        Annotated[str, text(1024, pattern=r"^[^\s,]+:[0-9]{1,5}(,[^\s,]+:[0-9]{1,5})*$")] | None
    ) = Field(
        default=None,
        description=(
            "host:port[,host:port...]. Required for the direct backend; "
            "with strimzi, unset means the cluster's <clusterName>-kafka-bootstrap service."
        ),
    )
    partitions: Annotated[Integer, Field(ge=1, le=1000)] = Field(
        default=3, description="Partitions of the ticks topic; may grow, never shrink."
    )
    replicas: Annotated[Integer, Field(ge=1, le=32)] | None = Field(
        default=None,
        description=(
            "Replication factor. Unset: with the direct backend 3, or the number of brokers when fewer "
            "(reported in status); with strimzi the cluster's default.replication.factor."
        ),
    )
    min_insync_replicas: Annotated[Integer, Field(ge=1, le=32)] | None = Field(
        default=None,
        description=(
            "Topic min.insync.replicas: copies an acks=all write must reach before it is acknowledged. "
            "Unset: replicas - 1 (at least 1), so one broker may fail without refusing writes or "
            "losing acknowledged ones; with strimzi and replicas unset, the cluster's default."
        ),
    )
    retention_hours: Annotated[Integer, Field(ge=1, le=87_600)] = Field(
        default=168, description="How long Kafka keeps ticks; the S3 archive is the long-term copy."
    )
    authentication: KafkaAuthentication = Field(
        default="none",
        description=(
            "none: plain connections. scram-sha-512: a SCRAM user allowed only the pipeline's topics and "
            "consumer groups (strimzi: a KafkaUser; direct: the user <namespace>.<name> and its ACLs, made "
            "through the admin API, its password in the Secret <name>-kafka); workloads log in as it."
        ),
    )

    @rule(
        cel="self.topicBackend != 'direct' || has(self.bootstrapServers)",
        message="kafka.topicBackend direct needs kafka.bootstrapServers (host:port of the Kafka brokers)",
        field_path=".bootstrapServers",
        reason="FieldValueRequired",
    )
    def _direct_has_bootstrap_servers(self) -> bool:
        return self.topic_backend != "direct" or self.bootstrap_servers is not None

    @rule(
        cel="!has(self.minInsyncReplicas) || has(self.replicas)",
        message=(
            "kafka.minInsyncReplicas needs kafka.replicas: without it the replication factor depends on "
            "the brokers, and fewer copies than minInsyncReplicas refuse every write"
        ),
        field_path=".replicas",
        reason="FieldValueRequired",
    )
    def _min_insync_has_replicas(self) -> bool:
        return self.min_insync_replicas is None or self.replicas is not None

    @rule(
        cel="!has(self.minInsyncReplicas) || !has(self.replicas) || self.minInsyncReplicas <= self.replicas",
        message=(
            "kafka.minInsyncReplicas must be at most kafka.replicas: a write cannot reach more in-sync "
            "copies than the topic has"
        ),
        field_path=".minInsyncReplicas",
    )
    def _min_insync_within_replicas(self) -> bool:
        return (
            self.min_insync_replicas is None
            or self.replicas is None
            or self.min_insync_replicas <= self.replicas
        )

    @transition_rule(
        cel="self.partitions >= oldSelf.partitions",
        message="kafka.partitions may grow but not shrink: Kafka cannot remove partitions from a topic",
        field_path=".partitions",
    )
    def _partitions_never_shrink(self, old: KafkaSpec) -> bool:
        return self.partitions >= old.partitions

    @transition_rule(
        cel="self.topicBackend == oldSelf.topicBackend",
        message=(
            "kafka.topicBackend cannot change: the existing topics would be orphaned; "
            "create a new StockPipeline instead"
        ),
        field_path=".topicBackend",
    )
    def _topic_backend_is_fixed(self, old: KafkaSpec) -> bool:
        return self.topic_backend == old.topic_backend


# --- storage --------------------------------------------------------------------------------------


class S3Credentials(ApiModel):
    """A Secret with the S3 access key pair."""

    name: DnsSubdomain = Field(description="Name of the Secret.")
    access_key_id_key: Annotated[str, text(253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(
        default="AWS_ACCESS_KEY_ID", description="Key of the access key id in the Secret."
    )
    secret_access_key_key: Annotated[str, text(253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(
        default="AWS_SECRET_ACCESS_KEY", description="Key of the secret access key in the Secret."
    )


class StorageSpec(ApiModel):
    """The S3 bucket that holds raw ticks (bronze) and, with DuckDB, the published gold tables."""

    endpoint: Annotated[str, text(512, pattern=r"^https?://[^\s/?#]+/?$")] | None = Field(
        default=None,
        description="S3 endpoint URL (http[s]://host[:port]); unset means the operator's default.",
    )
    region: Annotated[str, text(64, pattern=r"^[a-z0-9-]+$")] | None = Field(
        default=None, description="S3 region."
    )
    bucket: Annotated[str, text(63, min_length=3, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None = (
        Field(
            None,
            description=(
                "Bucket name; unset means one derived from the namespace and name. "
                "Fixed once the pipeline exists."
            ),
        )
    )
    credentials_secret: S3Credentials | None = Field(
        default=None, description="Secret with the access key pair; unset means the operator's default."
    )
    retention_days: Annotated[Integer, Field(ge=1, le=36_500)] = Field(
        default=30,
        description="Raw (bronze) objects expire after this many days, by a bucket lifecycle rule.",
    )

    @transition_rule(
        cel="has(self.bucket) == has(oldSelf.bucket) && (!has(self.bucket) || self.bucket == oldSelf.bucket)",
        message=(
            "storage.bucket is immutable: the pipeline's data stays in the bucket it was created with; "
            "create a new StockPipeline to use another bucket"
        ),
        field_path=".bucket",
    )
    def _bucket_is_immutable(self, old: StorageSpec) -> bool:
        return self.bucket == old.bucket

    @rule(
        cel=(
            "!has(self.bucket) || (!self.bucket.contains('..') && !self.bucket.contains('.-') && "
            "!self.bucket.contains('-.') && !self.bucket.matches('^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$') && "
            "!self.bucket.startsWith('xn--') && !self.bucket.startsWith('sthree-') && "
            "!self.bucket.endsWith('-s3alias') && !self.bucket.endsWith('--ol-s3'))"
        ),
        message=(
            "storage.bucket must be a valid S3 bucket name: no '..', '.-' or '-.', not shaped like an "
            "IP address, no xn-- or sthree- prefix and no -s3alias or --ol-s3 suffix (S3 reserves them)"
        ),
        field_path=".bucket",
    )
    def _bucket_is_valid_for_s3(self) -> bool:
        return self.bucket is None or s3_bucket_name_ok(self.bucket)


# --- warehouse ------------------------------------------------------------------------------------


class DuckDBWarehouse(ApiModel):
    """An embedded DuckDB file on a volume owned by the transform workload."""

    volume_size: Quantity = Field(
        default="1Gi", description="Size of the PersistentVolumeClaim for the database file."
    )
    storage_class_name: DnsSubdomain | None = Field(
        default=None, description="StorageClass of the volume; unset means the cluster default."
    )


class SnowflakeWarehouse(ApiModel):
    """A Snowflake account; authenticate with exactly one of password or privateKey."""

    account: Annotated[str, text(255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] = Field(
        description="Account identifier, e.g. myorg-myaccount."
    )
    user: Annotated[str, text(255)] = Field(description="User the transform connects as.")
    role: SnowflakeIdentifier | None = Field(
        default=None, description="Role; unset means the user's default role."
    )
    warehouse: SnowflakeIdentifier | None = Field(
        default=None, description="Virtual warehouse; unset means the user's default warehouse."
    )
    database: SnowflakeIdentifier = Field(
        description="Database that holds the bronze, silver and gold schemas."
    )
    schema_name: SnowflakeIdentifier = Field(
        default="MARKETPULSE", alias="schema", description="Base schema name; layers are created beside it."
    )
    endpoint: Annotated[str, text(512, pattern=r"^https?://[^\s/?#]+/?$")] | None = Field(
        default=None,
        description="URL override (PrivateLink, a test server); unset means derived from the account.",
    )
    password: SecretValue | None = Field(default=None, description="Password authentication.")
    private_key: SecretValue | None = Field(
        default=None, description="Key-pair authentication: the PEM private key."
    )
    private_key_passphrase: SecretValue | None = Field(
        default=None, description="Passphrase of an encrypted private key."
    )

    @rule(
        cel="has(self.password) != has(self.privateKey)",
        message=(
            "warehouse.snowflake needs exactly one credential: password or privateKey, "
            "each a secretKeyRef to a Secret"
        ),
        reason="FieldValueRequired",
    )
    def _exactly_one_credential(self) -> bool:
        return (self.password is None) != (self.private_key is None)

    @rule(
        cel="!has(self.privateKeyPassphrase) || has(self.privateKey)",
        message="warehouse.snowflake.privateKeyPassphrase only applies together with privateKey",
        field_path=".privateKeyPassphrase",
        reason="FieldValueForbidden",
    )
    def _passphrase_needs_private_key(self) -> bool:
        return self.private_key_passphrase is None or self.private_key is not None


class WarehouseSpec(ApiModel):
    """Where bronze is loaded and dbt builds silver and gold."""

    type: WarehouseType = Field(default="duckdb", description="duckdb (embedded) or snowflake.")
    duckdb: DuckDBWarehouse | None = Field(default=None, description="Settings of the DuckDB warehouse.")
    snowflake: SnowflakeWarehouse | None = Field(
        default=None, description="Settings of the Snowflake warehouse."
    )

    @rule(
        cel="self.type != 'snowflake' || has(self.snowflake)",
        message=(
            "warehouse.type snowflake needs warehouse.snowflake with account, user, database "
            "and a password or privateKey secretKeyRef"
        ),
        field_path=".snowflake",
        reason="FieldValueRequired",
    )
    def _snowflake_has_settings(self) -> bool:
        return self.type != "snowflake" or self.snowflake is not None

    @rule(
        cel=(
            "(!has(self.duckdb) || self.type == 'duckdb')"
            " && (!has(self.snowflake) || self.type == 'snowflake')"
        ),
        message=(
            "warehouse holds settings for a type other than warehouse.type: "
            "keep only the settings of warehouse.type"
        ),
    )
    def _only_settings_of_its_type(self) -> bool:
        present = {"duckdb": self.duckdb, "snowflake": self.snowflake}
        return all(value is None or name == self.type for name, value in present.items())

    @property
    def duckdb_settings(self) -> DuckDBWarehouse:
        """The DuckDB settings in effect (defaults when none are written)."""
        return self.duckdb or DuckDBWarehouse()


# --- transform, dashboard, alerts -----------------------------------------------------------------


# dbt's windows are counted in trading days; 1000 is about four years of them.
MAX_WINDOW_DAYS = 1000
MAX_WINDOWS = 8
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _windows(minimum: int, what: str) -> Any:
    return Field(
        default=None,
        min_length=1,
        max_length=MAX_WINDOWS,
        description=(
            f"{what}: window lengths in trading days, each {minimum} to {MAX_WINDOW_DAYS}, at most "
            f"{MAX_WINDOWS}; unset keeps the dbt project's."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class TransformVars(ApiModel):
    """The dbt project's vars that shape gold, passed to dbt as `--vars`; each one unset keeps the
    project's own value (dbt/dbt_project.yml)."""

    exchange_time_zone: Annotated[str, text(64, pattern=r"^[A-Za-z0-9_+\-/]+$")] | None = Field(
        default=None,
        description=(
            "IANA time zone of the exchange, in which trading dates are counted (dbt var "
            "exchange_timezone; the project's: America/New_York). Silver and the bars keep the dates "
            "they were built with: annotate the pipeline marketpulse.io/full-refresh=true to re-date them."
        ),
    )
    moving_average_days: list[Annotated[Integer, Field(ge=1, le=MAX_WINDOW_DAYS)]] | None = _windows(
        1, "Simple moving averages of the daily close (dbt var moving_average_days; the project's: 5, 20, 50)"
    )
    volatility_window_days: list[Annotated[Integer, Field(ge=2, le=MAX_WINDOW_DAYS)]] | None = _windows(
        2, "Rolling volatility of daily returns (dbt var volatility_window_days; the project's: 5, 20, 60)"
    )
    index_base_date: Annotated[str, text(10, min_length=10, pattern=ISO_DATE)] | None = Field(
        default=None,
        description=(
            "First date of the base-100 index, YYYY-MM-DD (dbt var index_base_date); unset: each "
            "symbol's first trading date."
        ),
        json_schema_extra={"format": "date"},
    )

    @field_validator("moving_average_days", "volatility_window_days")
    @classmethod
    def _windows_are_unique(cls, windows: list[int] | None) -> list[int] | None:
        if windows is not None:
            _refuse_duplicates([str(w) for w in windows])
        return windows

    @field_validator("index_base_date", mode="before")
    @classmethod
    def _index_base_date_is_a_date(cls, value: object) -> object:
        # Before the pattern, so that a wrong date is refused in words rather than by a regex.
        if isinstance(value, str):
            try:
                if not re.fullmatch(ISO_DATE, value):
                    raise ValueError(value)
                date.fromisoformat(value)
            except ValueError:
                raise PydanticCustomError(
                    "date_from_iso",
                    "expected a calendar date YYYY-MM-DD such as 2026-01-02",
                ) from None
        return value

    @rule(
        cel=f"!has(self.exchangeTimeZone) || self.exchangeTimeZone in {cel_string_list(TIME_ZONES)}",
        message=(
            "transform.vars.exchangeTimeZone must be an IANA time zone name such as America/New_York, "
            "Europe/London or Asia/Tokyo (case matters)"
        ),
        field_path=".exchangeTimeZone",
    )
    def _exchange_time_zone_is_known(self) -> bool:
        return self.exchange_time_zone is None or self.exchange_time_zone in TIME_ZONES

    def dbt_vars(self) -> dict[str, Any]:
        """The vars as the dbt project names them, only those set."""
        values = {
            "exchange_timezone": self.exchange_time_zone,
            "moving_average_days": self.moving_average_days,
            "volatility_window_days": self.volatility_window_days,
            "index_base_date": self.index_base_date,
        }
        return {name: value for name, value in values.items() if value is not None}


class TransformSpec(ApiModel):
    """How often bronze is loaded and dbt builds silver and gold."""

    mode: TransformMode = Field(
        default="cron", description="cron: a CronJob on schedule. continuous: one Deployment that loops."
    )
    schedule: Annotated[
        str,
        text(
            128,
            pattern=r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$",
        ),
    ] = Field(default="*/5 * * * *", description="Cron schedule of the CronJob (cron mode).")
    time_zone: Annotated[str, text(64, pattern=r"^[A-Za-z0-9_+\-/]+$")] | None = Field(
        default=None, description="IANA time zone of the schedule; unset means the controller manager's."
    )
    interval_seconds: Annotated[Integer, Field(ge=1, le=3600)] = Field(
        default=30,
        description="Seconds from the start of one run to the start of the next (continuous mode); a run that"
        " takes longer is followed at once.",
    )
    vars: TransformVars = optional_object(
        TransformVars, "dbt vars of the build: the exchange's time zone, the windows, the index's base date."
    )

    @rule(
        cel=f"self.schedule.matches('{CRON_SCHEDULE}')",
        message=(
            "transform.schedule must be a cron schedule: five fields (minute 0-59, hour 0-23, day of month "
            "1-31, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT; each *, a value, a range a-b, a list "
            "a,b or a step */n), or @hourly, @daily, @weekly, @monthly, @yearly; e.g. */5 * * * *"
        ),
        field_path=".schedule",
    )
    def _schedule_is_cron(self) -> bool:
        return re.fullmatch(CRON_SCHEDULE, self.schedule) is not None

    @rule(
        cel=f"!has(self.timeZone) || self.timeZone in {cel_string_list(TIME_ZONES)}",
        message=(
            "transform.timeZone must be an IANA time zone name such as Europe/Paris, America/New_York "
            "or UTC (case matters)"
        ),
        field_path=".timeZone",
    )
    def _time_zone_is_known(self) -> bool:
        return self.time_zone is None or self.time_zone in TIME_ZONES


class DashboardTLS(ApiModel):
    """TLS for the dashboard's Ingress."""

    secret_name: DnsSubdomain = Field(description="Secret of type kubernetes.io/tls with the certificate.")


# A leading `*.` passes the pattern so that the wildcard rule below can refuse it with a clear message.
IngressHost = Annotated[
    str, text(253, pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
]
ANNOTATION_KEY = QUALIFIED_NAME  # an annotation key is a label key
MAX_INGRESS_ANNOTATIONS = 16
AnnotationValue = Annotated[str, text(4096, min_length=0)]


class DashboardIngress(ApiModel):
    """An Ingress in front of the dashboard's Service: off unless asked for, for one host of its own."""

    enabled: Bool = Field(
        default=False, description="Create the Ingress; without it the dashboard is only in the cluster."
    )
    host: IngressHost | None = Field(
        default=None,
        description=(
            "Host name the Ingress serves, e.g. markets.example.com; required when enabled. "
            "No wildcards; a host another StockPipeline holds is refused."
        ),
    )
    class_name: DnsSubdomain | None = Field(
        default=None, description="IngressClass of the Ingress; unset means the cluster default."
    )
    annotations: dict[str, AnnotationValue] = Field(
        default={},  # a literal default, so the CRD states it and the API server applies it
        max_length=MAX_INGRESS_ANNOTATIONS,
        description=(
            "Annotations of the Ingress, e.g. nginx.ingress.kubernetes.io/auth-url for an oauth2-proxy; "
            f"at most {MAX_INGRESS_ANNOTATIONS}, values up to 4096 characters, no *-snippet annotations."
        ),
    )
    tls: DashboardTLS | None = Field(default=None, description="Serve the host over TLS.")

    @rule(
        cel="!self.enabled || has(self.host)",
        message=(
            "dashboard.ingress.enabled needs dashboard.ingress.host: "
            "the Ingress serves one host name of this pipeline, e.g. markets.example.com"
        ),
        field_path=".host",
        reason="FieldValueRequired",
    )
    def _enabled_needs_host(self) -> bool:
        return not self.enabled or self.host is not None

    @rule(
        cel="!has(self.host) || !self.host.startsWith('*')",
        message=(
            "dashboard.ingress.host must be one host name such as markets.example.com: "
            "wildcard hosts (*.example.com) are refused, they would take the hosts of other pipelines"
        ),
        field_path=".host",
        reason="FieldValueForbidden",
    )
    def _host_is_no_wildcard(self) -> bool:
        return self.host is None or not self.host.startswith("*")

    @rule(
        cel="!has(self.tls) || has(self.host)",
        message="dashboard.ingress.tls needs dashboard.ingress.host: a certificate is served for a host name",
        field_path=".host",
        reason="FieldValueRequired",
    )
    def _tls_needs_host(self) -> bool:
        return self.tls is None or self.host is not None

    @rule(
        cel=f"self.annotations.all(k, k.matches('{ANNOTATION_KEY}'))",
        message=(
            "dashboard.ingress.annotations keys must be annotation names: an optional DNS prefix and '/', "
            "then up to 63 letters, digits, '-', '_' or '.', e.g. nginx.ingress.kubernetes.io/auth-url"
        ),
        field_path=".annotations",
    )
    def _annotation_keys_are_names(self) -> bool:
        return all(re.fullmatch(ANNOTATION_KEY, key) for key in self.annotations)

    @rule(
        cel="self.annotations.all(k, !k.endsWith('-snippet'))",
        message=(
            "dashboard.ingress.annotations may not set *-snippet annotations (configuration-snippet, "
            "server-snippet, ...): they inject raw configuration into the ingress controller every "
            "tenant shares"
        ),
        field_path=".annotations",
        reason="FieldValueForbidden",
    )
    def _no_snippet_annotations(self) -> bool:
        return not any(key.endswith("-snippet") for key in self.annotations)


class DashboardSpec(ApiModel):
    """The Streamlit dashboard: a Deployment and a ClusterIP Service, and an Ingress only when asked for."""

    enabled: Bool = Field(default=True, description="Run the dashboard Deployment and its ClusterIP Service.")
    ingress: DashboardIngress = optional_object(
        DashboardIngress, "Expose the dashboard outside the cluster through an Ingress; off by default."
    )

    @property
    def ingress_enabled(self) -> bool:
        """The Ingress is wanted: the dashboard runs and its Ingress is enabled."""
        return self.enabled and self.ingress.enabled


class PriceMoveRule(ApiModel):
    """Fires when a symbol's price moves more than `percent` within `windowMinutes`."""

    percent: Annotated[Number, Field(gt=0, le=100)] = Field(
        default=5.0, description="Move, in percent, up or down."
    )
    window_minutes: Annotated[Integer, Field(ge=1, le=1440)] = Field(
        default=15, description="Window of the move."
    )


class StaleFeedRule(ApiModel):
    """Fires when a symbol has had no tick for `seconds`."""

    seconds: Annotated[Integer, Field(ge=1, le=86_400)] = Field(
        default=60, description="Longest tolerated silence."
    )


class AlertRule(ApiModel):
    """One alert rule: set exactly one of priceMove or staleFeed."""

    name: DnsLabel = Field(description="Unique name of the rule within the pipeline.")
    price_move: PriceMoveRule | None = Field(default=None, description="Alert on a large price move.")
    stale_feed: StaleFeedRule | None = Field(
        default=None, description="Alert on a symbol that stopped ticking."
    )

    @rule(
        cel="has(self.priceMove) != has(self.staleFeed)",
        message="each alert rule sets exactly one of priceMove or staleFeed",
    )
    def _exactly_one_kind(self) -> bool:
        return (self.price_move is None) != (self.stale_feed is None)


class AlertsSpec(ApiModel):
    """Alert rules evaluated over the ticks topic; alerts go to `<namespace>.<name>.alerts`."""

    rules: list[AlertRule] = Field(
        default=[],  # a literal default, so the CRD states it and the API server applies it
        max_length=20,
        description="Alert rules; none means no alerts workload.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    webhook_url: SecretValue | None = Field(
        default=None,
        description="Also POST each alert (Slack-compatible JSON) to the URL held in this Secret.",
    )

    @field_validator("rules")
    @classmethod
    def _rule_names_are_unique(cls, rules: list[AlertRule]) -> list[AlertRule]:
        _refuse_duplicates([r.name for r in rules])
        return rules


# --- monitoring -----------------------------------------------------------------------------------

LabelValue = Annotated[str, text(63, min_length=0, pattern=LABEL_VALUE)]
_RESERVED = ", ".join(RESERVED_LABEL_DOMAINS)
# Gold older than this can only be a stuck pipeline; below a minute it is shorter than two scrapes.
GOLD_FRESHNESS_MIN, GOLD_FRESHNESS_MAX = "1m", "24h"
_GOLD_FRESHNESS_BOUNDS = (duration_seconds(GOLD_FRESHNESS_MIN), duration_seconds(GOLD_FRESHNESS_MAX))


class MonitoringSpec(ApiModel):
    """The pipeline's ServiceMonitor and PrometheusRule, made where the Prometheus Operator runs."""

    labels: dict[str, LabelValue] = Field(
        default={},  # a literal default, so the CRD states it and the API server applies it
        max_length=MAX_EXTRA_LABELS,
        description=(
            "More labels of the ServiceMonitor and the PrometheusRule, over the operator's own "
            "(MARKETPULSE_SERVICE_MONITOR_LABELS, MARKETPULSE_PROMETHEUS_RULE_LABELS), e.g. "
            "release: kube-prometheus-stack for the Prometheus that selects by it; at most "
            f"{MAX_EXTRA_LABELS}, none under {_RESERVED}."
        ),
    )

    # No schema pattern: the rule below says what a duration is, in the same words here and at admission.
    gold_freshness_objective: Annotated[str, text(16)] = Field(
        default="10m",
        description=(
            "How old gold may be, from a tick sent by ingest to the tick in gold, before the "
            "MarketPulseGoldStale and MarketPulseSymbolGoldStale alerts fire; gold that has not grown "
            "for three times this while ingest is acknowledging ticks fires MarketPulsePipelineSilent. "
            f"A duration of {GOLD_FRESHNESS_MIN} to {GOLD_FRESHNESS_MAX} in hours, minutes and seconds, "
            "e.g. 5m, 90s, 1h30m; in cron mode, longer than the schedule's period (by default 5 minutes) "
            "plus a run."
        ),
    )

    @rule(
        cel=(
            f"self.goldFreshnessObjective.matches('{DURATION}')"
            f" && duration(self.goldFreshnessObjective) >= duration('{GOLD_FRESHNESS_MIN}')"
            f" && duration(self.goldFreshnessObjective) <= duration('{GOLD_FRESHNESS_MAX}')"
        ),
        message=(
            f"monitoring.goldFreshnessObjective must be a duration from {GOLD_FRESHNESS_MIN} to "
            f"{GOLD_FRESHNESS_MAX} in hours, minutes and seconds, e.g. 5m, 90s or 1h30m"
        ),
        field_path=".goldFreshnessObjective",
    )
    def _gold_freshness_objective_is_a_bounded_duration(self) -> bool:
        seconds = duration_seconds(self.gold_freshness_objective)
        low, high = _GOLD_FRESHNESS_BOUNDS
        return seconds is not None and low is not None and high is not None and low <= seconds <= high

    @property
    def gold_freshness_seconds(self) -> int:
        """The objective in seconds (the rule above has made sure it is a duration)."""
        return duration_seconds(self.gold_freshness_objective) or 0

    @rule(
        cel=f"self.labels.all(k, k.matches('{QUALIFIED_NAME}'))",
        message=(
            "monitoring.labels keys must be label names: an optional DNS prefix and '/', then up to 63 "
            "letters, digits, '-', '_' or '.', e.g. release or example.com/team"
        ),
        field_path=".labels",
    )
    def _label_keys_are_names(self) -> bool:
        return all(re.fullmatch(QUALIFIED_NAME, key) for key in self.labels)

    @rule(
        cel=f"self.labels.all(k, !k.matches('{RESERVED_LABEL_KEY}'))",
        message=(
            f"monitoring.labels may not set labels under {_RESERVED} or their sub-domains "
            "(app.kubernetes.io/instance, app.kubernetes.io/managed-by, ...): the operator selects "
            "and prunes the pipeline's objects by them"
        ),
        field_path=".labels",
        reason="FieldValueForbidden",
    )
    def _no_reserved_labels(self) -> bool:
        return not any(re.match(RESERVED_LABEL_KEY, key) for key in self.labels)


# --- spec -----------------------------------------------------------------------------------------


def _refuse_duplicates(values: list[str]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            # Same wording as the API server for an x-kubernetes-list-type set or map.
            raise PydanticCustomError(RULE_ERROR, f'Duplicate value: "{value}"', {"field_path": f"[{index}]"})
        seen.add(value)


class StockPipelineSpec(ApiModel):
    """A watchlist of symbols and the few choices that turn it into a running pipeline."""

    watchlist: list[Ticker] = Field(
        min_length=1,
        max_length=MAX_SYMBOLS,
        description="Ticker symbols to follow, upper-case and unique, e.g. AAPL, BRK.B.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    source: SourceSpec = optional_object(SourceSpec, "Where ticks come from.")
    kafka: KafkaSpec = optional_object(KafkaSpec, "The pipeline's Kafka topics.")
    storage: StorageSpec = optional_object(StorageSpec, "The S3 bucket of the pipeline.")
    warehouse: WarehouseSpec = optional_object(WarehouseSpec, "The warehouse that holds silver and gold.")
    transform: TransformSpec = optional_object(TransformSpec, "The load + dbt build workload.")
    dashboard: DashboardSpec = optional_object(DashboardSpec, "The Streamlit dashboard.")
    alerts: AlertsSpec = optional_object(AlertsSpec, "Alert rules.")
    monitoring: MonitoringSpec = optional_object(
        MonitoringSpec, "The pipeline's ServiceMonitor and PrometheusRule (Prometheus Operator)."
    )
    suspend: Bool = Field(
        default=False, description="Scale the workloads to zero and suspend the CronJob; data is kept."
    )
    deletion_policy: DeletionPolicy = Field(
        default="Retain",
        description="On deletion, Retain keeps the topics and the bucket; Delete removes them.",
    )

    @field_validator("watchlist")
    @classmethod
    def _symbols_are_unique(cls, watchlist: list[str]) -> list[str]:
        _refuse_duplicates(watchlist)
        return watchlist

    @rule(
        cel=(
            "self.source.type != 'finnhub' || !has(self.source.finnhub) || "
            "size(self.watchlist) <= self.source.finnhub.callsPerMinute"
        ),
        message=(
            "watchlist holds more symbols than source.finnhub.callsPerMinute: while the websocket is down "
            "each symbol is polled over REST at least once a minute, so the watchlist may hold at most "
            "callsPerMinute symbols (60 on Finnhub's free tier); shorten it or raise callsPerMinute"
        ),
        field_path=".watchlist",
    )
    def _watchlist_fits_the_finnhub_budget(self) -> bool:
        finnhub = self.source.finnhub
        return (
            self.source.type != "finnhub"
            or finnhub is None
            or len(self.watchlist) <= finnhub.calls_per_minute
        )


# --- status ---------------------------------------------------------------------------------------


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: Annotated[str, text(316, pattern=r"^[A-Za-z][A-Za-z0-9]*$")] = Field(
        description=(
            "Topics, Bucket, Ingest, Archive, Transform, Dashboard, Alerts, Ready overall, FullRefresh "
            "once one is requested, or Cleanup while the pipeline is being deleted."
        )
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Annotated[str, text(1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")] = Field(
        description="CamelCase reason for the last transition."
    )
    message: Annotated[str, text(32_768, min_length=0)] = Field(
        default="", description="Human-readable details."
    )
    last_transition_time: Timestamp = Field(description="When status last changed.")
    observed_generation: Annotated[Integer, Field(ge=0)] | None = Field(
        default=None, description="The .metadata.generation the condition was set for."
    )


class SymbolFreshness(ApiModel):
    """When the pipeline last saw a tick of one symbol."""

    symbol: Ticker = Field(description="Ticker symbol.")
    last_tick_time: Timestamp | None = Field(
        default=None, description="Event time of the newest tick archived."
    )


class StockPipelineStatus(ApiModel):
    """What the operator observed; written only through the status subresource."""

    observed_generation: Annotated[Integer, Field(ge=0)] | None = Field(
        default=None, description="The .metadata.generation this status describes."
    )
    phase: Phase = Field(
        default="Pending",
        description=(
            "Pending, Provisioning, Ready, Degraded, Suspended or Failed; Deleting while its deletionPolicy "
            "is carried out (the Cleanup condition says how far)."
        ),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        description="One condition per concern plus Ready.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    topics: list[Annotated[str, text(249)]] = Field(
        default_factory=list, max_length=8, description="Kafka topics of the pipeline."
    )
    bucket: Annotated[str, text(63)] | None = Field(default=None, description="S3 bucket of the pipeline.")
    dashboard_url: Annotated[str, text(2048)] | None = Field(
        default=None, description="URL of the dashboard."
    )
    last_full_refresh: Timestamp | None = Field(
        default=None,
        description=(
            "When a full refresh was last requested with the annotation marketpulse.io/full-refresh: "
            '"true"; the transform rebuilds silver and gold from bronze once for each such request.'
        ),
    )
    freshness: list[SymbolFreshness] = Field(
        default_factory=list,
        max_length=MAX_SYMBOLS,
        description="Newest tick per symbol, where known.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["symbol"]},
    )


# --- the resource ---------------------------------------------------------------------------------


class ObjectMeta(ApiModel):
    """The part of metadata the API reads; everything else the API server sets is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, text(253)] = Field(description="Name of the pipeline.")
    namespace: DnsLabel | None = Field(default=None, description="Namespace of the pipeline.")


class StockPipeline(ApiModel):
    """A real-time stock-market pipeline: ingest, archive, transform, dashboard and alerts for a watchlist."""

    api_version: Literal["marketpulse.io/v1alpha1"] = Field(
        default="marketpulse.io/v1alpha1", description="marketpulse.io/v1alpha1"
    )
    kind: Literal["StockPipeline"] = Field(default="StockPipeline", description="StockPipeline")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: StockPipelineSpec = Field(description="The desired pipeline.")
    status: StockPipelineStatus | None = Field(
        default=None, description="The observed state of the pipeline."
    )

    @rule(
        cel=(
            f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && self.metadata.name.matches('{NAME_PATTERN}')"
        ),
        message=(
            f"metadata.name must be at most {MAX_NAME_LENGTH} characters of lower-case letters, digits "
            "and '-', starting with a letter, so that the pipeline's Services, CronJob and topics "
            "can be named after it"
        ),
        field_path=".metadata.name",
    )
    def _name_fits_children(self) -> bool:
        name = self.metadata.name
        return len(name) <= MAX_NAME_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None

    def to_manifest(self) -> dict[str, Any]:
        """The resource as it goes on the wire: camelCase, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
