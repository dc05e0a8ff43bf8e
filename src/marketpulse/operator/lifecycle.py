"""The operator process's own handlers: log in, start up, answer the health probe, shut down."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import prometheus_client

from marketpulse.contract.workloads.names import LABEL_MANAGED_BY, MANAGED_BY
from marketpulse.operator.kube import KubeApi, bearer_token, load_configuration
from marketpulse.operator.runtime import OperatorState, Runtime

FINALIZER = "marketpulse.io/cleanup"
ANNOTATION_PREFIX = "marketpulse.io"
Logger = logging.Logger | logging.LoggerAdapter[Any]


class Lifecycle:
    def __init__(self, state: OperatorState) -> None:
        self.state = state

    def login(self, **_: Any) -> kopf.ConnectionInfo:
        # One source of credentials for kopf's watches and for the operator's own client.
        configuration = load_configuration(self.state.settings.kubeconfig)
        token = bearer_token(configuration)
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
            scheme="Bearer" if token else None,
            token=token,
        )

    async def startup(self, settings: kopf.OperatorSettings, logger: Logger, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        # Log lines stay logs; Events are posted on purpose (transitions, errors) via kopf.event.
        settings.posting.level = logging.WARNING
        # The API server filters pods, so the operator never receives pods that are not its own.
        settings.watching.label_selectors["v1", "pods"] = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        settings.watching.server_timeout = 300
        settings.execution.max_workers = 16
        state = self.state
        kube = KubeApi(load_configuration(state.settings.kubeconfig))
        capabilities = await kube.discover()
        logger.info("cluster serves: %s", capabilities)
        state.runtime = Runtime(state.settings, kube, capabilities)
        if state.settings.metrics_port:
            server, _thread = prometheus_client.start_http_server(state.settings.metrics_port)
            state.metrics_server = server

    async def shutdown(self, **_: Any) -> None:
        state = self.state
        if state.refresher is not None:
            await state.refresher.close()
        if state.metrics_server is not None:
            state.metrics_server.shutdown()
        if state.runtime is not None:
            state.runtime.kube.close()
            state.runtime.pool.shutdown(wait=False, cancel_futures=True)

    def probe(self, **_: Any) -> int:
        """Pipelines this process has reconciled (one lock each), for the liveness endpoint."""
        return len(self.state.runtime.locks) if self.state.runtime else 0
