"""`marketpulse bench`: the figures of docs/architecture.md, "Performance targets", each beside a
naive baseline and a ceiling measured in the same run."""
