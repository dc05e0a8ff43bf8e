"""Environment variables every workload reads. The operator and the local executor set the same ones.

Names are the contract between the renderer of workloads and the workloads themselves; each
workload adds its own settings class on top of `CommonSettings`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from marketpulse.contract.ticks.model import TICKER


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKETPULSE_", extra="ignore", populate_by_name=True)

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
    log_level: str = "INFO"

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


class S3Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    s3_endpoint: str = "http://127.0.0.1:7070"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    bucket: str = Field("", validation_alias=AliasChoices("MARKETPULSE_BUCKET", "bucket"))
