"""Reading a /metrics page back: Prometheus text exposition parsed by prometheus_client's own parser,
so label values with `,`, `}`, `"` or escaped newlines read as the exporter wrote them."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Sample name (a counter's `_total`, a histogram's `_bucket`, ...) -> every series: (labels, value).
Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by its full sample name."""
    found: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    except ValueError as error:
        raise ValueError(f"not Prometheus text exposition: {error}") from None
    return found


def sample_sum(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s series whose labels include `labels` (0 when none is there yet)."""
    return sum(
        value
        for series, value in samples.get(name, [])
        if all(series.get(key) == wanted for key, wanted in labels.items())
    )


def scrape(port: int, timeout: float = 5) -> Samples:
    """The samples a workload on 127.0.0.1:`port` serves now."""
    return parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout).text)


def scrape_sum(port: int, name: str, timeout: float = 5, **labels: str) -> float:
    """`sample_sum` of what 127.0.0.1:`port` serves now."""
    return sample_sum(scrape(port, timeout), name, **labels)
