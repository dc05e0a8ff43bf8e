"""The pipeline's NetworkPolicies: its pods accept only what must reach them and call only what
they need.

Ingress: the dashboard's port from the ingress controller's namespaces (and from the chart's `helm
test` pod, by its label in the operator's namespace), the metrics port from the monitoring
namespaces; nothing else (kubelet probes come from the node, which policies do not
filter). Egress: DNS, and the ports of the pipeline's Kafka brokers, S3 endpoint, Snowflake, Finnhub
and alert webhook. A NetworkPolicy cannot name a host, only addresses and ports, and the servers
may be anywhere (a Service in another namespace, a cloud endpoint), so egress is limited by port.
One policy covers all pods of the pipeline: the union of what each needs is still a short list.
Rendered unless the platform turns it off (`BuildContext.network` None).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.workloads import METRICS_PORT, bootstrap_servers
from marketpulse.contract.workloads.names import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from marketpulse.contract.workloads.render import DASHBOARD_PORT
from marketpulse.operator.builders.context import BuildContext, NetworkRules, object_meta

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
DNS_PORT = 53
# The label of the chart's `helm test` pod, which checks that each pipeline's dashboard answers.
DASHBOARD_PROBE_LABEL = "marketpulse.io/dashboard-probe"
HTTPS_PORT = 443


def _url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (HTTPS_PORT if parts.scheme == "https" else 80)


def _server_ports(servers: str) -> set[int]:
    ports = set()
    for server in servers.split(","):
        _, _, port = server.strip().rpartition(":")
        if port.isdigit():
            ports.add(int(port))
    return ports


def egress_ports(spec: StockPipelineSpec, s3_endpoint: str, rules: NetworkRules) -> list[int]:
    """TCP ports the pipeline's pods may call, besides DNS."""
    ports = _server_ports(bootstrap_servers(spec)) | set(rules.extra_egress_ports)
    ports.add(_url_port(spec.storage.endpoint or s3_endpoint))
    source = spec.source
    if source.type == "finnhub":
        ports.add(HTTPS_PORT)
    if source.type == "replay" and source.replay and source.replay.uri.startswith(("http://", "https://")):
        ports.add(_url_port(source.replay.uri))
    if spec.warehouse.type == "snowflake" and spec.warehouse.snowflake is not None:
        endpoint = spec.warehouse.snowflake.endpoint
        ports.add(_url_port(endpoint) if endpoint else HTTPS_PORT)
    if spec.alerts.webhook_url is not None:  # the URL is in a Secret the operator does not read
        ports.add(HTTPS_PORT)
    return sorted(ports)


def _from_namespaces(namespaces: tuple[str, ...]) -> dict[str, Any]:
    selector = {
        "matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": list(namespaces)}]
    }
    return {"namespaceSelector": selector}


def _allow(port: int | str, namespaces: tuple[str, ...]) -> dict[str, Any]:
    return {"from": [_from_namespaces(namespaces)], "ports": [{"protocol": "TCP", "port": port}]}


def build_network_policy(spec: StockPipelineSpec, ctx: BuildContext, rules: NetworkRules) -> dict[str, Any]:
    names = ctx.names
    pods = {LABEL_INSTANCE: names.name, LABEL_MANAGED_BY: MANAGED_BY}
    ingress = [_allow(METRICS_PORT, rules.metrics_from)] if rules.metrics_from else []
    if spec.dashboard.enabled and rules.dashboard_from:
        # Only the dashboard's pods listen on it; the rule is harmless on the others.
        ingress.append(_allow(DASHBOARD_PORT, rules.dashboard_from))
    if spec.dashboard.enabled and rules.dashboard_probe_namespace:
        # Both selectors in one peer: the labelled pods of that namespace only, not any pod anywhere.
        probe = {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: rules.dashboard_probe_namespace}},
            "podSelector": {"matchLabels": {DASHBOARD_PROBE_LABEL: "true"}},
        }
        ingress.append({"from": [probe], "ports": [{"protocol": "TCP", "port": DASHBOARD_PORT}]})
    dns = [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]
    calls = [{"protocol": "TCP", "port": p} for p in egress_ports(spec, ctx.platform.s3_endpoint, rules)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(names.network_policy, ctx, "network"),
        "spec": {
            "podSelector": {"matchLabels": pods},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [{"ports": dns}, {"ports": calls}],
        },
    }
