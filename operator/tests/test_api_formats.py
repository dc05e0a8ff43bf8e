"""What the admission checks of cron schedules, time zones, bucket names and the Finnhub budget let
through: the refusals are in invalid_stockpipelines.yaml (Python and the API server alike)."""

from __future__ import annotations

from typing import Any

import pytest

from marketpulse.contract.api import StockPipelineInvalid, validate_stockpipeline
from marketpulse.contract.api.formats import TIME_ZONES


def spec(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "marketpulse.io/v1alpha1",
        "kind": "StockPipeline",
        "metadata": {"name": "ok"},
        "spec": {"watchlist": ["AAPL"], **fields},
    }


@pytest.mark.parametrize(
    "schedule",
    [
        "*/5 * * * *",
        "0 9-17 * * MON-FRI",
        "30 16 * * 1-5",
        "0 0 1,15 JAN,jul *",
        "0 0 ? * sun",
        "@hourly",
        "5/10 * * * *",
    ],
)
def test_cron_schedules_the_cronjob_controller_takes_are_accepted(schedule: str) -> None:
    assert validate_stockpipeline(spec(transform={"schedule": schedule})).spec.transform.schedule == schedule


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata", "Etc/GMT+5"])
def test_iana_time_zones_are_accepted(zone: str) -> None:
    assert validate_stockpipeline(spec(transform={"timeZone": zone})).spec.transform.time_zone == zone


def test_the_time_zone_list_is_the_iana_database_not_a_handful() -> None:
    assert len(TIME_ZONES) > 500
    assert tuple(sorted(set(TIME_ZONES))) == TIME_ZONES


@pytest.mark.parametrize("bucket", ["my.bucket-1", "team-data", "abc", "a.b.c", "192.168.5"])
def test_s3_valid_bucket_names_are_accepted(bucket: str) -> None:
    assert validate_stockpipeline(spec(storage={"bucket": bucket})).spec.storage.bucket == bucket


def test_a_finnhub_watchlist_as_long_as_its_budget_is_accepted() -> None:
    finnhub = {"apiKey": {"secretKeyRef": {"name": "f", "key": "k"}}, "callsPerMinute": 2}
    document = spec(source={"type": "finnhub", "finnhub": finnhub})
    document["spec"]["watchlist"] = ["AAPL", "MSFT"]
    assert validate_stockpipeline(document).spec.watchlist == ["AAPL", "MSFT"]


@pytest.mark.parametrize(
    "transform_vars",
    [
        {"exchangeTimeZone": "Asia/Tokyo"},
        {"movingAverageDays": [1, 1000]},
        {"volatilityWindowDays": [2, 252]},
        {"indexBaseDate": "2024-02-29"},
        {},
    ],
)
def test_dbt_vars_within_their_bounds_are_accepted_and_reach_dbt_by_its_names(
    transform_vars: dict[str, Any],
) -> None:
    parsed = validate_stockpipeline(spec(transform={"vars": transform_vars})).spec.transform.vars
    names = {
        "exchangeTimeZone": "exchange_timezone",
        "movingAverageDays": "moving_average_days",
        "volatilityWindowDays": "volatility_window_days",
        "indexBaseDate": "index_base_date",
    }
    assert parsed.dbt_vars() == {names[k]: v for k, v in transform_vars.items()}


@pytest.mark.parametrize(
    ("transform_vars", "expected"),
    [
        ({"indexBaseDate": "2026-02-30"}, "expected a calendar date YYYY-MM-DD"),
        ({"indexBaseDate": "04/12/2026"}, "expected a calendar date YYYY-MM-DD"),
        ({"exchangeTimeZone": "Mars/Olympus_Mons"}, "must be an IANA time zone name"),
        ({"movingAverageDays": [0]}, "greater than or equal to 1"),
        ({"volatilityWindowDays": [10**9]}, "less than or equal to 1000"),
        ({"movingAverageDays": ["5"]}, "valid integer"),
    ],
)
def test_a_hostile_dbt_var_is_refused_saying_what_is_expected(
    transform_vars: dict[str, Any], expected: str
) -> None:
    with pytest.raises(StockPipelineInvalid) as refused:
        validate_stockpipeline(spec(transform={"vars": transform_vars}))
    [error] = refused.value.errors
    assert error.path.startswith(f"spec.transform.vars.{next(iter(transform_vars))}")
    assert expected in error.message
