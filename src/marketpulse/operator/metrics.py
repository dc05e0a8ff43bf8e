"""The operator's Prometheus metrics (marketpulse_operator_*)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "marketpulse_operator_reconciles_total",
    "Reconciles of a StockPipeline, by what triggered them.",
    ["trigger"],
)
ERRORS = Counter(
    "marketpulse_operator_reconcile_errors_total",
    "Reconciles that failed, by trigger and kind (temporary, permanent, refused, apply, unexpected).",
    ["trigger", "error"],
)
DURATION = Histogram(
    "marketpulse_operator_reconcile_duration_seconds",
    "Time to reconcile one StockPipeline.",
    ["trigger"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
PIPELINES = Gauge(
    "marketpulse_operator_pipelines",
    "StockPipelines this operator reconciles, by phase.",
    ["phase"],
)
API_WRITES = Counter(
    "marketpulse_operator_api_writes_total",
    "Writes to the Kubernetes API (apply, patch, delete, status), by object kind and verb.",
    ["kind", "verb"],
)
BACKEND_WRITES = Counter(
    "marketpulse_operator_backend_writes_total",
    "Changes made outside Kubernetes (Kafka topics, S3 buckets), by backend and action.",
    ["backend", "action"],
)

PHASES = ("Pending", "Provisioning", "Ready", "Degraded", "Suspended", "Failed")


def api_writes() -> float:
    """Total Kubernetes API writes so far (for tests and the benchmark)."""
    return sum(api_writes_by_kind().values())


def api_writes_by_kind() -> dict[str, float]:
    """Kubernetes API writes so far as "Kind/verb" -> count, to say which write happened."""
    return {
        f"{sample.labels['kind']}/{sample.labels['verb']}": sample.value
        for metric in API_WRITES.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }


class PhaseBook:
    """Phase of each pipeline, so the gauge counts pipelines rather than reconciles."""

    def __init__(self) -> None:
        self._phases: dict[str, str] = {}
        for phase in PHASES:
            PIPELINES.labels(phase).set(0)

    def set(self, uid: str, phase: str | None) -> None:
        if phase is None:
            self._phases.pop(uid, None)
        else:
            self._phases[uid] = phase
        for known in PHASES:
            PIPELINES.labels(known).set(sum(1 for p in self._phases.values() if p == known))
