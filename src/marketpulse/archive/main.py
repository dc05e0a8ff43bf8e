"""`marketpulse archive`: the ticks topic into bronze (`archiver.Archiver`) and, beside it in a
thread, the dead-letter topic into bronze/dead-letters/ (`dead_letter_archiver.DeadLetterArchiver`)."""

from __future__ import annotations

import logging
import threading

from marketpulse.archive.archiver import Archiver
from marketpulse.archive.dead_letter_archiver import DeadLetterArchiver
from marketpulse.contract.settings.archive import ArchiveSettings
from marketpulse.runtime.http import serve_metrics_and_health
from marketpulse.runtime.shutdown import Shutdown
from marketpulse.storage import ObjectStore

log = logging.getLogger(__name__)


def run_archive(settings: ArchiveSettings, store: ObjectStore, shutdown: Shutdown) -> int:
    archiver = Archiver(settings, store, shutdown)
    keeper = DeadLetterArchiver(settings, store, shutdown)
    if settings.metrics_port:
        serve_metrics_and_health(settings.metrics_port, healthy=lambda: True, host=settings.metrics_host)
    failed: list[BaseException] = []

    def keep_dead_letters() -> None:
        try:
            keeper.run()
        except BaseException as exc:  # the pod must restart, as if the main loop had failed
            failed.append(exc)
            log.exception("dead-letter archive failed")
            shutdown.request()

    thread = threading.Thread(target=keep_dead_letters, name="dead-letters", daemon=True)
    thread.start()
    try:
        archiver.run()
    finally:
        shutdown.request()
        thread.join(timeout=60)
    return 1 if failed else 0


__all__ = ["run_archive"]
