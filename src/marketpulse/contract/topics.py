"""The pipeline's Kafka topics as it wants them, whoever creates them.

The operator turns these plans into Strimzi KafkaTopics or creates them through the admin API
(`topicBackend: direct`); `marketpulse run` creates them the same way on its own broker.

Durability: ingest produces with acks=all, so a tick is acknowledged once `min.insync.replicas`
copies hold it. With replication factor 3 and min.insync.replicas 2, any one broker may fail
without losing an acknowledged tick or refusing writes. Unset replicas become 3, or every broker
when there are fewer (a dev broker of one holds a single copy), once the brokers are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.workloads import PipelineNames

HOUR_MS = 3_600_000
SAFE_REPLICAS = 3
MIN_INSYNC = "min.insync.replicas"


@dataclass(frozen=True)
class TopicPlan:
    """One topic: its name, partitions, replicas (None: settled by `for_brokers`) and topic config."""

    name: str
    partitions: int
    replicas: int | None
    config: dict[str, str] = field(default_factory=dict)


def default_min_insync(replicas: int) -> int:
    """One copy may be missing: a broker's loss neither refuses acks=all writes nor loses them."""
    return max(1, replicas - 1)


def plan_topics(spec: StockPipelineSpec, names: PipelineNames) -> list[TopicPlan]:
    kafka = spec.kafka
    config = {"retention.ms": str(kafka.retention_hours * HOUR_MS)}
    if kafka.replicas is not None:
        config[MIN_INSYNC] = str(kafka.min_insync_replicas or default_min_insync(kafka.replicas))
    return [
        TopicPlan(names.ticks_topic, kafka.partitions, kafka.replicas, config),
        # Dead letters and alerts are rare and want global order more than throughput.
        TopicPlan(names.dlq_topic, 1, kafka.replicas, config),
        TopicPlan(names.alerts_topic, 1, kafka.replicas, config),
    ]


def for_brokers(plan: TopicPlan, brokers: int) -> TopicPlan:
    """`plan` with its replication settled for a cluster of `brokers`; what the spec set wins.

    Replicas unset: 3, or every broker when there are fewer, so that a single dev broker still gets
    its topics; min.insync.replicas one less (at least 1) unless the topic config names it.
    """
    if plan.replicas is not None:
        return plan
    replicas = max(1, min(SAFE_REPLICAS, brokers))
    return replace(
        plan, replicas=replicas, config={MIN_INSYNC: str(default_min_insync(replicas)), **plan.config}
    )
