"""The pipeline's Kafka topics as it wants them, whoever creates them.

The operator turns these plans into Strimzi KafkaTopics or creates them through the admin API
(`topicBackend: direct`); `marketpulse run` creates them the same way on its own broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.workloads import PipelineNames

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicPlan:
    """One topic: its name, partitions, replicas (None: the broker's default) and topic config."""

    name: str
    partitions: int
    replicas: int | None
    config: dict[str, str] = field(default_factory=dict)


def plan_topics(spec: StockPipelineSpec, names: PipelineNames) -> list[TopicPlan]:
    kafka = spec.kafka
    config = {"retention.ms": str(kafka.retention_hours * HOUR_MS)}
    return [
        TopicPlan(names.ticks_topic, kafka.partitions, kafka.replicas, config),
        # Dead letters and alerts are rare and want global order more than throughput.
        TopicPlan(names.dlq_topic, 1, kafka.replicas, config),
        TopicPlan(names.alerts_topic, 1, kafka.replicas, config),
    ]
