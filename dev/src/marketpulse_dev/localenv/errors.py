"""Errors raised while obtaining or running a local component."""

from __future__ import annotations


class ComponentError(RuntimeError):
    """A named step failed; the message says which step, why, and where the full log is."""

    def __init__(self, step: str, reason: str, log_tail: str = "") -> None:
        self.step = step
        self.reason = reason
        self.log_tail = log_tail
        message = f"{step}: {reason}"
        if log_tail:
            message += "\n--- last lines of the log ---\n" + log_tail
        super().__init__(message)
