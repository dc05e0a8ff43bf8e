"""Reading /metrics back: label values that a hand-rolled split or regex misreads parse as written."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from marketpulse_dev.metrics_text import parse, sample_sum

HOSTILE = ['a,b="c"', "x}y", 'say "hi"', "two\nlines", "back\\slash"]


def test_label_values_with_commas_braces_quotes_and_newlines_read_as_the_exporter_wrote_them() -> None:
    registry = CollectorRegistry()
    counter = Counter("demo_events", "Events.", ["field", "reason"], registry=registry)
    for n, value in enumerate(HOSTILE, 1):
        counter.labels(field=value, reason="r,1").inc(n)
    text = generate_latest(registry).decode()

    samples = parse(text)

    assert sorted(labels["field"] for labels, _ in samples["demo_events_total"]) == sorted(HOSTILE)
    for n, value in enumerate(HOSTILE, 1):
        assert sample_sum(samples, "demo_events_total", field=value) == n
    assert sample_sum(samples, "demo_events_total", reason="r,1") == sum(range(1, len(HOSTILE) + 1))
    assert sample_sum(samples, "demo_events_total", field="absent") == 0
    assert sample_sum(samples, "no_such_metric_total") == 0


def test_histogram_samples_keep_their_suffixes_and_le_labels() -> None:
    samples = parse(
        "# HELP x\n"
        "# TYPE d_seconds histogram\n"
        'd_seconds_bucket{le="0.5",trigger="create"} 2.0\n'
        'd_seconds_bucket{le="+Inf",trigger="create"} 3.0\n'
        'd_seconds_sum{trigger="create"} 1.25\n'
        'd_seconds_count{trigger="create"} 3.0\n'
    )

    assert samples["d_seconds_bucket"] == [
        ({"le": "0.5", "trigger": "create"}, 2.0),
        ({"le": "+Inf", "trigger": "create"}, 3.0),
    ]
    assert sample_sum(samples, "d_seconds_sum", trigger="create") == 1.25


def test_a_page_that_is_not_prometheus_text_is_refused_not_read_as_zero() -> None:
    with pytest.raises(ValueError, match="not Prometheus text exposition"):
        parse('demo_total{field="unterminated} 1\n')
