"""The Prometheus Operator and one Prometheus on a node, from the operator's own release manifests.

`bundle.yaml` of the operator's module (its CRDs, RBAC, Deployment and Service) is applied with the
namespace and the images changed to the ones built here; a Prometheus then selects every
ServiceMonitor and PrometheusRule in the cluster, as kube-prometheus-stack's does with its selectors
left empty. Its HTTP API is the test's view of what was scraped and which rules were loaded.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from marketpulse_dev.localenv.gobuild import module_source
from marketpulse_dev.localenv.monitoring_binaries import PROMETHEUS_OPERATOR
from marketpulse_dev.localenv.versions import PROMETHEUS_OPERATOR_VERSION, PROMETHEUS_VERSION

NAMESPACE = "monitoring"
PROMETHEUS_NAME = "cluster"
# The Service the operator puts in front of every Prometheus it runs.
OPERATED_SERVICE = "prometheus-operated"
# How often it scrapes and evaluates rules: short, so that tests see firing alerts within seconds.
SCRAPE_INTERVAL = "5s"


@dataclass(frozen=True)
class StackImages:
    operator: str
    config_reloader: str
    prometheus: str


class _BundleLoader(yaml.SafeLoader):
    """YAML 1.2 reads a plain `=` as a string; PyYAML (YAML 1.1) as its `value` tag, which it cannot build."""


def _plain_string(loader: _BundleLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_BundleLoader.add_constructor("tag:yaml.org,2002:value", _plain_string)


@functools.cache
def _bundle() -> tuple[dict[str, Any], ...]:
    module = PROMETHEUS_OPERATOR.own_module
    source = module_source(module, PROMETHEUS_OPERATOR.requires[module])
    text = (source / "bundle.yaml").read_text()
    return tuple(d for d in yaml.load_all(text, Loader=_BundleLoader) if d)


def bundle_documents() -> list[dict[str, Any]]:
    """The operator's release bundle: its CRDs, RBAC, Deployment and Service (a fresh copy each call)."""
    return copy.deepcopy(list(_bundle()))


def operator_manifests(images: StackImages) -> list[dict[str, Any]]:
    """The release bundle in NAMESPACE, running the images built here (present on the node)."""
    documents = bundle_documents()
    for document in documents:
        metadata = document["metadata"]
        if metadata.get("namespace") == "default":
            metadata["namespace"] = NAMESPACE
        for subject in document.get("subjects", []):
            if subject.get("namespace") == "default":
                subject["namespace"] = NAMESPACE
        if document["kind"] == "Deployment":
            (container,) = document["spec"]["template"]["spec"]["containers"]
            container["image"] = images.operator
            container["imagePullPolicy"] = "Never"
            container["args"] = [
                f"--prometheus-config-reloader={images.config_reloader}"
                if arg.startswith("--prometheus-config-reloader=")
                else arg
                for arg in container["args"]
            ]
    return documents


def prometheus_manifests(images: StackImages) -> list[dict[str, Any]]:
    """A Prometheus that selects every ServiceMonitor and PrometheusRule, with the RBAC it needs."""
    meta = {"name": "prometheus", "namespace": NAMESPACE}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "marketpulse-test-prometheus"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "endpoints", "pods"],
                    "verbs": ["get", "list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "marketpulse-test-prometheus"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "marketpulse-test-prometheus",
            },
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": {"name": PROMETHEUS_NAME, "namespace": NAMESPACE},
            "spec": {
                "replicas": 1,
                "image": images.prometheus,
                "version": PROMETHEUS_VERSION,
                "serviceAccountName": "prometheus",
                "scrapeInterval": SCRAPE_INTERVAL,
                "evaluationInterval": SCRAPE_INTERVAL,
                "serviceMonitorSelector": {},
                "serviceMonitorNamespaceSelector": {},
                "ruleSelector": {},
                "ruleNamespaceSelector": {},
                "podMonitorSelector": {},
                "podMonitorNamespaceSelector": {},
                "resources": {"requests": {"memory": "200Mi", "cpu": "100m"}},
            },
        },
    ]


def as_stream(documents: list[dict[str, Any]]) -> str:
    """What `kubectl apply -f -` reads: JSON documents one after another."""
    return "\n".join(json.dumps(d) for d in documents)


def crd_names() -> Iterator[str]:
    for document in bundle_documents():
        if document["kind"] == "CustomResourceDefinition":
            yield document["metadata"]["name"]


__all__ = [
    "NAMESPACE",
    "OPERATED_SERVICE",
    "PROMETHEUS_OPERATOR_VERSION",
    "StackImages",
    "as_stream",
    "crd_names",
    "operator_manifests",
    "prometheus_manifests",
]
