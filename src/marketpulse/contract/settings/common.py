"""Environment variables every workload reads. The operator and the local executor set the same ones.

Names are the contract between the renderer of workloads and the workloads themselves; each
workload adds its own settings class on top of `CommonSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from marketpulse.contract.ticks.model import TICKER

# Every workload's settings class states this itself: a class that mixes in a block (S3, warehouse)
# would otherwise take the block's empty prefix and stop reading its MARKETPULSE_* variables.
# How a process writes its log lines (runtime/logs.py): auto is text on a terminal, JSON elsewhere.
LogFormat = Literal["auto", "json", "text"]

WORKLOAD_CONFIG = SettingsConfigDict(env_prefix="MARKETPULSE_", extra="ignore", populate_by_name=True)


class CommonSettings(BaseSettings):
    model_config = WORKLOAD_CONFIG

    pipeline: str = "demo"
    namespace: str = "default"
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "MARKETPULSE_KAFKA_BOOTSTRAP_SERVERS"),
    )
    # Set by the operator when the pipeline's KafkaUser authenticates with SCRAM (Strimzi).
    kafka_security_protocol: str = Field(
        "PLAINTEXT", validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: str = Field("", validation_alias=AliasChoices("KAFKA_SASL_MECHANISM"))
    kafka_sasl_username: str = Field("", validation_alias=AliasChoices("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: str = Field("", validation_alias=AliasChoices("KAFKA_SASL_PASSWORD"), repr=False)
    ticks_topic: str = ""
    dlq_topic: str = ""
    watchlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_port: int = Field(9102, ge=0, le=65535)
    # Loopback unless told otherwise: on a laptop nothing but this machine reaches /metrics. The
    # renderer sets 0.0.0.0 for pods, where Prometheus scrapes the pod's address.
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: LogFormat = Field(
        "auto", description="json (pods), text (a terminal) or auto: text when stderr is a terminal."
    )

    @field_validator("watchlist", mode="before")
    @classmethod
    def _split_watchlist(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("watchlist")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not TICKER.match(s)]
        if bad:
            raise ValueError(f"not upper-case tickers: {', '.join(bad)}")
        return value

    def kafka_config(self) -> dict[str, str]:
        """librdkafka settings every client of this workload shares."""
        config = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            config |= {
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": self.kafka_sasl_username,
                "sasl.password": self.kafka_sasl_password,
            }
        return config

    @property
    def topic_prefix(self) -> str:
        return f"{self.namespace}.{self.pipeline}"

    @property
    def resolved_ticks_topic(self) -> str:
        return self.ticks_topic or f"{self.topic_prefix}.ticks"

    @property
    def resolved_dlq_topic(self) -> str:
        return self.dlq_topic or f"{self.resolved_ticks_topic}.dlq"


def env(name: str) -> AliasChoices:
    """A block's field read from the variable `name` whatever the prefix of the class it is mixed into
    (Python code sets it by the field's name: populate_by_name)."""
    return AliasChoices(name)


class S3Settings(BaseSettings):
    """The pipeline's bucket and the S3 service that holds it: the archive, the transform, the
    dashboard and ingest (for an s3:// replay file) read this one block."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    s3_endpoint: str = Field("http://127.0.0.1:7070", validation_alias=env("S3_ENDPOINT"))
    s3_access_key: str = Field("", validation_alias=env("S3_ACCESS_KEY"))
    s3_secret_key: SecretStr = Field(SecretStr(""), validation_alias=env("S3_SECRET_KEY"))
    s3_region: str = Field("us-east-1", validation_alias=env("S3_REGION"))
    bucket: str = Field("", validation_alias=AliasChoices("MARKETPULSE_BUCKET", "bucket"))


Warehouse = Literal["duckdb", "snowflake"]


class WarehouseSettings(BaseSettings):
    """The warehouse and, for Snowflake, where and as whom to connect: the `SNOWFLAKE_*` variables the
    renderer sets for the transform and the dashboard (and dbt's profile reads). Checks that depend on
    the warehouse being Snowflake are the reader's (the transform refuses to start, the dashboard says
    so on the page). `warehouse` comes first, so that those checks see it."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    warehouse: Warehouse = Field("duckdb", validation_alias=env("MARKETPULSE_WAREHOUSE"))

    snowflake_account: str = Field("", validation_alias=env("SNOWFLAKE_ACCOUNT"))
    snowflake_user: str = Field("", validation_alias=env("SNOWFLAKE_USER"))
    # Key-pair authentication (the operator mounts the key file), or a password. The key comes first:
    # the transform's check of the password looks at it.
    snowflake_private_key_path: Path | None = Field(None, validation_alias=env("SNOWFLAKE_PRIVATE_KEY_PATH"))
    snowflake_private_key_passphrase: SecretStr | None = Field(
        None, validation_alias=env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
    )
    snowflake_password: SecretStr | None = Field(None, validation_alias=env("SNOWFLAKE_PASSWORD"))
    snowflake_database: str = Field("MARKETPULSE", validation_alias=env("SNOWFLAKE_DATABASE"))
    snowflake_role: str = Field("", validation_alias=env("SNOWFLAKE_ROLE"))
    snowflake_warehouse: str = Field("", validation_alias=env("SNOWFLAKE_WAREHOUSE"))
    snowflake_host: str = Field("", validation_alias=env("SNOWFLAKE_HOST"))
    snowflake_port: int = Field(443, ge=1, le=65535, validation_alias=env("SNOWFLAKE_PORT"))
    snowflake_protocol: Literal["http", "https"] = Field("https", validation_alias=env("SNOWFLAKE_PROTOCOL"))

    @field_validator("snowflake_password", "snowflake_private_key_passphrase")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() != "" else None

    @field_validator("snowflake_private_key_path", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("snowflake_role", "snowflake_warehouse", "snowflake_host")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()
