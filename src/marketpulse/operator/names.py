"""Names and labels of a pipeline's children: the one module, shared with the local executor."""

from marketpulse.contract.workloads.names import (
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    MAX_CRONJOB_NAME,
    MAX_NAME,
    PART_OF,
    PipelineNames,
    fit,
)

FIELD_MANAGER = "marketpulse-operator"
# Hash of the manifest last applied: an unchanged desired state is recognised without a write.
APPLIED_HASH = "marketpulse.io/applied-hash"

__all__ = [
    "APPLIED_HASH",
    "FIELD_MANAGER",
    "LABEL_COMPONENT",
    "LABEL_INSTANCE",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_PART_OF",
    "MANAGED_BY",
    "MAX_CRONJOB_NAME",
    "MAX_NAME",
    "PART_OF",
    "PipelineNames",
    "fit",
]
