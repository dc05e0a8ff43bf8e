"""The kopf registry: which handler answers which event. Wiring only; the handlers live in
`lifecycle` (the process) and `pipeline_handlers` (StockPipelines and their children).

Handlers are registered on a registry built from settings (`build_registry`), not at import
time, so the timer interval and the credentials are the ones read at start-up, and tests run the
real handlers with their own settings through `kopf.testing.KopfRunner(registry=...)`.
"""

from __future__ import annotations

import kopf

from marketpulse.contract.api import GROUP, PLURAL, VERSION
from marketpulse.contract.workloads.names import LABEL_MANAGED_BY, MANAGED_BY
from marketpulse.operator.full_refresh import ANNOTATION as FULL_REFRESH_ANNOTATION
from marketpulse.operator.kube import STRIMZI_GROUP
from marketpulse.operator.lifecycle import Lifecycle
from marketpulse.operator.pipeline_handlers import PipelineHandlers
from marketpulse.operator.runtime import OperatorState
from marketpulse.operator.settings import OperatorSettings

RESOURCE = (GROUP, VERSION, PLURAL)
# kopf keeps a retrying handler's progress in the pipeline's annotations under the handler's id.
# These are the ids it derived when the handlers were nested functions of build_registry: kept, so
# that an upgrade finds the progress of a handler retrying at that moment.
_ID = "build_registry.<locals>.{}"


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    state = OperatorState(settings)
    process, pipelines = Lifecycle(state), PipelineHandlers(state)

    kopf.on.login(registry=registry)(process.login)
    kopf.on.startup(registry=registry)(process.startup)
    kopf.on.cleanup(registry=registry)(process.shutdown)
    kopf.on.probe(id="pipelines", registry=registry)(process.probe)

    kopf.on.resume(*RESOURCE, id=_ID.format("resume_pipeline"), registry=registry)(pipelines.resume)
    kopf.on.create(*RESOURCE, id=_ID.format("create_pipeline"), registry=registry)(pipelines.create)
    kopf.on.update(*RESOURCE, field="spec", id=_ID.format("update_pipeline"), registry=registry)(
        pipelines.update
    )
    # kopf leaves annotations under its own prefix (marketpulse.io/) out of what it diffs, so no
    # change handler sees the full-refresh annotation come: an event handler does.
    kopf.on.event(
        *RESOURCE, annotations={FULL_REFRESH_ANNOTATION: kopf.PRESENT}, id="full-refresh", registry=registry
    )(pipelines.annotated)
    kopf.timer(
        *RESOURCE,
        id=_ID.format("resync_pipeline"),
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
        # Not while kopf is still handling a change: that reconcile is under way already.
        idle=min(settings.resync_seconds, 1.0),
        registry=registry,
    )(pipelines.resync)
    kopf.on.delete(*RESOURCE, id=_ID.format("delete_pipeline"), registry=registry)(pipelines.delete)

    managed = {LABEL_MANAGED_BY: MANAGED_BY}
    # The children whose status says how the pipeline is doing, written by other controllers.
    for group, version, plural in (("apps", "v1", "deployments"), ("batch", "v1", "cronjobs")):
        kopf.on.event(group, version, plural, labels=managed, id=f"child-{plural}", registry=registry)(
            pipelines.child_changed
        )
    kopf.on.event(STRIMZI_GROUP, "kafkatopics", labels=managed, id="child-kafkatopics", registry=registry)(
        pipelines.child_changed
    )
    kopf.on.event("v1", "pods", labels=managed, id="child-pods", registry=registry)(pipelines.pod_changed)
    return registry
