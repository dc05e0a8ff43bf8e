"""Which variables each workload reads, and refusing a `MARKETPULSE_*` variable nobody reads.

pydantic-settings ignores variables it does not know, so a misspelt `MARKETPULSE_SYNTHETIC_SEEED`
would silently leave the default in place. Each entrypoint checks its environment against every
variable MarketPulse reads (any workload's: the executors give related workloads shared blocks) and
fails naming the unknown one, with the closest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Final

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from marketpulse.contract.settings.alerts import AlertsSettings
from marketpulse.contract.settings.archive import ArchiveSettings
from marketpulse.contract.settings.common import S3Settings
from marketpulse.contract.settings.dashboard import DashboardSettings
from marketpulse.contract.settings.ingest import IngestSettings
from marketpulse.contract.settings.transform import TransformSettings

PREFIX: Final = "MARKETPULSE_"

# What each workload's entrypoint loads: the bucket's settings come from S3Settings beside the
# workload's own (ingest needs them for an s3:// replay file).
READERS: Final[dict[str, tuple[type[BaseSettings], ...]]] = {
    "ingest": (IngestSettings, S3Settings),
    "archive": (ArchiveSettings, S3Settings),
    "transform": (TransformSettings, S3Settings),
    "alerts": (AlertsSettings,),
    "dashboard": (DashboardSettings,),
}

# Read outside the settings classes: fault points (the reliability suite arms them in workloads),
# the dbt project's location and the variables its profile and project read, and the development
# tools' own (`marketpulse dev`, the test fixtures), which a developer's shell may hold while running
# a workload by hand.
OTHER_VARIABLES: Final = frozenset(
    {
        "MARKETPULSE_FAILPOINTS",
        "MARKETPULSE_DBT_PROJECT_DIR",
        "MARKETPULSE_DBT_TARGET",
        "MARKETPULSE_DBT_THREADS",
        "MARKETPULSE_SILVER_SCHEMA",
        "MARKETPULSE_SCREENSHOT_DIR",
        "MARKETPULSE_CACHE_DIR",
        "MARKETPULSE_STATE_DIR",
        "MARKETPULSE_DEBIAN_MIRROR",
        "MARKETPULSE_USE_EXISTING_CLUSTER",
        "MARKETPULSE_RELIABILITY_FULL",
    }
)

# `marketpulse run` takes a pipeline's Secret values from MARKETPULSE_SECRET_<SECRET>_<KEY>.
OTHER_PREFIXES: Final = ("MARKETPULSE_SECRET_",)


class UnknownVariableError(ValueError):
    """A `MARKETPULSE_*` variable that no part of MarketPulse reads."""


def field_variables(settings: type[BaseSettings], field: str) -> list[str]:
    """The environment variables that set `field` of `settings`, upper-cased, the primary one first
    (pydantic-settings ignores case)."""
    if field not in settings.model_fields:
        raise KeyError(f"{settings.__name__} has no field {field!r}")
    alias = settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice).upper() for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias.upper()]
    return [f"{settings.model_config.get('env_prefix', '')}{field}".upper()]


def variables_read(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable `settings` reads, upper-cased."""
    return {name for field in settings.model_fields for name in field_variables(settings, field)}


def known_variables(extra: Iterable[type[BaseSettings]] = ()) -> frozenset[str]:
    readers = {reader for group in READERS.values() for reader in group} | set(extra)
    return frozenset(OTHER_VARIABLES.union(*(variables_read(reader) for reader in readers)))


def check_environment(environ: Mapping[str, str], extra: Iterable[type[BaseSettings]] = ()) -> None:
    """Raise UnknownVariableError naming each `MARKETPULSE_*` variable in `environ` nobody reads."""
    known = known_variables(extra)
    unknown = sorted(
        name
        for name in environ
        if name.upper().startswith(PREFIX)
        and name.upper() not in known
        and not name.upper().startswith(OTHER_PREFIXES)
    )
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{name} is not a MarketPulse variable{hint}")
    raise UnknownVariableError("; ".join(problems))


def variable(settings: type[BaseSettings], field: str) -> str:
    """The environment variable that sets `field` of `settings` (its first name, where it has several).

    The renderer names every variable through this, so a renamed or removed field breaks rendering
    instead of leaving a pod with a variable nobody reads.
    """
    return field_variables(settings, field)[0]


def variable_at(settings: type[BaseSettings], loc: str) -> str:
    """The environment variable behind a validation error's location: a field name or any of its
    variables (pydantic-settings reports the lower-cased name it matched)."""
    for field in settings.model_fields:
        if loc.upper() in {field.upper(), *field_variables(settings, field)}:
            return variable(settings, field)
    return loc.upper()
