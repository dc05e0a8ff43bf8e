"""`marketpulse transform` in Snowflake mode: gold built in Snowflake (fakesnow, dbt-snowflake) from
bronze in the real S3 server, and its settings refused or accepted as the renderer sets them."""

from __future__ import annotations

import io
import os
import subprocess
import time
from pathlib import Path

import duckdb
import orjson
import pandas as pd
import pytest
from snowflake_bronze import MARKETPULSE, SNOWFLAKE_SAMPLE, Bucket, Warehouse, synthetic, write_objects

from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.contract.ticks import Tick
from marketpulse.transform.warehouses import SnowflakeWarehouse
from marketpulse_dev.local.executor import LocalRun
from marketpulse_dev.local.pipeline_file import load_pipeline
from marketpulse_dev.local.secrets import secret_env_name
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.snowflake]


def expected_daily_bars(ticks: list[Tick]) -> pd.DataFrame:
    """Daily bars recomputed from the input ticks, independently of dbt (exchange dates, New York)."""
    frame = pd.DataFrame(
        {
            "symbol": [t.symbol for t in ticks],
            "price": [t.price for t in ticks],
            "size": [t.size for t in ticks],
            "event_us": [t.event_time_us for t in ticks],
        }
    )
    sql = """
        select symbol,
               cast(timezone('America/New_York', make_timestamptz(event_us)) as date) as trade_date,
               max(price) as high, min(price) as low, sum(size) as volume, count(*) as tick_count,
               sum(price * size) / sum(size) as vwap
        from frame group by all order by symbol, trade_date
    """
    with duckdb.connect() as con:
        con.register("frame", frame)
        bars: pd.DataFrame = con.execute(sql).fetchdf()
    return bars


def run_transform(env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MARKETPULSE, "transform"],
        env={
            **os.environ,
            **env,
            "MARKETPULSE_TRANSFORM_MODE": "cron",
            "MARKETPULSE_METRICS_PORT": "0",
            "DBT_TARGET_PATH": str(workdir / "dbt-target"),
            "DBT_LOG_PATH": str(workdir / "dbt-logs"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_transform_command_builds_gold_in_snowflake_equal_to_a_recomputation_from_the_ticks(
    bucket: Bucket, warehouse: Warehouse, s3_server: S3Server, tmp_path: Path
) -> None:
    ticks = synthetic(6000, ticks_per_second=0.05)  # three trading days of event time
    write_objects(bucket.client, bucket.name, ticks[:4000], per_object=1000)
    write_objects(bucket.client, bucket.name, ticks[4000:], per_object=1000, compress=True, first=4000)
    env = {**warehouse.env(), **s3_server.settings(), "MARKETPULSE_BUCKET": bucket.name}

    done = run_transform(env, tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    cycle = [orjson.loads(line) for line in done.stderr.splitlines() if "transform cycle done" in line]
    assert [(c["objects"], c["rows"], c["dbt"], c["gold_rows"]) for c in cycle] == [(6, 6000, "build", {})]
    # gold.latest_ticks is read back for the gold freshness metrics, from Snowflake's gold schema.
    assert "gold freshness not read" not in done.stderr

    assert warehouse.query("select count(*) from silver.fct_ticks") == [(6000,)]
    gold = warehouse.frame(
        "select symbol, trade_date, high, low, volume, tick_count, vwap from gold.ohlc_daily "
        "order by symbol, trade_date"
    )
    expected = expected_daily_bars(ticks)
    assert len(expected) == 6, expected  # two symbols, three trading days
    assert list(gold["symbol"]) == list(expected["symbol"])
    assert [str(d) for d in gold["trade_date"]] == [
        str(d.date()) for d in pd.to_datetime(expected["trade_date"])
    ]
    assert [int(v) for v in gold["volume"]] == [int(v) for v in expected["volume"]]
    assert [int(v) for v in gold["tick_count"]] == [int(v) for v in expected["tick_count"]]
    for column in ("high", "low", "vwap"):
        assert [float(v) for v in gold[column]] == pytest.approx(
            [float(v) for v in expected[column]], rel=1e-9
        )
    # Snowflake mode publishes nothing to the bucket: the dashboard reads Snowflake's gold schema.
    assert not list(bucket.client.list_objects(bucket.name, prefix="gold/"))

    again = run_transform(env, tmp_path)
    assert again.returncode == 0, again.stderr[-5000:]
    assert warehouse.query("select count(*) from bronze.raw_ticks") == [(6000,)]
    assert warehouse.query("select count(*) from silver.fct_ticks") == [(6000,)]


def test_a_malformed_object_between_good_ones_is_quarantined_once_and_gold_in_snowflake_keeps_moving(
    bucket: Bucket, warehouse: Warehouse, s3_server: S3Server, tmp_path: Path
) -> None:
    ticks = synthetic(3000, ticks_per_second=0.05)
    keys = write_objects(bucket.client, bucket.name, ticks[:2000], per_object=500)
    bad = keys[1]
    body = b'{"v":1,"symbol":"AAPL","price":"abc"}\n'
    bucket.client.put_object(bucket.name, bad, io.BytesIO(body), len(body))
    good = ticks[:500] + ticks[1000:]
    env = {**warehouse.env(), **s3_server.settings(), "MARKETPULSE_BUCKET": bucket.name}

    def cycles(run: subprocess.CompletedProcess[str]) -> list[tuple[object, ...]]:
        assert run.returncode == 0, run.stderr[-5000:]
        lines = [orjson.loads(x) for x in run.stderr.splitlines() if "transform cycle done" in x]
        return [(c["objects"], c["rows"], c["quarantined"]) for c in lines]

    first = cycles(run_transform(env, tmp_path))
    write_objects(bucket.client, bucket.name, ticks[2000:], per_object=500, first=2000)
    second = run_transform(env, tmp_path)

    assert first == [(3, 1500, 1)]
    assert cycles(second) == [(2, 1000, 0)], "the quarantined object is neither loaded nor counted again"
    assert "bronze object quarantined" not in second.stderr
    assert warehouse.query("select object_key, kind from bronze._quarantine") == [(bad, "malformed")]
    assert warehouse.query(
        "select count(*), count(distinct producer_id || ':' || seq) from silver.fct_ticks"
    ) == [(len(good), len(good))]
    gold = warehouse.frame(
        "select symbol, sum(tick_count) as ticks from gold.ohlc_daily group by 1 order by 1"
    )
    expected = pd.Series([t.symbol for t in good]).value_counts().sort_index()
    assert list(gold["symbol"]) == list(expected.index)
    assert [int(v) for v in gold["ticks"]] == [int(v) for v in expected.values]


@pytest.mark.parametrize(
    ("change", "variable", "expected"),
    [
        ({"SNOWFLAKE_ACCOUNT": None}, "SNOWFLAKE_ACCOUNT", "needs the account identifier"),
        ({"SNOWFLAKE_USER": ""}, "SNOWFLAKE_USER", "needs the user"),
        ({"SNOWFLAKE_PASSWORD": None}, "SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PATH"),
        (
            {"SNOWFLAKE_PASSWORD": None, "SNOWFLAKE_PRIVATE_KEY_PATH": "/nonexistent/key.p8"},
            "SNOWFLAKE_PRIVATE_KEY_PATH",
            "is not a file",
        ),
        ({"SNOWFLAKE_PROTOCOL": "ftp"}, "SNOWFLAKE_PROTOCOL", "'http' or 'https'"),
        ({"SNOWFLAKE_DATABASE": "my-db"}, "SNOWFLAKE_DATABASE", "not a plain identifier"),
    ],
    ids=["no-account", "empty-user", "no-credential", "missing-key-file", "bad-protocol", "bad-database"],
)
def test_a_missing_or_bad_snowflake_setting_is_refused_naming_the_variable_without_a_traceback(
    warehouse: Warehouse, tmp_path: Path, change: dict[str, str | None], variable: str, expected: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")},
        **warehouse.env(),
        "MARKETPULSE_BUCKET": "unused",
        "SNOWFLAKE_PASSWORD": "distinct-secret-4711",
    }
    for name, value in change.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    refused = subprocess.run(
        [MARKETPULSE, "transform"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 2, refused.stderr
    assert f"{variable}:" in refused.stderr
    assert expected in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert "distinct-secret-4711" not in refused.stderr, "a password was printed"


def test_an_unreachable_snowflake_fails_the_cycle_with_a_message_and_no_traceback(
    bucket: Bucket, s3_server: S3Server, tmp_path: Path
) -> None:
    closed = free_port()  # nothing listens there
    env = {
        **s3_server.settings(),
        "MARKETPULSE_BUCKET": bucket.name,
        "MARKETPULSE_WAREHOUSE": "snowflake",
        "SNOWFLAKE_ACCOUNT": "fakesnow",
        "SNOWFLAKE_USER": "marketpulse",
        "SNOWFLAKE_PASSWORD": "secret-password",
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(closed),
        "SNOWFLAKE_PROTOCOL": "http",
    }
    started = time.monotonic()
    failed = run_transform(env, tmp_path)
    assert failed.returncode == 1, failed.stderr[-3000:]
    errors = [orjson.loads(line) for line in failed.stderr.splitlines() if "transform cycle failed" in line]
    assert len(errors) == 1, failed.stderr[-3000:]
    assert "cannot log in to Snowflake" in errors[0]["error"]
    assert f"endpoint http://127.0.0.1:{closed}" in errors[0]["error"]
    assert "Traceback" not in failed.stderr
    assert "secret-password" not in failed.stderr
    assert time.monotonic() - started < 300


def test_the_settings_read_exactly_the_snowflake_environment_the_workload_renderer_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_pipeline(SNOWFLAKE_SAMPLE)
    snowflake_spec = pipeline.spec.warehouse.snowflake
    assert snowflake_spec is not None
    run = LocalRun(pipeline, tmp_path, printer=lambda *_: None)
    run.kafka = KafkaServer(tmp_path / "kafka", port=19092)
    run.s3 = S3Server(tmp_path / "s3", port=17070)
    transform = next(w for w in run.workloads() if w.component == "transform")
    for var in transform.env:
        if var.secret is not None and var.secret.name != "marketpulse-s3":
            monkeypatch.setenv(secret_env_name(var.secret), f"value-of-{var.secret.key}")
    for secret_file in transform.secret_files:
        monkeypatch.setenv(secret_env_name(secret_file.secret), "-----BEGIN PRIVATE KEY-----\n")
    env = run.environment(transform)
    for name in [n for n in os.environ if n.startswith(("SNOWFLAKE_", "MARKETPULSE_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = TransformSettings()
    assert settings.warehouse == "snowflake"
    kwargs = settings.snowflake_connect_kwargs()
    assert (kwargs["account"], kwargs["user"], kwargs["database"], kwargs["schema"]) == (
        snowflake_spec.account,
        snowflake_spec.user,
        snowflake_spec.database,
        snowflake_spec.schema_name,
    )
    assert ("password" in kwargs) == (snowflake_spec.password is not None)
    assert ("private_key_file" in kwargs) == (snowflake_spec.private_key is not None)
    # dbt's profile reads the same variables, with the values the loader connects with.
    dbt_env = settings.snowflake_env()
    assert {k: v for k, v in dbt_env.items() if k in env and v} == {
        k: v for k, v in env.items() if k.startswith("SNOWFLAKE_")
    }


def test_the_full_refreshes_a_snowflake_warehouse_completed_are_remembered_in_it(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in warehouse.env().items():
        monkeypatch.setenv(name, value)
    settings = TransformSettings()
    assert settings.warehouse == "snowflake"
    first, second = SnowflakeWarehouse(settings), SnowflakeWarehouse(settings)
    assert first.last_full_refresh() is None
    first.record_full_refresh("2026-12-04T02:30:05Z")
    # Another process (a restarted transform) reads what this one recorded.
    assert second.last_full_refresh() == "2026-12-04T02:30:05Z"
    second.record_full_refresh("2026-12-05T09:00:00Z")
    assert first.last_full_refresh() == "2026-12-05T09:00:00Z"
    assert warehouse.query("select count(*) from bronze._full_refresh") == [(2,)]
