"""A small async facade over the Kubernetes API: server-side apply, get, list, delete, discovery.

The official client is synchronous; calls run on a private thread pool so that a reconcile can
read and apply all children of a pipeline concurrently without blocking kopf's event loop.
Every write is counted in `marketpulse_operator_api_writes_total`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from marketpulse.operator.builders import Capabilities
from marketpulse.operator.metrics import API_WRITES
from marketpulse.operator.names import FIELD_MANAGER
from marketpulse.operator.threads import in_pool

# Plurals of every kind the operator touches; discovery is only used for what may be absent.
PLURALS = {
    "Deployment": "deployments",
    "CronJob": "cronjobs",
    "Service": "services",
    "Ingress": "ingresses",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Secret": "secrets",
    "Namespace": "namespaces",
    "NetworkPolicy": "networkpolicies",
    "Pod": "pods",
    "Event": "events",
    "KafkaTopic": "kafkatopics",
    "KafkaUser": "kafkausers",
    "ServiceMonitor": "servicemonitors",
    "PrometheusRule": "prometheusrules",
    "StockPipeline": "stockpipelines",
    "KopfPeering": "kopfpeerings",
    "ClusterKopfPeering": "clusterkopfpeerings",
}

STRIMZI_GROUP = "kafka.strimzi.io"
MONITORING_GROUP = "monitoring.coreos.com"
# Preferred first: Strimzi 1.x serves only v1, 0.4x only v1beta2.
STRIMZI_VERSIONS = ("v1", "v1beta2")


class KubeError(Exception):
    """The API server refused a request; `status` is its HTTP status, `message` its explanation."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @property
    def transient(self) -> bool:
        # 409 on apply means a conflict with another writer; trying again resolves it.
        return self.status in (0, 409, 429) or self.status >= 500

    @classmethod
    def from_api(cls, exc: ApiException) -> KubeError:
        message = str(exc.reason or "")
        reason = str(exc.reason or "")
        try:
            body = json.loads(exc.body or "{}")
            message, reason = body.get("message", message), body.get("reason", reason)
        except (TypeError, ValueError):
            pass
        return cls(int(exc.status or 0), reason, message)


def load_configuration(kubeconfig: Path | None) -> client.Configuration:
    """The API server and credentials: a kubeconfig file when given, else the pod's ServiceAccount."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    # A pipeline reads and applies ~15 objects at once.
    configuration.connection_pool_maxsize = 32
    return configuration


def bearer_token(configuration: client.Configuration) -> str | None:
    """The bearer token the client sends, without its scheme; None when it authenticates otherwise.

    `auth_settings()` resolves it wherever the client keeps it and refreshes an in-cluster token. The
    scheme comes as the source wrote it: "Bearer" from a kubeconfig, "bearer" from load_incluster_config.
    """
    value = str(configuration.auth_settings().get("BearerToken", {}).get("value") or "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer":
        value = token.strip()
    return value or None


def object_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{PLURALS[kind]}" if namespace else f"{base}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Ref:
        meta = manifest["metadata"]
        return cls(manifest["apiVersion"], manifest["kind"], meta.get("namespace", ""), meta["name"])

    @property
    def path(self) -> str:
        return object_path(self.api_version, self.kind, self.namespace, self.name)


class KubeApi:
    def __init__(self, configuration: client.Configuration, *, workers: int = 16) -> None:
        self.api_client = client.ApiClient(configuration)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api_client.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = self.api_client.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=(5, 30),
            )
        except ApiException as exc:
            raise KubeError.from_api(exc) from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # the API server is (re)starting
            raise KubeError(0, "Unreachable", str(exc)) from None
        data = response.data
        return json.loads(data) if data else None

    async def _run(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        return await in_pool(self._pool, lambda: self._call(method, path, **kwargs))

    async def get(self, ref: Ref) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        try:
            return await self._run("GET", ref.path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        found = await self._run(
            "GET", object_path(api_version, kind, namespace), query=[("labelSelector", selector)]
        )
        return list((found or {}).get("items", []))

    async def iter_objects(
        self, api_version: str, kind: str, namespace: str, *, page: int = 200
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object of `kind` (in every namespace when `namespace` is ""), `page` at a time, so
        that a large listing is never held whole."""
        token = ""
        while True:
            query = [("limit", str(page))] + ([("continue", token)] if token else [])
            found = await self._run("GET", object_path(api_version, kind, namespace), query=query) or {}
            for item in found.get("items", []):
                yield item
            token = str((found.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, taking over conflicting fields."""
        ref = Ref.of(manifest)
        API_WRITES.labels(ref.kind, "apply").inc()
        applied = await self._run(
            "PATCH",
            ref.path,
            body=manifest,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return applied or {}

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create the object; None when it exists already (for what must be made once, never updated:
        server-side apply would overwrite it)."""
        ref = Ref.of(manifest)
        API_WRITES.labels(ref.kind, "create").inc()
        try:
            return await self._run(
                "POST",
                object_path(ref.api_version, ref.kind, ref.namespace),
                body=manifest,
                query=[("fieldManager", FIELD_MANAGER)],
                content_type="application/json",
            )
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    async def merge_patch(self, ref: Ref, patch: dict[str, Any]) -> None:
        API_WRITES.labels(ref.kind, "patch").inc()
        await self._run("PATCH", ref.path, body=patch, content_type="application/merge-patch+json")

    async def patch_status(self, ref: Ref, changes: dict[str, Any]) -> None:
        """Merge `changes` into the status subresource (a None value removes that key)."""
        API_WRITES.labels(ref.kind, "status").inc()
        await self._run(
            "PATCH",
            f"{ref.path}/status",
            body={"status": changes},
            content_type="application/merge-patch+json",
        )

    async def delete(self, ref: Ref) -> bool:
        """Delete in the background (dependents go by garbage collection); False if already gone."""
        API_WRITES.labels(ref.kind, "delete").inc()
        try:
            await self._run("DELETE", ref.path, body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def served_versions(self, group: str) -> list[str]:
        try:
            found = await self._run("GET", f"/apis/{group}")
        except KubeError as exc:
            if exc.status == 404:
                return []
            raise
        return [v["version"] for v in (found or {}).get("versions", [])]

    async def serves(self, api_version: str, kind: str) -> bool:
        try:
            found = await self._run("GET", f"/apis/{api_version}")
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.get("kind") == kind for r in (found or {}).get("resources", []))

    async def discover(self) -> Capabilities:
        """Which optional kinds the cluster serves, preferring the newest Strimzi version."""

        async def strimzi(kind: str) -> str | None:
            for version in STRIMZI_VERSIONS:
                if await self.serves(f"{STRIMZI_GROUP}/{version}", kind):
                    return f"{STRIMZI_GROUP}/{version}"
            return None

        topic, user, monitor, rule = await asyncio.gather(
            strimzi("KafkaTopic"),
            strimzi("KafkaUser"),
            self.serves(f"{MONITORING_GROUP}/v1", "ServiceMonitor"),
            self.serves(f"{MONITORING_GROUP}/v1", "PrometheusRule"),
        )
        return Capabilities(topic, user, monitor, rule)

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The base64 data of a Secret (decoded by the caller, never logged)."""
        found = await self._run("GET", object_path("v1", "Secret", namespace, name))
        return dict((found or {}).get("data", {}))
