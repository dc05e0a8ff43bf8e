"""archive's environment variables (on top of the common and S3 ones)."""

from __future__ import annotations

from pydantic import Field

from marketpulse.contract.settings.common import CommonSettings


class ArchiveSettings(CommonSettings):
    archive_max_age_seconds: float = Field(1.0, gt=0)
    archive_max_bytes: int = Field(8 * 1024 * 1024, gt=0)
    archive_gzip: bool = False
    archive_group: str = ""
    quotes_interval_seconds: float = Field(2.0, gt=0)
    # How long the group waits for a silent member (e.g. a killed pod) before giving its partitions
    # to another: the longest a replacement waits. The broker accepts 6..1800 s by default.
    archive_session_timeout_seconds: float = Field(45.0, ge=6, le=1800)

    @property
    def group_id(self) -> str:
        return self.archive_group or f"{self.topic_prefix}.archive"
