"""alerts' environment variables (on top of the common ones)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from marketpulse.contract.api import AlertRule
from marketpulse.contract.settings.common import CommonSettings


class AlertsSettings(CommonSettings):
    alerts_topic: str = ""
    alert_rules: list[AlertRule] = Field(default_factory=list)
    alerts_webhook_url: str = ""
    stale_check_seconds: float = Field(1.0, gt=0)
    # Where a new consumer group starts: "latest" alerts on what happens from now on, not on history.
    alerts_offset_reset: Literal["latest", "earliest"] = "latest"

    @property
    def resolved_alerts_topic(self) -> str:
        return self.alerts_topic or f"{self.topic_prefix}.alerts"
