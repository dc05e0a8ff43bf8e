"""transform's environment variables (on top of the common and S3 ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from marketpulse.runtime.settings import CommonSettings


class TransformSettings(CommonSettings):
    # Snowflake mode (PUT + COPY INTO) is not built yet; the setting refuses it rather than pretend.
    warehouse: Literal["duckdb"] = "duckdb"
    duckdb_path: Path = Path("warehouse.duckdb")
    transform_mode: Literal["once", "continuous"] = "once"
    transform_interval_seconds: float = Field(30.0, gt=0)
    bronze_schema: str = "bronze"
    gold_schema: str = "gold"
    publish_gold: bool = True
