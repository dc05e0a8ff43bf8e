"""A visitor of the dashboard never sees a traceback: `marketpulse dashboard` starts Streamlit with
error details off, and with its options an error that escapes a page shows only a generic message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from marketpulse.cli.dashboard import STREAMLIT_OPTIONS, streamlit_argv

LEAK = "s3://tenant-bucket/private/key.pem"


def failing_page() -> None:
    raise RuntimeError("cannot read s3://tenant-bucket/private/key.pem")


@pytest.fixture
def client_options() -> Iterator[None]:
    """The `client.*` options the dashboard is launched with, in this process, for AppTest."""
    before = {key: config.get_option(key) for key in STREAMLIT_OPTIONS if key.startswith("client.")}
    for key in before:
        config.set_option(key, STREAMLIT_OPTIONS[key])
    yield
    for key, value in before.items():
        config.set_option(key, value)


def test_the_dashboard_is_launched_with_error_details_hidden() -> None:
    argv = streamlit_argv(Path("app.py"), "127.0.0.1", 8501)

    flag = argv.index("--client.showErrorDetails")
    assert argv[flag + 1] == "none"


@pytest.mark.usefixtures("client_options")
def test_an_error_that_escapes_a_page_shows_no_traceback_message_or_type() -> None:
    shown = AppTest.from_function(failing_page).run().exception

    assert len(shown) == 1
    assert shown[0].stack_trace == []
    assert LEAK not in shown[0].message
    assert shown[0].proto.type == ""
    assert "encountered an error" in shown[0].message


def test_the_legacy_false_would_still_show_the_traceback_which_is_why_none_is_used() -> None:
    before = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "false")
    try:
        shown = AppTest.from_function(failing_page).run().exception
    finally:
        config.set_option("client.showErrorDetails", before)

    assert any(LEAK in frame for frame in shown[0].stack_trace)
