"""The served dashboard in a real browser: `marketpulse dashboard` over gold Parquet in the real local
S3 server, each of the eight pages opened by its deep link in headless Chromium, with its title in the
heading and the browser tab, its charts or metrics drawn and no exception shown. A screenshot of every
page is saved (and copied to $MARKETPULSE_SCREENSHOT_DIR). A link's filters reach the page's widgets,
and the health page refreshes itself.

Needs Debian's `chromium` and `chromium-driver` packages (CI installs them); the driver is never
downloaded (the `browser` fixture, from marketpulse_dev.pytest_plugin)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

from marketpulse_dev.localenv.s3 import S3Server

pytestmark = [pytest.mark.browser, pytest.mark.s3]

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
PAGE_TIMEOUT = 60


@dataclass(frozen=True)
class Page:
    path: str  # the page's url_path, named after its title; "" is the default page
    title: str
    charts: int  # Plotly charts the page draws with the test's gold
    metrics: int  # st.metric widgets, at least


PAGES = (
    Page("", "OHLC", charts=1, metrics=5),
    Page("daily-returns", "Daily returns", charts=1, metrics=0),
    Page("cumulative-performance", "Cumulative performance", charts=1, metrics=len(SYMBOLS)),
    Page("comparison", "Comparison (base 100)", charts=1, metrics=0),
    Page("rolling-volatility", "Rolling volatility", charts=1, metrics=len(SYMBOLS)),
    Page("correlation", "Correlation", charts=1, metrics=0),
    Page("live-quotes", "Live quotes", charts=0, metrics=len(SYMBOLS)),
    Page("pipeline-health", "Pipeline health", charts=0, metrics=5),
)
HEALTH_REFRESH_SECONDS = 1

# What the page shows right now, read in one round trip.
PAGE_STATE_JS = """
const charts = Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
  traces: (el.data || []).length,
  drawn: el.querySelectorAll('svg.main-svg g.trace, svg.main-svg g.hm').length,  // a heatmap is a g.hm
  svg: el.querySelectorAll('svg.main-svg').length,
}));
return {
  title: Array.from(document.querySelectorAll('h1')).map(h => h.innerText.trim()).join(' | '),
  tab: document.title,
  captions: Array.from(document.querySelectorAll('[data-testid="stCaptionContainer"]')).map(c => c.innerText),
  checked: Array.from(document.querySelectorAll('[data-testid="stRadio"] input:checked')).map(
    i => i.closest('label').innerText.trim()),
  multiselect: Array.from(document.querySelectorAll('[data-testid="stMultiSelect"]')).map(
    m => m.innerText.split('\\n').map(line => line.trim()).filter(line => line)),
  running: document.querySelectorAll('[data-testid="stStatusWidget"]').length > 0,
  exceptions: Array.from(document.querySelectorAll('[data-testid="stException"]')).map(e => e.innerText),
  errors: Array.from(document.querySelectorAll('[data-testid="stAlertContentError"]')).map(e => e.innerText),
  metrics: document.querySelectorAll('[data-testid="stMetric"]').length,
  charts: charts,
};
"""


@pytest.fixture
def served_dashboard(
    s3_server: S3Server,
    bucket: str,
    gold_factory: Callable[..., Any],
    publish_gold: Callable[..., None],
    serve_dashboard: Callable[[Mapping[str, str]], AbstractContextManager[str]],
) -> Iterator[str]:
    publish_gold(gold_factory(SYMBOLS, days=90, minute_bars_per_symbol=120))
    env = {
        **s3_server.settings(),
        "MARKETPULSE_BUCKET": bucket,
        "MARKETPULSE_PIPELINE": "browser",
        "MARKETPULSE_WAREHOUSE": "duckdb",
        "MARKETPULSE_WATCHLIST": ",".join(SYMBOLS),
        "MARKETPULSE_DASHBOARD_HEALTH_REFRESH_SECONDS": str(HEALTH_REFRESH_SECONDS),
    }
    with serve_dashboard(env) as url:
        yield url


def page_state(chrome: webdriver.Chrome) -> dict[str, Any]:
    state: dict[str, Any] = chrome.execute_script(PAGE_STATE_JS)
    return state


def settled(page: Page, state: dict[str, Any]) -> bool:
    """Finished running and drawn, or showing an error (which the assertions then report)."""
    if state["exceptions"] or state["errors"]:
        return True
    drawn = [c for c in state["charts"] if c["svg"] and c["traces"] and c["drawn"]]
    return (
        page.title in state["title"]
        and state["tab"] == f"{page.title} · MarketPulse"
        and not state["running"]
        and len(drawn) >= page.charts
        and state["metrics"] >= page.metrics
    )


def screenshot_dirs(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path / "screenshots"]
    extra = os.environ.get("MARKETPULSE_SCREENSHOT_DIR")
    if extra:
        dirs.append(Path(extra))
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)
    return dirs


def test_every_page_opens_by_its_deep_link_with_its_title_charts_and_metrics_in_chromium(
    browser: webdriver.Chrome,
    served_dashboard: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dirs = screenshot_dirs(tmp_path)
    problems: dict[str, str] = {}
    seen: dict[str, dict[str, Any]] = {}
    for number, page in enumerate(PAGES, start=1):
        browser.get(f"{served_dashboard}/{page.path}")
        # A page that never settles is reported below with what it showed.
        with contextlib.suppress(TimeoutException):
            WebDriverWait(browser, PAGE_TIMEOUT, poll_frequency=0.25).until(
                lambda chrome, page=page: settled(page, page_state(chrome))  # type: ignore[misc]
            )
        # Plotly animates its first layout; let it finish before the picture is taken.
        time.sleep(0.5)
        state = page_state(browser)
        seen[page.title] = state
        shot = dirs[0] / f"{number}-{page.path or 'ohlc'}.png"
        browser.save_screenshot(str(shot))
        for extra in dirs[1:]:
            shutil.copy(shot, extra / shot.name)
        drawn = [c for c in state["charts"] if c["svg"] and c["traces"] and c["drawn"]]
        if state["exceptions"] or state["errors"]:
            problems[page.title] = f"shows {state['exceptions'] or state['errors']}"
        elif page.title not in state["title"]:
            problems[page.title] = f"headings are {state['title']!r}"
        elif state["tab"] != f"{page.title} · MarketPulse":
            problems[page.title] = f"the browser tab says {state['tab']!r}"
        elif len(drawn) < page.charts:
            problems[page.title] = f"{len(drawn)} of {page.charts} Plotly charts drawn: {state['charts']}"
        elif state["metrics"] < page.metrics:
            problems[page.title] = f"{state['metrics']} metrics, expected at least {page.metrics}"

    with capsys.disabled():
        print(f"\nscreenshots of the {len(PAGES)} pages: {', '.join(str(d) for d in dirs)}")
        for title, state in seen.items():
            traces = [c["traces"] for c in state["charts"]]
            print(f"  {title:<24} charts (traces each): {traces}  metrics: {state['metrics']}")
    assert not problems, problems


def wait_for_state(
    browser: webdriver.Chrome, predicate: Callable[[dict[str, Any]], bool], timeout: float = PAGE_TIMEOUT
) -> dict[str, Any]:
    with contextlib.suppress(TimeoutException):
        WebDriverWait(browser, timeout, poll_frequency=0.25).until(
            lambda chrome: predicate(page_state(chrome))
        )
    return page_state(browser)


def test_a_deep_link_with_filters_opens_the_page_on_them_and_keeps_them_in_the_url(
    browser: webdriver.Chrome, served_dashboard: str
) -> None:
    returns = PAGES[1]
    browser.get(f"{served_dashboard}/daily-returns?symbols=NVDA&symbols=AAPL&kind=Intraday+(open+to+close)")
    state = wait_for_state(browser, lambda s: settled(returns, s))
    (symbols,) = state["multiselect"]
    assert [line for line in symbols if line in SYMBOLS] == ["NVDA", "AAPL"], state
    assert "Intraday (open to close)" in state["checked"], state
    assert not state["exceptions"]
    assert "symbols=NVDA" in browser.current_url
    assert "kind=Intraday" in browser.current_url

    browser.get(f"{served_dashboard}/daily-returns?symbols=ZZZZ&kind=nope")
    state = wait_for_state(browser, lambda s: settled(returns, s))
    notices = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=\"stAlertContentWarning\"]'))"
        ".map(e => e.innerText)"
    )
    assert any("Ignored symbols=ZZZZ from the link" in n for n in notices), notices
    assert not state["exceptions"]


def test_the_health_page_refreshes_itself(browser: webdriver.Chrome, served_dashboard: str) -> None:
    browser.get(f"{served_dashboard}/pipeline-health")

    def checked(state: dict[str, Any]) -> list[str]:
        return [c for c in state["captions"] if c.startswith("Checked ")]

    first = checked(wait_for_state(browser, lambda s: bool(checked(s))))
    assert first, "the health page shows when it last checked"
    later = checked(wait_for_state(browser, lambda s: bool(checked(s)) and checked(s) != first, timeout=15))
    assert later != first, f"still {first} after 15 s with a {HEALTH_REFRESH_SECONDS} s refresh"
