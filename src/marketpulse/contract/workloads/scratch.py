"""How much node disk each workload may use, from the settings that bound what it writes.

Every pod has a read-only root and one scratch directory, `/tmp`, an emptyDir on the node's disk. Unbounded,
one transform catching up on a backlog could fill the node and get every pod on it evicted. So the emptyDir
has a `sizeLimit` (the scratch below), and the container an `ephemeral-storage` request and limit of the
scratch plus its logs (the kubelet counts a container's logs against its ephemeral storage; by default it
keeps 5 files of 10 MiB). Request and limit are equal: the scheduler places a pod only where its worst
case fits, and under disk pressure the kubelet evicts first pods that use more than they requested.

Scratch, per workload:
- ingest, alerts, dashboard: `base` (Python and its libraries; replay streams its file, nothing on disk);
- archive: `base + 4 x object` as headroom: it builds each batch in memory and uploads it from there;
- transform: `base + chunk x object` (x 2 with Snowflake) `+ gold`. A load downloads every object of its
  chunk into /tmp (the download threads run ahead through the whole chunk, so what is in flight is the
  chunk, not the thread count) and removes them when the chunk commits; with Snowflake the chunk is also
  written there as one Parquet file, at most as big again. In DuckDB mode the gold tables are written to
  /tmp as Parquet before they are published (`gold`, which grows with history, not with any chunk).
  DuckDB's own spill files go beside its database file, on the warehouse volume, not in /tmp.
where `object` is the largest bronze object: `archive_max_bytes` plus one consumed batch of overshoot (a
batch is closed once it reaches the limit).
"""

from __future__ import annotations

from dataclasses import dataclass

from marketpulse.contract.settings.archive import ArchiveSettings

MI = 1 << 20
# The bronze loaders' chunk (DuckDBBronzeLoader, SnowflakeBronzeLoader: `chunk_objects`); a test keeps
# the two equal.
LOAD_CHUNK_OBJECTS = 400
ARCHIVE_MAX_BYTES: int = ArchiveSettings.model_fields["archive_max_bytes"].default
# What a batch may grow past the limit before it is closed: the records of one consume call.
BATCH_OVERSHOOT_BYTES = 1 * MI
ARCHIVE_OBJECTS_OF_HEADROOM = 4


@dataclass(frozen=True)
class ScratchSizes:
    """What the platform sets (operator settings `MARKETPULSE_SCRATCH_*`); sizes in bytes."""

    base: int = 64 * MI
    gold: int = 1024 * MI
    logs: int = 64 * MI


def object_bytes(archive_max_bytes: int = ARCHIVE_MAX_BYTES) -> int:
    return archive_max_bytes + BATCH_OVERSHOOT_BYTES


def scratch_bytes(component: str, sizes: ScratchSizes, *, snowflake: bool = False) -> int:
    """The size limit of the workload's /tmp (formulas in the module's docstring)."""
    if component == "archive":
        return sizes.base + ARCHIVE_OBJECTS_OF_HEADROOM * object_bytes()
    if component == "transform":
        downloads = LOAD_CHUNK_OBJECTS * object_bytes()
        return sizes.base + (2 * downloads if snowflake else downloads + sizes.gold)
    return sizes.base


def quantity(size: int) -> str:
    """`size` bytes rounded up to whole MiB, in the form the API server keeps (`1Gi`, not `1024Mi`), so
    that a reconcile never sees a respelling as a change."""
    mebibytes = -(-size // MI)
    for suffix, factor in (("Ti", 1 << 20), ("Gi", 1 << 10)):
        if mebibytes % factor == 0:
            return f"{mebibytes // factor}{suffix}"
    return f"{mebibytes}Mi"
