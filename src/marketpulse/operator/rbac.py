"""Least-privilege RBAC of the operator, as data: the chart renders these rules into its ClusterRole.

No wildcards. A test runs the operator under exactly these rules (a ServiceAccount token, not
admin), so a rule missing here fails a test rather than a user's install.
"""

from __future__ import annotations

from typing import Any

from marketpulse.contract.api import GROUP, PLURAL

PolicyRule = dict[str, list[str]]

_READ = ["get", "list", "watch"]
_MANAGE = ["get", "list", "watch", "create", "patch", "delete"]

CLUSTER_RULES: list[PolicyRule] = [
    # Framework: kopf discovers which resources exist and notices CRDs installed later.
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": _READ},
    # Framework: kopf lists namespaces to serve namespace patterns (--namespace with globs).
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": _READ},
    # Framework: peering, so that two replicas never act at once; the operator creates its
    # peering object at start-up if the chart did not.
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings", "kopfpeerings"],
        "verbs": ["get", "list", "watch", "create", "patch"],
    },
    # Framework: kopf posts Events about handler errors; the operator about transitions.
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
    # Application: the StockPipelines it reconciles (patch for the finalizer and kopf's annotations).
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch"]},
    # Application: the children of a pipeline, applied server-side and pruned when the spec drops them.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _MANAGE},
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": _MANAGE},
    {"apiGroups": [""], "resources": ["services", "persistentvolumeclaims"], "verbs": _MANAGE},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": _MANAGE},
    {"apiGroups": ["kafka.strimzi.io"], "resources": ["kafkatopics", "kafkausers"], "verbs": _MANAGE},
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["servicemonitors", "prometheusrules"],
        "verbs": _MANAGE,
    },
    # Application: storage.credentialsSecret, read to create the bucket, never copied or logged; and,
    # created once (never updated): with direct topics and SCRAM, the pipeline's Kafka password;
    # with MARKETPULSE_S3_IAM not shared, the pipeline's own S3 credentials.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]},
    # Application: the pods of its workloads, watched to say in the status why they cannot run; read only.
    {"apiGroups": [""], "resources": ["pods"], "verbs": _READ},
]


def cluster_role(name: str = "marketpulse-operator") -> dict[str, Any]:
    """The ClusterRole manifest the chart (and the RBAC test) installs."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "marketpulse"}},
        "rules": [dict(rule) for rule in CLUSTER_RULES],
    }


# The chart's pre-delete hook (`marketpulse operator cleanup`) runs under its own account with only these.
CLEANUP_RULES: list[PolicyRule] = [
    # Application: delete the pipelines the operator serves, and list them until it has finalized each.
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["list", "delete"]},
]
