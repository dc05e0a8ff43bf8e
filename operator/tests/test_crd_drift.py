"""The CRD in the chart is exactly the one generated from the typed API."""

from __future__ import annotations

from pathlib import Path

import yaml

from marketpulse.contract.api.crd import CRD_RELATIVE_PATH, render_crd, render_crd_yaml

COMMITTED = Path(__file__).parents[2] / CRD_RELATIVE_PATH
REGENERATE = "regenerate it with: .venv/bin/python -m marketpulse.contract.api.crd"


def test_the_committed_crd_equals_the_crd_generated_from_the_models() -> None:
    assert COMMITTED.is_file(), f"{CRD_RELATIVE_PATH} is missing; {REGENERATE}"
    assert yaml.safe_load(COMMITTED.read_text()) == render_crd(), (
        f"{CRD_RELATIVE_PATH} has drifted from marketpulse.contract.api; {REGENERATE}"
    )


def test_the_committed_crd_is_byte_for_byte_the_generator_output() -> None:
    assert COMMITTED.read_text() == render_crd_yaml(), f"{CRD_RELATIVE_PATH} was edited by hand; {REGENERATE}"
