"""The operator's own settings, from environment variables, read once at start-up.

`S3_*` are the operator's credentials for managing buckets (the same names the workloads use);
`MARKETPULSE_*` choose the image and the defaults a StockPipeline may leave unset.
"""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Literal

from kubernetes.utils import parse_quantity
from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketpulse.contract.api.formats import label_problems
from marketpulse.contract.settings.common import LogFormat
from marketpulse.contract.workloads import PipelineNames, Platform, ScratchSizes
from marketpulse.operator.builders.context import (
    RUNBOOK_BASE_URL,
    BuildContext,
    Capabilities,
    MonitoringLabels,
    NetworkRules,
)
from marketpulse.operator.deletion_budget import CleanupBudget
from marketpulse.operator.policy import EndpointPolicy, parse_patterns


def _default_image() -> str:
    try:
        tag = dist_version("marketpulse")
    except PackageNotFoundError:  # running from a source tree that was never installed
        tag = "latest"
    return f"ghcr.io/marketpulse/marketpulse:{tag}"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKETPULSE_", extra="ignore", populate_by_name=True)

    image: str = Field(default_factory=_default_image, description="Image of every workload.")
    image_pull_policy: str = "IfNotPresent"
    # Numeric, so that the kubelet can check runAsNonRoot without reading the image.
    run_as_user: int = Field(10001, ge=1)

    s3_endpoint: str = Field(
        "http://minio.marketpulse.svc:9000", validation_alias=AliasChoices("S3_ENDPOINT", "s3_endpoint")
    )
    s3_region: str = Field("us-east-1", validation_alias=AliasChoices("S3_REGION", "s3_region"))
    s3_access_key: str = Field("", validation_alias=AliasChoices("S3_ACCESS_KEY", "s3_access_key"))
    s3_secret_key: str = Field("", validation_alias=AliasChoices("S3_SECRET_KEY", "s3_secret_key"))
    # Workloads read the same credentials from this Secret (never copied by the operator).
    s3_credentials_secret: str = "marketpulse-s3"  # noqa: S105 - the name of a Secret, not a secret
    s3_iam: Literal["shared", "versitygw", "minio"] = Field(
        "shared",
        description="shared: workloads use the platform's S3 credentials; versitygw or minio: the "
        "operator issues each pipeline its own accounts, limited to its bucket, through that server's "
        "admin API (a read-only one for the dashboard).",
    )
    s3_admin_endpoint: str = Field(
        "", description="The S3 server's admin API when it is not on s3_endpoint (versitygw --admin-port)."
    )

    kubeconfig: Path | None = Field(
        None,
        validation_alias=AliasChoices("KUBECONFIG", "kubeconfig"),
        description="Unset means in-cluster: the pod's ServiceAccount.",
    )
    resync_seconds: float = Field(60.0, gt=0, description="Interval of the periodic reconcile.")
    child_refresh_seconds: float = Field(
        1.0,
        ge=0,
        description="Wait after a child changes before reconciling its pipeline; changes meanwhile coalesce.",
    )
    metrics_port: int = Field(8080, ge=0, le=65535, description="0 turns the metrics endpoint off.")
    health_port: int = Field(8081, ge=0, le=65535, description="0 turns the liveness endpoint off.")
    log_format: LogFormat = Field(
        "auto", description="json (pods), text (a terminal) or auto: text when stderr is a terminal."
    )
    kafka_timeout_seconds: float = Field(5.0, gt=0)
    # How the operator's admin client logs in to the brokers of direct-backend pipelines. A broker with
    # an authorizer needs a super user here: it makes topics, SCRAM users and ACLs for every pipeline.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "", validate_default=True
    )
    kafka_sasl_username: str = Field("", validate_default=True)
    kafka_sasl_password: SecretStr = Field(SecretStr(""), validate_default=True)

    # What a StockPipeline may name (see operator/policy.py): comma-separated `host`, `host:port`,
    # `.suffix` (sub-domains) or `*`. The operator's own s3_endpoint is always allowed.
    allowed_s3_endpoints: str = Field("", description="S3 endpoints a spec may name.")
    allowed_kafka_servers: str = Field("", description="Kafka brokers a spec may name (host[:port]).")
    allowed_snowflake_hosts: str = Field(
        ".snowflakecomputing.com", description="Snowflake endpoint hosts a spec may name."
    )
    allow_plain_http: bool = Field(False, description="Allow http:// (not https) endpoints in specs.")
    adopt_unowned_buckets: bool = Field(
        False,
        description="Let a pipeline use (never delete) an existing bucket no pipeline's owner tag claims.",
    )

    # Each pipeline's NetworkPolicy (operator/builders/network.py); namespaces comma-separated.
    network_policies: bool = Field(True, description="Render a NetworkPolicy for each pipeline's pods.")
    network_dashboard_from: str = Field(
        "ingress-nginx,traefik", description="Namespaces (ingress controllers) that may reach dashboards."
    )
    network_metrics_from: str = Field("monitoring", description="Namespaces that may scrape metrics.")
    network_dashboard_probe_namespace: str = Field(
        "",
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
        max_length=63,
        description="Namespace whose pods labelled marketpulse.io/dashboard-probe=true may reach "
        "dashboards (the chart's, for `helm test`); empty: none.",
    )
    network_extra_egress_ports: str = Field(
        "",
        pattern=r"^\s*(\d{1,5}\s*(,\s*\d{1,5}\s*)*)?$",
        description="More TCP ports the pipelines' pods may call (an in-cluster webhook, a proxy).",
    )

    @field_validator("network_extra_egress_ports")
    @classmethod
    def _ports_in_range(cls, value: str) -> str:
        wrong = [p for p in parse_patterns(value) if not 0 < int(p) < 65536]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: a TCP port is 1-65535")
        return value

    # Labels the platform's Prometheus selects monitors and rules by (kube-prometheus-stack: release).
    service_monitor_labels: dict[str, str] = Field(
        default_factory=dict,
        description="More labels of every pipeline's ServiceMonitor, a JSON object such as "
        '{"release": "kube-prometheus-stack"}; a pipeline\'s spec.monitoring.labels go over them.',
    )
    prometheus_rule_labels: dict[str, str] = Field(
        default_factory=dict,
        description="More labels of every pipeline's PrometheusRule, a JSON object like the above.",
    )

    runbook_base_url: str = Field(
        RUNBOOK_BASE_URL,
        pattern=r"^https?://[^\s]+[^/\s]$",
        max_length=512,
        description="Where the runbooks are: each alert's runbook_url is <this>/<alert name>.md (a copy of "
        "docs/runbooks, e.g. on an internal wiki or a fork; no trailing '/').",
    )

    @field_validator("service_monitor_labels", "prometheus_rule_labels")
    @classmethod
    def _labels_are_allowed(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        problems = label_problems(value, f"MARKETPULSE_{str(info.field_name).upper()}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def monitoring_labels(self) -> MonitoringLabels:
        return MonitoringLabels(
            service_monitor=dict(self.service_monitor_labels),
            prometheus_rule=dict(self.prometheus_rule_labels),
        )

    # Node disk of the workloads (contract/workloads/scratch.py has the formulas these feed).
    scratch_base: str = Field(
        "64Mi", description="Scratch (/tmp) of every workload for itself: Python and its libraries."
    )
    scratch_gold: str = Field(
        "1Gi", description="Transform scratch for the gold Parquet it writes before publishing (DuckDB mode)."
    )
    scratch_logs: str = Field(
        "64Mi", description="Container logs, counted in ephemeral-storage beside the scratch."
    )

    @field_validator("scratch_base", "scratch_gold", "scratch_logs")
    @classmethod
    def _a_size(cls, value: str) -> str:
        try:
            size = parse_quantity(value)
        except ValueError:
            size = -1
        if size < 0 or size != int(size):
            raise ValueError(f"{value!r}: expected a size in bytes or with a suffix, such as 64Mi or 1Gi")
        return value

    def scratch_sizes(self) -> ScratchSizes:
        return ScratchSizes(
            base=int(parse_quantity(self.scratch_base)),
            gold=int(parse_quantity(self.scratch_gold)),
            logs=int(parse_quantity(self.scratch_logs)),
        )

    cleanup_attempts: int = Field(
        12, ge=1, description="Tries of a failing deletionPolicy cleanup before the pipeline is let go."
    )
    cleanup_permanent_attempts: int = Field(
        3, ge=1, description="Tries when the failure needs someone to act (Secret gone, AccessDenied)."
    )
    cleanup_retry_seconds: float = Field(10.0, gt=0, description="Wait between cleanup tries.")
    workload_stop_timeout_seconds: float = Field(
        120.0, ge=0, description="How long Delete waits for the workloads' pods to stop before deleting data."
    )

    def cleanup_budget(self) -> CleanupBudget:
        return CleanupBudget(
            attempts=self.cleanup_attempts,
            permanent_attempts=min(self.cleanup_permanent_attempts, self.cleanup_attempts),
            retry_seconds=self.cleanup_retry_seconds,
            stop_timeout_seconds=self.workload_stop_timeout_seconds,
        )

    # Field validators, not one over the model: a model's error would echo every input, the password too.
    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _mechanism_needs_sasl(cls, value: str, info: ValidationInfo) -> str:
        protocol = info.data.get("kafka_security_protocol", "")
        if protocol.startswith("SASL_") and not value:
            raise ValueError(f"MARKETPULSE_KAFKA_SECURITY_PROTOCOL {protocol} needs a SASL mechanism")
        if value and not protocol.startswith("SASL_"):
            raise ValueError(
                f"is set but MARKETPULSE_KAFKA_SECURITY_PROTOCOL is {protocol}: "
                "choose SASL_PLAINTEXT or SASL_SSL"
            )
        return value

    @field_validator("kafka_sasl_username")
    @classmethod
    def _username_with_sasl(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("kafka_sasl_mechanism") and not value:
            raise ValueError("MARKETPULSE_KAFKA_SASL_MECHANISM is set, so the admin's user name is needed")
        return value

    @field_validator("kafka_sasl_password")
    @classmethod
    def _password_with_sasl(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("kafka_sasl_mechanism") and not value.get_secret_value():
            raise ValueError("MARKETPULSE_KAFKA_SASL_MECHANISM is set, so the admin's password is needed")
        return value

    def kafka_admin_config(self) -> dict[str, str]:
        """librdkafka settings of the operator's admin client, besides the bootstrap servers."""
        config: dict[str, str] = {"security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            config |= {
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": self.kafka_sasl_username,
                "sasl.password": self.kafka_sasl_password.get_secret_value(),
            }
        return config

    def endpoint_policy(self) -> EndpointPolicy:
        return EndpointPolicy(
            default_s3_endpoint=self.s3_endpoint,
            s3=parse_patterns(self.allowed_s3_endpoints),
            kafka=parse_patterns(self.allowed_kafka_servers),
            snowflake=parse_patterns(self.allowed_snowflake_hosts),
            allow_plain_http=self.allow_plain_http,
        )

    def network_rules(self) -> NetworkRules | None:
        if not self.network_policies:
            return None
        return NetworkRules(
            dashboard_from=parse_patterns(self.network_dashboard_from),
            metrics_from=parse_patterns(self.network_metrics_from),
            extra_egress_ports=tuple(int(p) for p in parse_patterns(self.network_extra_egress_ports)),
            dashboard_probe_namespace=self.network_dashboard_probe_namespace,
        )

    def platform(self) -> Platform:
        return Platform(
            s3_endpoint=self.s3_endpoint,
            s3_region=self.s3_region,
            s3_credentials_secret=self.s3_credentials_secret,
            s3_per_pipeline=self.s3_iam != "shared",
            scratch=self.scratch_sizes(),
        )

    def build_context(
        self, names: PipelineNames, capabilities: Capabilities, *, shared_s3: bool = False
    ) -> BuildContext:
        """What the builders need for one pipeline. `shared_s3`: its workloads use the platform's S3
        credentials even where the platform issues per-pipeline accounts."""
        platform = self.platform()
        if shared_s3:
            platform = replace(platform, s3_per_pipeline=False)
        return BuildContext(
            names=names,
            image=self.image,
            image_pull_policy=self.image_pull_policy,
            run_as_user=self.run_as_user,
            capabilities=capabilities,
            platform=platform,
            network=self.network_rules(),
            monitoring=self.monitoring_labels(),
            runbook_base_url=self.runbook_base_url,
        )
