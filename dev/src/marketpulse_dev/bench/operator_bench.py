"""The operator suite of `marketpulse bench`: StockPipeline apply latency, writes per no-op reconcile,
and the reconcile duration histogram, against a local control plane started for the run.

The real operator (`marketpulse operator run`, kopf) runs as a process, as in a cluster. Baselines are
the same child objects written without an operator, measured in the same run:
- `kubectl apply --server-side` of a batch's children (what one would do by hand: the naive way);
- the floor: the same objects server-side applied straight from this process, 16 at a time (the
  operator's own concurrency), plus one status patch per pipeline. An operator cannot beat it: it
  makes at least these writes, after reading the pipeline.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from marketpulse.contract.api import GROUP, KIND, PLURAL, VERSION
from marketpulse.operator.names import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from marketpulse_dev.bench.report import result_row
from marketpulse_dev.localenv.kube import ControlPlane, ensure_kubectl
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.metrics_text import Samples, parse, sample_sum

SUITE = "operator"
IMAGE = "registry.example/marketpulse:bench"
ROOT = Path(__file__).resolve().parents[4]
CHART_CRDS = ROOT / "charts" / "marketpulse" / "crds"
UPSTREAM_CRDS = ROOT / "k8s-tests" / "upstream-crds"
WATCHLIST = ["AAPL", "MSFT", "NVDA", "AMZN", "BRK.B"]
TARGET_LATENCY = "≤ 2 s"
POLL_SECONDS = 0.02
HISTOGRAM = "marketpulse_operator_reconcile_duration_seconds"
# Server-set fields dropped before the same objects are written again elsewhere for the baselines.
SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "ownerReferences",
)
# (api version, plural, kind) of every child the operator makes for a default pipeline.
CHILD_KINDS = (
    ("apps/v1", "deployments", "Deployment"),
    ("batch/v1", "cronjobs", "CronJob"),
    ("v1", "services", "Service"),
    ("networking.k8s.io/v1", "ingresses", "Ingress"),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("kafka.strimzi.io/v1", "kafkatopics", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "prometheusrules", "PrometheusRule"),
)


@dataclass(frozen=True)
class Sizes:
    batches: tuple[int, ...]
    single_runs: int  # batches of one pipeline, repeated so that its p50/p95 are over several
    noop_pipelines: int
    noop_rounds: int  # timer reconciles of every pipeline counted for writes per no-op reconcile


FULL = Sizes(batches=(1, 10, 50), single_runs=5, noop_pipelines=5, noop_rounds=10)
SHORT = Sizes(batches=(1, 5), single_runs=2, noop_pipelines=2, noop_rounds=3)


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (says what and why)."""


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets, +Inf last."""
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the last finite bound: its bound is the best estimate
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


def duration_buckets(metrics: Samples, trigger: str) -> list[tuple[float, float]]:
    buckets = [
        (float(labels["le"]), value)
        for labels, value in metrics.get(f"{HISTOGRAM}_bucket", [])
        if labels.get("trigger") == trigger
    ]
    return sorted(buckets)


class Cluster:
    """The local control plane with kubectl and a Python client."""

    def __init__(self, plane: ControlPlane, kubectl: Path) -> None:
        self.plane, self.kubectl = plane, kubectl
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=configuration)
        # As the operator's client: 16 writers at once must not each open a new TLS connection.
        configuration.connection_pool_maxsize = 32
        self.api = client.ApiClient(configuration)
        self.objects = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    def kubectl_run(self, *argv: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl), *map(str, argv)],
            env={**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(
                f"kubectl {' '.join(map(str, argv))} exited {result.returncode}: {result.stderr}"
            )
        return result

    def install_crds(self) -> None:
        files = [
            *sorted((UPSTREAM_CRDS / "strimzi").glob("04[0-5]-Crd-*.yaml")),
            *sorted((UPSTREAM_CRDS / "prometheus-operator").glob("*.yaml")),
            *sorted(CHART_CRDS.glob("*.yaml")),
        ]
        files = [f for f in files if "v1beta2" not in f.name]
        for path in files:
            if not path.is_file():
                raise BenchError(f"{path}: CRD file missing; the benchmark runs from a source checkout")
            self.kubectl_run("apply", "--server-side", "--force-conflicts", "-f", path)
        names = [d["metadata"]["name"] for f in files for d in yaml.safe_load_all(f.read_text()) if d]
        self.kubectl_run(
            "wait", "--for=condition=Established", "--timeout=120s", *[f"crd/{n}" for n in names]
        )

    def namespace(self, name: str) -> str:
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return name

    def create_pipeline(self, namespace: str, name: str) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": name},
            "spec": {"watchlist": WATCHLIST},
        }
        self.objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def pipelines(self, namespace: str) -> list[dict[str, Any]]:
        found = self.objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        return list(found["items"])

    def children(self, namespace: str, instance: str | None = None) -> list[dict[str, Any]]:
        """The operator's children in `namespace` (of one pipeline when `instance` is given)."""
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        if instance:
            selector += f",{LABEL_INSTANCE}={instance}"
        found: list[dict[str, Any]] = []
        for api_version, plural, kind in CHILD_KINDS:
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            response = self.api.call_api(
                f"{prefix}/namespaces/{namespace}/{plural}",
                "GET",
                query_params=[("labelSelector", selector)],
                _preload_content=False,
                _return_http_data_only=True,
            )
            for item in json.loads(response.data)["items"]:
                found.append({**item, "apiVersion": api_version, "kind": kind})
        return found

    def deployments_observed(self, namespace: str) -> bool:
        """Every Deployment's status was written for its current generation."""
        deployments = client.AppsV1Api(self.api).list_namespaced_deployment(namespace).items
        return bool(deployments) and all(
            d.status is not None and d.status.observed_generation == d.metadata.generation
            for d in deployments
        )

    def release_cluster_ips(self, namespace: str) -> None:
        """Delete the namespace's Services: the local service range has 254 addresses, the baselines
        would take as many again as the operator's children."""
        for service in self.core.list_namespaced_service(namespace).items:
            self.core.delete_namespaced_service(service.metadata.name, namespace)

    def close(self) -> None:
        self.api.close()


@contextmanager
def running_operator(
    plane: ControlPlane, s3: S3Server, namespace: str, *, resync_seconds: float, log: Path
) -> Iterator[str]:
    """`marketpulse operator run` serving `namespace`; yields its metrics URL."""
    metrics_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        **s3.settings(),
        "KUBECONFIG": str(plane.kubeconfig),
        "MARKETPULSE_IMAGE": IMAGE,
        "MARKETPULSE_METRICS_PORT": str(metrics_port),
        "MARKETPULSE_HEALTH_PORT": str(health_port),
        "MARKETPULSE_RESYNC_SECONDS": str(resync_seconds),
    }
    argv = [
        str(Path(sys.executable).with_name("marketpulse")),
        "operator",
        "run",
        "--standalone",
        "-n",
        namespace,
    ]
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait(
            lambda: _ok(f"http://127.0.0.1:{health_port}/healthz"),
            timeout=60,
            what="the operator's health endpoint",
            log=log,
        )
        yield f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait(predicate: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text().splitlines()[-20:]) if log and log.exists() else ""
            raise BenchError(
                f"timed out after {timeout:g}s waiting for {what}" + (f"\n{tail}" if tail else "")
            )
        time.sleep(POLL_SECONDS)


def scrape(url: str) -> Samples:
    return parse(httpx.get(url, timeout=5).text)


def reconciled(pipeline: dict[str, Any]) -> bool:
    observed = (pipeline.get("status") or {}).get("observedGeneration")
    return bool(observed == pipeline["metadata"]["generation"])


def apply_batch(cluster: Cluster, namespace: str, names: list[str], *, timeout: float) -> list[float]:
    """Create the pipelines; per pipeline, seconds from its create call until its status is written."""
    created: dict[str, float] = {}
    for name in names:
        created[name] = time.monotonic()
        cluster.create_pipeline(namespace, name)
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(names):
        now = time.monotonic()
        for pipeline in cluster.pipelines(namespace):
            name = pipeline["metadata"]["name"]
            if name in created and name not in done and reconciled(pipeline):
                done[name] = now - created[name]
        if now > deadline:
            missing = sorted(set(names) - set(done))
            raise BenchError(f"timed out after {timeout:g}s waiting for the status of {', '.join(missing)}")
        time.sleep(POLL_SECONDS)
    return [done[name] for name in names]


def portable(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A live object as a manifest for another namespace: server-set fields and status dropped."""
    meta = {k: v for k, v in manifest["metadata"].items() if k not in SERVER_FIELDS}
    spec = {k: v for k, v in manifest.items() if k not in ("metadata", "status")}
    if manifest["kind"] == "Service":  # the cluster IP is allocated per object
        spec["spec"] = {k: v for k, v in spec["spec"].items() if k not in ("clusterIP", "clusterIPs")}
    return {**spec, "metadata": {**meta, "namespace": namespace}}


def kubectl_baseline(cluster: Cluster, manifests: list[dict[str, Any]], namespace: str) -> float:
    """Seconds for one `kubectl apply --server-side` of the manifests (process start included)."""
    # JSON, not YAML: kubectl reads YAML 1.2, where an all-digit hash with one "e" is a number.
    text = json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [portable(m, namespace) for m in manifests]}
    )
    started = time.monotonic()
    cluster.kubectl_run("apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", "-", stdin=text)
    return time.monotonic() - started


def floor_baseline(cluster: Cluster, manifests: list[dict[str, Any]], namespace: str, statuses: int) -> float:
    """Seconds to server-side apply the manifests 16 at a time, then patch `statuses` status subresources."""
    documents = [portable(m, namespace) for m in manifests]
    for i in range(statuses):
        cluster.create_pipeline(namespace, f"floor-{i:03d}")

    def apply(document: dict[str, Any]) -> bytes:
        api_version, kind = document["apiVersion"], document["kind"]
        plural = next(p for v, p, k in CHILD_KINDS if v == api_version and k == kind)
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        response = cluster.api.call_api(
            f"{prefix}/namespaces/{namespace}/{plural}/{document['metadata']['name']}",
            "PATCH",
            query_params=[("fieldManager", "marketpulse-bench"), ("force", "true")],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=document,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=(5, 60),
        )
        # Read in full, as the operator's client does, so that the connection goes back to the pool.
        return bytes(response.data)

    def status(i: int) -> None:
        cluster.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, f"floor-{i:03d}", {"status": {"phase": "Provisioning"}}
        )

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(apply, documents))
        list(pool.map(status, range(statuses)))
    return time.monotonic() - started


def latency_rows(
    cluster: Cluster, plane: ControlPlane, s3: S3Server, sizes: Sizes, workdir: Path
) -> tuple[list[dict[str, object]], Samples]:
    namespace = cluster.namespace("bench")
    rows: list[dict[str, object]] = []
    with running_operator(
        plane, s3, namespace, resync_seconds=3600, log=workdir / "operator-latency.log"
    ) as url:
        # Warm-up (not counted): kopf's first list and watch, the clients' connection pools.
        apply_batch(cluster, namespace, ["warmup"], timeout=120)
        for size in sizes.batches:
            runs = sizes.single_runs if size == 1 else 1
            latencies: list[float] = []
            names: list[str] = []
            load = os.getloadavg()[0]
            for run in range(runs):
                batch = [f"b{size}-r{run}-{i:02d}" for i in range(size)]
                latencies += apply_batch(cluster, namespace, batch, timeout=120 + 5 * size)
                names += batch
            children = [c for name in names[:size] for c in cluster.children(namespace, name)]
            per_pipeline = len(children) / size
            missing = [n for n in names if len(cluster.children(namespace, n)) != per_pipeline]
            if missing:
                raise BenchError(f"status written before every child existed for {', '.join(missing)}")
            naive_namespace = cluster.namespace(f"bench-kubectl-{size}")
            naive = kubectl_baseline(cluster, children, naive_namespace)
            cluster.release_cluster_ips(naive_namespace)
            floor_namespace = cluster.namespace(f"bench-floor-{size}")
            floor = floor_baseline(cluster, children, floor_namespace, size)
            cluster.release_cluster_ips(floor_namespace)
            what = f"{size} pipeline" if size == 1 else f"a batch of {size} pipelines"
            sample = f"{runs} runs of one pipeline" if runs > 1 else f"{size} pipelines created back to back"
            notes = (
                f"{sample}; per pipeline, from its create call until its status (observedGeneration) "
                f"was written, polled every {POLL_SECONDS * 1000:.0f} ms; all {per_pipeline:.0f} children "
                "existed by then. Baseline: one `kubectl apply --server-side` of the same "
                f"{len(children)} children (process start and discovery included, as by hand). "
                "Ceiling: the same objects server-side applied from one process 16 at a time, plus "
                f"{size} status patch(es): the writes alone, which the operator also makes after reading "
                "the pipeline. Both run after the operator's batch, while kube-controller-manager may still "
                f"be creating its ReplicaSets and Pods. 1-minute load average at the start: {load:.1f} on "
                f"{os.cpu_count()} CPUs."
            )
            for label, q in (("p50", 50), ("p95", 95)):
                rows.append(
                    dict(
                        result_row(
                            SUITE,
                            f"apply → children + status {label}, {what}",
                            percentile(latencies, q),
                            "s",
                            target=TARGET_LATENCY if label == "p95" else None,
                            baseline=naive,
                            baseline_name="kubectl apply of the children",
                            ceiling=floor,
                            ceiling_name="direct parallel server-side apply",
                            notes=notes,
                        )
                    )
                )
        metrics = scrape(url)
    return rows, metrics


def histogram_rows(metrics: Samples, trigger: str, what: str) -> list[dict[str, object]]:
    buckets = duration_buckets(metrics, trigger)
    if not buckets or buckets[-1][1] == 0:
        raise BenchError(f"the operator's /metrics has no {HISTOGRAM} samples for trigger={trigger}")
    count = buckets[-1][1]
    mean = sample_sum(metrics, f"{HISTOGRAM}_sum", trigger=trigger) / count
    bounds = ", ".join(f"{b:g}" for b, _ in buckets if not math.isinf(b))
    notes = (
        f'From the operator\'s {HISTOGRAM}{{trigger="{trigger}"}} histogram: {count:.0f} reconciles '
        f"({what}); quantile interpolated linearly within buckets (bounds {bounds} s), as Prometheus' "
        f"histogram_quantile does; mean {mean:.3f} s."
    )
    return [
        dict(
            result_row(
                SUITE,
                f"reconcile duration {label} ({trigger})",
                histogram_quantile(q, buckets),
                "s",
                notes=notes,
            )
        )
        for label, q in (("p50", 0.5), ("p95", 0.95))
    ]


def noop_rows(
    cluster: Cluster, plane: ControlPlane, s3: S3Server, sizes: Sizes, workdir: Path
) -> tuple[list[dict[str, object]], Samples]:
    """Writes per reconcile of unchanged pipelines, the periodic reconcile every second."""
    namespace = cluster.namespace("bench-noop")
    count = sizes.noop_pipelines
    with running_operator(plane, s3, namespace, resync_seconds=1.0, log=workdir / "operator-noop.log") as url:
        names = [f"noop-{i}" for i in range(count)]
        apply_batch(cluster, namespace, names, timeout=120)

        def timer_runs() -> float:
            return sample_sum(scrape(url), "marketpulse_operator_reconciles_total", trigger="timer")

        # Settling, not counted: the deployment controller fills in each Deployment's status after the
        # first reconcile, and the next reconcile reports that in the pipeline's status once (a real
        # change, not a no-op). So: every Deployment's status caught up, then every pipeline reconciled
        # twice more.
        wait(
            lambda: cluster.deployments_observed(namespace),
            timeout=120,
            what="the deployment controller to write every Deployment's status",
        )
        settled = timer_runs()
        wait(
            lambda: timer_runs() >= settled + 2 * count,
            timeout=120,
            what="two timer reconciles per pipeline after the Deployments settled",
        )
        before = scrape(url)
        versions = {
            f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in [*cluster.pipelines(namespace), *cluster.children(namespace)]
        }
        runs_before = sample_sum(before, "marketpulse_operator_reconciles_total", trigger="timer")
        wait(
            lambda: timer_runs() >= runs_before + sizes.noop_rounds * count,
            timeout=60 + 5 * sizes.noop_rounds * count,
            what=f"{sizes.noop_rounds} timer reconciles per pipeline",
        )
        after = scrape(url)
        changed = sorted(
            key
            for o in [*cluster.pipelines(namespace), *cluster.children(namespace)]
            if versions.get(key := f"{o['kind']}/{o['metadata']['name']}") != o["metadata"]["resourceVersion"]
        )
        children = len(cluster.children(namespace, names[0]))
    reconciles = sample_sum(after, "marketpulse_operator_reconciles_total", trigger="timer") - runs_before
    writes = sample_sum(after, "marketpulse_operator_api_writes_total") - sample_sum(
        before, "marketpulse_operator_api_writes_total"
    )
    backend = sample_sum(after, "marketpulse_operator_backend_writes_total") - sample_sum(
        before, "marketpulse_operator_backend_writes_total"
    )
    notes = (
        f"{reconciles:.0f} periodic reconciles of {count} unchanged pipelines (interval 1 s), counted once "
        "every Deployment's status was written and every pipeline had been reconciled twice since; "
        "writes counted by the operator's marketpulse_operator_api_writes_total (every "
        f"apply, patch, delete and status write): {writes:.0f}; Kafka/S3 changes: {backend:.0f}. Checked "
        f"independently from the API server: objects whose resourceVersion changed in that time "
        f"(pipelines and children): {len(changed)}{' (' + ', '.join(changed[:5]) + ')' if changed else ''}. "
        f"Baseline: an operator that applies every child and the status on each reconcile "
        f"({children} children + 1)."
    )
    row = result_row(
        SUITE,
        "API writes per no-op reconcile",
        writes / reconciles,
        "writes/reconcile",
        target="0",
        baseline=float(children + 1),
        baseline_name="re-apply every child and the status",
        notes=notes,
    )
    return [dict(row)], after


def run_operator_bench(*, short: bool, workdir: Path) -> list[dict[str, object]]:
    """Start a control plane and S3 under `workdir`, run the operator, measure; the rows of the suite."""
    sizes = SHORT if short else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(workdir / "kube")
    s3 = S3Server(workdir / "s3")
    cluster: Cluster | None = None
    try:
        plane.start()
        s3.start()
        cluster = Cluster(plane, ensure_kubectl())
        cluster.install_crds()
        rows, latency_metrics = latency_rows(cluster, plane, s3, sizes, workdir)
        rows += histogram_rows(latency_metrics, "create", "pipelines created while the operator ran")
        noop, noop_metrics = noop_rows(cluster, plane, s3, sizes, workdir)
        rows += noop
        rows += histogram_rows(noop_metrics, "timer", "periodic reconciles of unchanged pipelines")
        return rows
    except ApiException as exc:
        raise BenchError(f"the API server refused a request: {exc.status} {exc.reason}: {exc.body}") from None
    finally:
        if cluster is not None:
            cluster.close()
        s3.stop()
        plane.stop()
        shutil.rmtree(workdir / "kube" / "etcd", ignore_errors=True)
