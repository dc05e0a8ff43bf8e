"""Every name and label of a pipeline, from one place: topics, bucket, Kubernetes objects, labels.

Both executors and the operator name things through `PipelineNames`, so a topic the operator
creates is the topic the workloads read, and a child object can always be found again by name.
Kubernetes names fit in 63 characters (52 for CronJobs, whose Jobs append 11); the API already
caps pipeline names at 40, and `fit()` keeps that true even for a name that slipped past it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from marketpulse.contract.api import StockPipeline

PART_OF: Final = "marketpulse"
MANAGED_BY: Final = "marketpulse-operator"
APP_NAME: Final = "marketpulse"

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_VERSION: Final = "app.kubernetes.io/version"

MAX_NAME: Final = 63
MAX_CRONJOB_NAME: Final = 52
MAX_BUCKET: Final = 63

COMPONENTS: Final = ("ingest", "archive", "transform", "alerts", "dashboard")


def fit(name: str, limit: int = MAX_NAME) -> str:
    """`name` unchanged when it fits, else cut and suffixed with a stable hash (still unique)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-.')}-{digest}"


def _bucket_safe(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class PipelineNames:
    """Names of everything that belongs to the pipeline `name` in `namespace`."""

    namespace: str
    name: str
    bucket_override: str | None = None

    @property
    def qualified(self) -> str:
        """`<namespace>/<name>`: the pipeline's identity, e.g. in its bucket's owner tag."""
        return f"{self.namespace}/{self.name}"

    # --- data plane ------------------------------------------------------------------------------
    @property
    def topic_prefix(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def ticks_topic(self) -> str:
        return f"{self.topic_prefix}.ticks"

    @property
    def dlq_topic(self) -> str:
        return f"{self.ticks_topic}.dlq"

    @property
    def alerts_topic(self) -> str:
        return f"{self.topic_prefix}.alerts"

    @property
    def topics(self) -> tuple[str, str, str]:
        return (self.ticks_topic, self.dlq_topic, self.alerts_topic)

    @property
    def consumer_group_prefix(self) -> str:
        # Consumer groups are named `<ns>.<pipeline>.<component>` (see ArchiveSettings.group_id).
        return f"{self.topic_prefix}."

    @property
    def bucket(self) -> str:
        """`storage.bucket`, else `mp-<namespace>-<name>-<hash>`: the hash of `namespace/name` keeps
        `team-a/prod` and `team/a-prod` apart, which the readable part alone would not."""
        if self.bucket_override:
            return self.bucket_override
        digest = hashlib.sha256(f"{self.namespace}/{self.name}".encode()).hexdigest()[:8]
        readable = _bucket_safe(f"mp-{self.namespace}-{self.name}")[: MAX_BUCKET - 9].rstrip("-")
        return f"{readable}-{digest}"

    @property
    def legacy_bucket(self) -> str:
        """The bucket derived before the hash was added: kept by pipelines created then."""
        return fit(_bucket_safe(f"mp-{self.namespace}-{self.name}"), MAX_BUCKET)

    # --- Kubernetes objects ----------------------------------------------------------------------
    def workload(self, component: str) -> str:
        """Deployment (or CronJob, for transform) of a component."""
        limit = MAX_CRONJOB_NAME if component == "transform" else MAX_NAME
        return fit(f"{self.name}-{component}", limit)

    def topic_object(self, topic: str) -> str:
        """KafkaTopic object of one of `topics`: `<pipeline>-ticks`, `-ticks-dlq`, `-alerts`."""
        suffix = topic.removeprefix(f"{self.topic_prefix}.").replace(".", "-")
        return fit(f"{self.name}-{suffix}")

    @property
    def kafka_user(self) -> str:
        """The Strimzi KafkaUser (and the Secret its User Operator writes the password into)."""
        return fit(self.name)

    @property
    def kafka_scram_user(self) -> str:
        """The SCRAM user the operator makes with the direct backend: `<namespace>.<name>`. One broker
        serves every namespace, so a bare pipeline name would let `demo` of two teams share one
        principal and each other's ACLs; names hold no dots, so this is unique."""
        return self.topic_prefix

    @property
    def kafka_secret(self) -> str:
        """The Secret holding the direct backend's SCRAM password (key `password`)."""
        return fit(f"{self.name}-kafka")

    @property
    def s3_secret(self) -> str:
        """Secret of the pipeline's own S3 account (when the platform issues them): its workloads'."""
        return fit(f"{self.name}-s3")

    @property
    def s3_readonly_secret(self) -> str:
        """Secret of the pipeline's read-only S3 account: its dashboard's."""
        return fit(f"{self.name}-s3-readonly")

    @property
    def warehouse_claim(self) -> str:
        return fit(f"{self.name}-warehouse")

    @property
    def dashboard_service(self) -> str:
        return self.workload("dashboard")

    @property
    def metrics_service(self) -> str:
        return fit(f"{self.name}-metrics")

    @property
    def network_policy(self) -> str:
        return fit(self.name)

    @property
    def monitoring(self) -> str:
        """ServiceMonitor and PrometheusRule."""
        return fit(self.name)

    # --- labels ----------------------------------------------------------------------------------
    def selector(self, component: str | None = None) -> dict[str, str]:
        """The stable labels that select a component's pods (never changes for a running pipeline)."""
        labels = {LABEL_NAME: APP_NAME, LABEL_INSTANCE: self.name}
        if component is not None:
            labels[LABEL_COMPONENT] = component
        return labels

    def labels(self, component: str) -> dict[str, str]:
        return {**self.selector(component), LABEL_PART_OF: PART_OF, LABEL_MANAGED_BY: MANAGED_BY}

    @property
    def owned_selector(self) -> str:
        """Label selector of every object the operator made for this pipeline."""
        return f"{LABEL_INSTANCE}={self.name},{LABEL_MANAGED_BY}={MANAGED_BY}"


def names_for(pipeline: StockPipeline, recorded_bucket: str | None = None) -> PipelineNames:
    """The names of a pipeline's children, topics and bucket, from its metadata and spec.

    `recorded_bucket` is the bucket the operator recorded in the pipeline's status: a pipeline created
    when bucket names were derived without a hash keeps that bucket (`legacy_bucket`)."""
    names = PipelineNames(
        namespace=pipeline.metadata.namespace or "default",
        name=pipeline.metadata.name,
        bucket_override=pipeline.spec.storage.bucket,
    )
    if (
        names.bucket_override is None
        and recorded_bucket is not None
        and recorded_bucket == names.legacy_bucket
    ):
        return PipelineNames(names.namespace, names.name, bucket_override=recorded_bucket)
    return names
