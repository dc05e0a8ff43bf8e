"""Scratch sizes follow the settings they are computed from, and are spelt as the API server keeps them."""

from __future__ import annotations

import inspect

import pytest

from marketpulse.contract.settings.archive import ArchiveSettings
from marketpulse.contract.workloads.scratch import ARCHIVE_MAX_BYTES, LOAD_CHUNK_OBJECTS, MI, quantity
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse.transform.snowflake_loader import SnowflakeBronzeLoader


@pytest.mark.parametrize("loader", [DuckDBBronzeLoader, SnowflakeBronzeLoader])
def test_the_transform_scratch_assumes_the_loaders_chunk(loader: type) -> None:
    assert inspect.signature(loader).parameters["chunk_objects"].default == LOAD_CHUNK_OBJECTS


def test_the_scratch_assumes_the_archives_object_size() -> None:
    assert ArchiveSettings.model_fields["archive_max_bytes"].default == ARCHIVE_MAX_BYTES


@pytest.mark.parametrize(
    ("size", "spelt"),
    [(64 * MI, "64Mi"), (1024 * MI, "1Gi"), (4688 * MI, "4688Mi"), (5 * 1024 * MI, "5Gi"), (MI + 1, "2Mi")],
)
def test_sizes_are_whole_mebibytes_in_their_canonical_spelling(size: int, spelt: str) -> None:
    assert quantity(size) == spelt
