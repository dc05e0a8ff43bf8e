"""Formats the StockPipeline API checks at admission that a plain pattern cannot say clearly:
cron schedules, IANA time zones, the S3 bucket-name rules and Kubernetes label names. Each is
written once, as an RE2 expression or a list that both CEL (in the CRD) and Python use, so both
refuse the same values.
"""

from __future__ import annotations

import importlib.resources
import re

# --- cron, as the CronJob controller parses it (five fields, or a descriptor) ----------------------
_MONTHS = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_DAYS = "SUN|MON|TUE|WED|THU|FRI|SAT"
# Names in either case, as the parser takes them (RE2's (?i) is not in every CEL regex engine).
_MONTHS, _DAYS = (f"{names}|{names.lower()}" for names in (_MONTHS, _DAYS))
# Character classes instead of backslashes: the expression is embedded in a CEL string literal.
_FIELD_VALUES = (
    "[0-5]?[0-9]",  # minute
    "[01]?[0-9]|2[0-3]",  # hour
    "0?[1-9]|[12][0-9]|3[01]",  # day of month
    f"0?[1-9]|1[0-2]|{_MONTHS}",  # month
    f"[0-7]|{_DAYS}",  # day of week
)
_ANY = ("[*]", "[*]", "[*?]", "[*]", "[*?]")  # '?' means '*' in the day fields


def _cron_field(values: str, any_: str) -> str:
    item = f"({any_}|({values})(-({values}))?)(/[1-9][0-9]*)?"
    return f"{item}(,{item})*"


CRON_SCHEDULE = (
    "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + " +".join(_cron_field(v, a) for v, a in zip(_FIELD_VALUES, _ANY, strict=True))
    + ")$"
)

# --- time zones: the IANA database of the pinned tzdata package (the API server's is as recent) ----
TIME_ZONES = tuple(sorted(importlib.resources.files("tzdata").joinpath("zones").read_text().split()))


def cel_string_list(values: tuple[str, ...]) -> str:
    assert all("'" not in v and "\\" not in v for v in values)
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# --- S3 bucket names: what the pattern of the field leaves to say ----------------------------------
_IP_SHAPED = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$")


def s3_bucket_name_ok(name: str) -> bool:
    """AWS's rules beyond 3-63 lower-case letters, digits, '.' and '-' (the field's pattern)."""
    return not (
        ".." in name
        or ".-" in name
        or "-." in name
        or _IP_SHAPED.match(name)
        or name.startswith(("xn--", "sthree-"))
        or name.endswith(("-s3alias", "--ol-s3"))
    )


# --- Kubernetes label and annotation names (qualified names) and label values ---------------------
# An optional DNS-subdomain prefix and '/', then a name of at most 63 characters. The bounds are in
# the expression, as CEL cannot bound the length of a map key.
QUALIFIED_NAME = r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# Prefixes only Kubernetes and MarketPulse set: the operator finds, selects and prunes its objects
# by app.kubernetes.io/instance and app.kubernetes.io/managed-by, so a user label there could take
# an object out of (or into) a pipeline.
RESERVED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io", "marketpulse.io")
RESERVED_LABEL_KEY = "^([^/]*[.])?(" + "|".join(d.replace(".", "[.]") for d in RESERVED_LABEL_DOMAINS) + ")/"
MAX_EXTRA_LABELS = 16


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def label_problems(labels: dict[str, str], where: str) -> list[str]:
    """What is wrong with extra labels the operator would put on its objects; empty when nothing."""
    problems = []
    if len(labels) > MAX_EXTRA_LABELS:
        problems.append(f"{where}: at most {MAX_EXTRA_LABELS} labels, got {len(labels)}")
    for key, value in labels.items():
        if not isinstance(key, str) or not re.fullmatch(QUALIFIED_NAME, key):
            problems.append(
                f"{where}: {_shown(key)} is not a label name (an optional DNS prefix and '/', then up to 63 "
                "letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)"
            )
        elif re.match(RESERVED_LABEL_KEY, key):
            domains = ", ".join(RESERVED_LABEL_DOMAINS)
            problems.append(
                f"{where}: {_shown(key)} is reserved (the prefixes {domains} and their sub-domains "
                "belong to Kubernetes and the operator, which selects its objects by them)"
            )
        elif not isinstance(value, str) or not re.fullmatch(LABEL_VALUE, value):
            problems.append(
                f"{where}: the value of {_shown(key)} is not a label value (up to 63 letters, digits, "
                f"'-', '_' or '.', beginning and ending with a letter or digit), got {_shown(value)}"
            )
    return problems


# --- durations: hours, minutes and seconds, in that order, as both Go (CEL) and Prometheus read them -
DURATION = "^([0-9]{1,3}h)?([0-9]{1,4}m)?([0-9]{1,5}s)?$"
_DURATION_PARTS = re.compile(r"([0-9]+)([hms])")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> int | None:
    """`1h30m` → 5400; None when the text is not such a duration (e.g. `5 minutes`, `-5m`, `1000d`)."""
    if not text or not re.fullmatch(DURATION, text):
        return None
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PARTS.findall(text))


def prometheus_duration(seconds: int) -> str:
    """Seconds → the shortest duration Prometheus reads back exactly: 300 → `5m`, 5400 → `1h30m`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"
