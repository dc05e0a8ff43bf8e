"""ingest's environment variables (on top of the common ones)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, AwareDatetime, Field, SecretStr

from marketpulse.contract.settings.common import CommonSettings


@dataclass(frozen=True)
class Scenario:
    """Inject `kind` at global tick index `at` (0-based, counting every record the source yields).

    gap: the symbol at that index emits nothing for `seconds` of event time (simulated clock only).
    spike: that tick's price is multiplied by (1 + `magnitude`), once.
    duplicate: that tick is emitted twice (same producer sequence: an at-least-once redelivery).
    malformed: a record that is not a valid tick is emitted before it.
    """

    kind: Literal["gap", "spike", "duplicate", "malformed"]
    at: int
    seconds: float = 60.0
    magnitude: float = 0.1


def default_producer_id() -> str:
    # Unique per process: a restarted ingest starts a new sequence under a new id.
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


class IngestSettings(CommonSettings):
    source: Literal["synthetic", "replay", "finnhub"] = "synthetic"
    synthetic_seed: int = 42
    synthetic_rate: float = Field(
        100.0, ge=0, description="ticks per second in total; 0 = as fast as possible"
    )
    synthetic_clock: Literal["wall", "simulated"] = "wall"
    synthetic_ticks_per_second: float = Field(10.0, gt=0, description="per symbol, simulated clock only")
    synthetic_start: AwareDatetime | None = Field(
        None, description="simulated clock only: start at the first trading session at or after this instant"
    )
    synthetic_lead_in: bool = Field(
        False,
        description="with a tick limit: end the walk where a live source of the same seed starts",
    )
    tick_limit: int | None = Field(None, ge=0)
    producer_id: str = Field(default_factory=default_producer_id)
    ingest_ledger: Path | None = None
    # How long the producer retries a tick before counting it as failed (librdkafka delivery.timeout.ms).
    ingest_delivery_timeout_seconds: float = Field(120.0, gt=0)
    replay_uri: str = Field("", description="local path or s3://bucket/key of an .ndjson or .csv file")
    replay_speed: float = Field(
        1.0, ge=0, description="1 = real time, 10 = ten times faster, 0 = as fast as possible"
    )
    replay_format: Literal["ndjson", "csv"] | None = None
    replay_loop: bool = False
    # Finnhub: the key comes from a Secret as FINNHUB_API_KEY (no prefix); SecretStr keeps it out of reprs.
    finnhub_api_key: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("FINNHUB_API_KEY", "MARKETPULSE_FINNHUB_API_KEY")
    )
    finnhub_calls_per_minute: int = Field(60, gt=0, description="REST call budget (free tier: 60)")
    finnhub_ws_url: str = "wss://ws.finnhub.io"
    finnhub_rest_url: str = "https://finnhub.io/api/v1"
    finnhub_max_poll_seconds: float = Field(
        60.0, gt=0, description="refuse a watchlist the REST fallback cannot refresh this often"
    )
    # JSON list, e.g. [{"kind": "malformed", "at": 100}]: scenario injection for tests and demos.
    synthetic_scenarios: list[Scenario] = Field(default_factory=list)
