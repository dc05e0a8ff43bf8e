"""What the operator process holds while it runs: clients, threads, locks and what it remembers.

`Runtime` exists once start-up has discovered what the cluster serves; `OperatorState` is there
from the moment the registry is built, and holds the runtime once it exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf
from confluent_kafka.admin import AdminClient

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.workloads import names_for
from marketpulse.operator.backends import topics
from marketpulse.operator.backends.s3_iam import AccountStore
from marketpulse.operator.builders import BuildContext, Capabilities
from marketpulse.operator.debounce import Debouncer
from marketpulse.operator.hosts import HostClaims
from marketpulse.operator.kube import KubeApi
from marketpulse.operator.metrics import PhaseBook
from marketpulse.operator.settings import OperatorSettings
from marketpulse.operator.threads import in_pool

T = TypeVar("T")
Pipeline = tuple[str, str]  # (namespace, name)


@dataclass
class Runtime:
    """What handlers share for the life of the operator process."""

    settings: OperatorSettings
    kube: KubeApi
    capabilities: Capabilities
    # SDK calls (minio, confluent-kafka) block; they get their own threads.
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="sdk"))
    admins: dict[str, AdminClient] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # The S3 server's IAM, made on first use when MARKETPULSE_S3_IAM issues per-pipeline accounts.
    s3_accounts: AccountStore | None = None
    _host_claims: HostClaims | None = None

    @property
    def host_claims(self) -> HostClaims:
        """Who holds which dashboard host; made on first use, inside the event loop it locks in."""
        if self._host_claims is None:
            self._host_claims = HostClaims(self.kube)
        return self._host_claims

    async def blocking(self, fn: Callable[[], T]) -> T:
        return await in_pool(self.pool, fn)

    def admin(self, bootstrap: str) -> AdminClient:
        if bootstrap not in self.admins:
            self.admins[bootstrap] = topics.admin_client(bootstrap, self.settings.kafka_admin_config())
        return self.admins[bootstrap]

    def lock(self, uid: str) -> asyncio.Lock:
        # Timers and change handlers of one object must not reconcile it concurrently.
        return self.locks.setdefault(uid, asyncio.Lock())

    def context(
        self, pipeline: StockPipeline, recorded_bucket: str | None = None, *, shared_s3: bool = False
    ) -> BuildContext:
        """`shared_s3`: the pipeline's workloads use the platform's S3 credentials even where the
        platform issues per-pipeline accounts (an adopted bucket gets no policy of the operator's)."""
        names = names_for(pipeline, recorded_bucket)
        return self.settings.build_context(names, self.capabilities, shared_s3=shared_s3)


@dataclass
class OperatorState:
    """Everything the handlers of one registry share, from before start-up to after shutdown."""

    settings: OperatorSettings
    runtime: Runtime | None = None
    phases: PhaseBook = field(default_factory=PhaseBook)
    metrics_server: Any = None
    refresher: Debouncer[Pipeline] | None = None
    # Pods whose last diagnosis was a problem: a pod notifies its pipeline only when this changes.
    troubled_pods: dict[str, int] = field(default_factory=dict)

    def require_runtime(self) -> Runtime:
        if self.runtime is None:
            raise kopf.TemporaryError("the operator is still starting", delay=1)
        return self.runtime
