"""The dashboard's environment variables, read once per browser session by the entrypoint."""

from __future__ import annotations

import hashlib

from pydantic import Field

from marketpulse.contract.settings.common import (
    WORKLOAD_CONFIG,
    CommonSettings,
    S3Settings,
    WarehouseSettings,
)


class DashboardSettings(CommonSettings, S3Settings, WarehouseSettings):
    model_config = WORKLOAD_CONFIG

    gold_schema: str = "gold"

    # Loopback unless told otherwise (`marketpulse run`, a laptop); the renderer sets 0.0.0.0 for pods.
    dashboard_address: str = "127.0.0.1"
    dashboard_port: int = Field(8501, ge=1, le=65535)
    # The archive rewrites latest/quotes.json about every 2 s.
    dashboard_quotes_refresh_seconds: float = Field(2.0, gt=0)
    # The health page reruns itself this often (its queries are cached for 10 s).
    dashboard_health_refresh_seconds: float = Field(10.0, gt=0)
    # Older than this, the health page raises the stale banner.
    dashboard_stale_after_seconds: float = Field(900.0, gt=0)

    @property
    def cache_key(self) -> str:
        """Identifies everything a query's answer depends on, secrets included (as a digest only),
        so that sessions pointed at different buckets or credentials never share cached results."""
        parts = self.model_dump(mode="json")
        for name in ("s3_secret_key", "snowflake_password", "snowflake_private_key_passphrase"):
            secret = getattr(self, name)
            parts[name] = secret.get_secret_value() if secret is not None else ""
        blob = repr(sorted(parts.items())).encode()
        return hashlib.sha256(blob).hexdigest()
