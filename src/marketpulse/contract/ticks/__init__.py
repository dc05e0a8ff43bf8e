"""The tick: one trade or quote, as it travels through Kafka and lands in bronze."""

from marketpulse.contract.ticks.model import (
    SCHEMA_VERSION,
    Tick,
    TickError,
    decode_tick,
    encode_tick,
    format_time_us,
    reason_field,
)

__all__ = [
    "SCHEMA_VERSION",
    "Tick",
    "TickError",
    "decode_tick",
    "encode_tick",
    "format_time_us",
    "reason_field",
]
