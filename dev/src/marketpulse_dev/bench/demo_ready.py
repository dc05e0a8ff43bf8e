"""How long a local demo takes until every dashboard page has something to show.

`python -m marketpulse_dev.bench.demo_ready --data-dir DIR [--port P] [--screenshots DIR] [--fresh]`
starts `marketpulse run -f <the demo sample> --backfill-days 90` (what `make demo` runs once Kafka and
S3 are obtained), polls the gold the transform publishes (the Parquet files in the local S3 server's
directory, read with DuckDB) and the dashboard, and prints when each condition first held:

- history: every symbol has >= 90 daily bars, 20-day volatility and a 20-day moving average, and a
  base-100 index that moves (the OHLC, volatility and comparison pages);
- live: every symbol has 1-minute bars of today's trading date and gold's newest tick of every
  symbol is one this run produced, under two minutes old (the 1-minute view, the health page's
  measured freshness), and live quotes exist;
- dashboard: the dashboard answers its health endpoint.

"Ready" is the first moment all three hold. With --screenshots, every page is then opened by its
deep link in headless Chromium and saved as a PNG. The demo is stopped with Ctrl-C (SIGINT) at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx

from marketpulse_dev.local.backfill import NEW_YORK

DEMO = Path(__file__).parents[4] / "operator" / "config" / "samples" / "stockpipeline-local-demo.yaml"
HISTORY_DAYS = 90
WINDOW = 20
FRESH_TICK_SECONDS = 120
TABLES = (
    "ohlc_daily",
    "ohlc_1m",
    "volatility_rolling",
    "moving_averages_daily",
    "index_base100",
    "latest_ticks",
)
PAGES = (
    ("", "OHLC"),
    ("?bars=1-minute", "OHLC"),
    ("daily-returns", "Daily returns"),
    ("cumulative-performance", "Cumulative performance"),
    ("comparison", "Comparison (base 100)"),
    ("rolling-volatility", "Rolling volatility"),
    ("correlation", "Correlation"),
    ("live-quotes", "Live quotes"),
    ("pipeline-health", "Pipeline health"),
)


def gold_dir(data_dir: Path) -> Path | None:
    buckets = sorted((data_dir / "s3" / "data").glob("mp-*"))
    return buckets[0] if buckets and (buckets[0] / "gold" / "_manifest.json").exists() else None


def conditions(data_dir: Path, today: dt.date, since: dt.datetime) -> dict[str, Any]:
    """What the published gold holds now, and whether each readiness condition holds; live ticks must
    be from after `since` (this run's, not those a previous run left in gold)."""
    bucket = gold_dir(data_dir)
    if bucket is None:
        return {"history": False, "live": False}
    gold = bucket / "gold"
    con = duckdb.connect()

    def one(sql: str, *params: object) -> Any:
        row = con.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    try:
        for table in TABLES:
            con.register(table, con.read_parquet(str(gold / f"{table}.parquet")))
        days = one(
            "select min(n) from (select count(distinct trade_date) as n from ohlc_daily group by symbol)"
        )
        symbols = one("select count(distinct symbol) from ohlc_daily")
        vol = one("select count(distinct symbol) from volatility_rolling where window_days = ?", WINDOW)
        sma = one("select count(distinct symbol) from moving_averages_daily where window_days = ?", WINDOW)
        moving = one(
            "select min(s) from (select stddev_samp(index_value) as s from index_base100 group by symbol)"
        )
        today_bars = one("select count(distinct symbol) from ohlc_1m where trade_date = ?", today)
        newest = one("select min(last_event_time) from latest_ticks")
    except duckdb.Error as exc:  # a table not published yet, or being replaced right now
        return {"history": False, "live": False, "error": str(exc).splitlines()[0]}
    age = (dt.datetime.now(dt.UTC) - newest).total_seconds() if newest is not None else None
    quotes = (bucket / "latest" / "quotes.json").exists()
    return {
        "daily_bars_min": days,
        "today_minute_symbols": today_bars,
        "newest_tick_age_s": round(age, 1) if age is not None else None,
        "history": bool(
            days and days >= HISTORY_DAYS and vol == symbols and sma == symbols and (moving or 0) > 0
        ),
        "live": bool(
            today_bars == symbols
            and newest is not None
            and newest >= since
            and age is not None
            and age < FRESH_TICK_SECONDS
            and quotes
        ),
    }


def dashboard_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def demo(data_dir: Path, port: int, log: Path, fresh: bool) -> Iterator[subprocess.Popen[bytes]]:
    marketpulse = str(Path(sys.executable).with_name("marketpulse"))
    command = [marketpulse, "run", "-f", str(DEMO), "--backfill-days", str(HISTORY_DAYS)]
    command += ["--data-dir", str(data_dir), "--dashboard-port", str(port), *(["--fresh"] if fresh else [])]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"COLUMNS": "160"}
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()


PAGE_STATE_JS = """
return {
  h1: Array.from(document.querySelectorAll('h1')).map(h => h.innerText).join('|'),
  running: document.querySelectorAll('[data-testid="stStatusWidget"]').length > 0,
};
"""


def screenshots(port: int, directory: Path) -> list[dict[str, Any]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from marketpulse_dev.pytest_plugin import CHROME_FLAGS

    directory.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    chrome = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "chromedriver"), options=options
    )
    shots = []
    try:
        for number, (path, title) in enumerate(PAGES, start=1):
            chrome.get(f"http://127.0.0.1:{port}/{path}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                state = chrome.execute_script(PAGE_STATE_JS)  # type: ignore[no-untyped-call]
                if title in state["h1"] and not state["running"]:
                    break
                time.sleep(0.5)
            time.sleep(3)  # Plotly's first layout animation, and fragments' first refresh
            name = f"{number}-{(path.strip('?').replace('=', '-') or 'ohlc')}.png"
            chrome.save_screenshot(str(directory / name))
            shots.append({"page": path or "/", "file": name, "tab": chrome.title})
    finally:
        chrome.quit()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--fresh", action="store_true", help="start from an empty data directory")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--screenshots", type=Path, help="save a PNG of every page here once ready")
    parser.add_argument(
        "--then-wait", type=float, default=0, help="seconds of live ticks before the screenshots"
    )
    args = parser.parse_args()
    log = args.data_dir.with_suffix(".log")
    times: dict[str, float] = {}
    started, since = time.monotonic(), dt.datetime.now(dt.UTC)
    with demo(args.data_dir, args.port, log, args.fresh) as process:
        last: dict[str, Any] = {}
        while time.monotonic() - started < args.timeout and "ready" not in times:
            if process.poll() is not None:
                print(log.read_text()[-3000:], file=sys.stderr)
                return 1
            today = dt.datetime.now(NEW_YORK).date()
            last = conditions(args.data_dir, today, since) | {"dashboard": dashboard_up(args.port)}
            elapsed = round(time.monotonic() - started, 1)
            for name in ("history", "live", "dashboard"):
                if last.get(name) and name not in times:
                    times[name] = elapsed
            if all(name in times for name in ("history", "live", "dashboard")):
                times["ready"] = elapsed
            time.sleep(1)
        result: dict[str, Any] = {"seconds": times, "gold": last}
        if "ready" in times and args.screenshots is not None:
            time.sleep(args.then_wait)
            result["screenshots"] = screenshots(args.port, args.screenshots)
    print(json.dumps(result, indent=2, default=str))
    return 0 if "ready" in times else 1


if __name__ == "__main__":
    sys.exit(main())
