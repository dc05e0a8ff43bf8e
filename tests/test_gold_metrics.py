"""The transform exports what gold holds: per watchlist symbol, when ingest sent its newest tick in
gold, and the watchlist's ticks in gold; the freshness alerts of the PrometheusRule read these."""

from __future__ import annotations

import uuid
from pathlib import Path

import duckdb
import pytest
from prometheus_client import REGISTRY

from marketpulse.contract.layout import GOLD_PREFIX
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.gold_metrics import record_gold
from marketpulse.transform.warehouses import DuckDBWarehouse
from marketpulse_dev.localenv.s3 import S3Server

NEWEST = "marketpulse_transform_gold_last_ingest_timestamp_seconds"


def gold_with_latest_ticks(path: Path) -> None:
    # The public contract of gold.latest_ticks (dbt/models/gold/latest_ticks.yml), as dbt leaves it.
    with duckdb.connect(str(path)) as con:
        con.execute("create schema gold")
        con.execute(
            "create table gold.latest_ticks (symbol varchar, last_event_time timestamptz, "
            "last_ingest_time timestamptz, last_loaded_at timestamptz, tick_count bigint)"
        )
        con.execute(
            "insert into gold.latest_ticks values "
            "('AAPL', '2026-12-03 15:00:05+00', '2026-12-03 15:00:06+00', '2026-12-03 15:00:09+00', 120), "
            "('MSFT', '2026-12-03 14:59:59+00', '2026-12-03 15:00:00.5+00', '2026-12-03 15:00:08+00', 80), "
            # A symbol no longer in the watchlist: still in gold, not a series.
            "('OLD', '2026-11-01 15:00:00+00', '2026-11-01 15:00:00+00', '2026-11-01 15:00:01+00', 999)"
        )


def test_gold_freshness_and_tick_count_are_exported_for_the_watchlists_symbols_only(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    gold_with_latest_ticks(path)
    settings = TransformSettings(duckdb_path=path, watchlist=["AAPL", "MSFT", "NVDA"])

    record_gold(DuckDBWarehouse(settings).gold_symbols(), settings.watchlist)

    assert REGISTRY.get_sample_value(NEWEST, {"symbol": "AAPL"}) == 1_796_310_006.0
    assert REGISTRY.get_sample_value(NEWEST, {"symbol": "MSFT"}) == 1_796_310_000.5
    # NVDA has no tick in gold yet: no series rather than a made-up time.
    assert REGISTRY.get_sample_value(NEWEST, {"symbol": "NVDA"}) is None
    assert REGISTRY.get_sample_value(NEWEST, {"symbol": "OLD"}) is None
    assert REGISTRY.get_sample_value("marketpulse_transform_gold_ticks") == 200


def test_gold_that_has_no_latest_ticks_yet_is_an_error_the_cycle_can_report(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    settings = TransformSettings(duckdb_path=path, watchlist=["AAPL"])
    with pytest.raises(duckdb.CatalogException, match="latest_ticks"):
        DuckDBWarehouse(settings).gold_symbols()


@pytest.mark.s3
def test_a_publishing_transform_reads_gold_freshness_from_what_it_published_not_from_silver_again(
    tmp_path: Path, s3_server: S3Server
) -> None:
    path = tmp_path / "warehouse.duckdb"
    gold_with_latest_ticks(path)
    client = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    bucket = f"gold-{uuid.uuid4().hex[:8]}"
    client.make_bucket(bucket)
    warehouse = DuckDBWarehouse(TransformSettings(duckdb_path=path, watchlist=["AAPL", "MSFT"]))

    rows = warehouse.publish(S3ObjectStore(client, bucket))
    # Gold moves on after the publish: the metrics describe what the dashboard can see.
    with duckdb.connect(str(path)) as con:
        con.execute("update gold.latest_ticks set last_ingest_time = last_ingest_time + interval 1 hour")
    record_gold(warehouse.gold_symbols(), ["AAPL", "MSFT"])

    assert rows == {"latest_ticks": 3}
    assert client.stat_object(bucket, f"{GOLD_PREFIX}latest_ticks.parquet").size
    assert REGISTRY.get_sample_value(NEWEST, {"symbol": "AAPL"}) == 1_796_310_006.0
    # Read once: the next cycle that publishes nothing reads the warehouse itself.
    record_gold(warehouse.gold_symbols(), ["AAPL", "MSFT"])
    assert REGISTRY.get_sample_value(NEWEST, {"symbol": "AAPL"}) == 1_796_310_006.0 + 3600
