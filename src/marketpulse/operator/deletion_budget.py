"""How a deletionPolicy cleanup that keeps failing is retried, and when it is given up on.

Plain data, read from the operator's settings: kept apart from `deletion` so that the settings can
build it without importing the operator's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass


class CleanupFailedError(Exception):
    """A cleanup step failed. `permanent`: trying again cannot help until someone acts (`remedy`)."""

    def __init__(self, reason: str, message: str, *, permanent: bool, remedy: str = "") -> None:
        super().__init__(message)
        self.reason, self.message, self.permanent, self.remedy = reason, message, permanent, remedy


class WorkloadsStopping(Exception):  # noqa: N818 - a state to wait out, not an error
    """Pods of the pipeline still run; data is deleted only once they are gone."""


@dataclass(frozen=True)
class CleanupBudget:
    """How long a cleanup that keeps failing is retried before the pipeline is let go anyway."""

    attempts: int  # for failures that may pass (a server down)
    permanent_attempts: int  # for failures that need someone to act (a Secret gone, AccessDenied)
    retry_seconds: float  # between tries
    stop_timeout_seconds: float  # how long to wait for the workloads' pods to go

    def exhausted(self, failure: CleanupFailedError, failures: int, namespace_terminating: bool) -> bool:
        """`failures` counts this one. In a namespace being deleted nobody can bring a deleted
        Secret back, so a permanent failure there ends the cleanup at once."""
        if failure.permanent:
            return namespace_terminating or failures >= self.permanent_attempts
        return failures >= self.attempts
