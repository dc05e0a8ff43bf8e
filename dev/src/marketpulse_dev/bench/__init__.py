"""`marketpulse bench`: the performance figures of ARCHITECTURE §6, each beside a naive baseline
and a ceiling measured in the same run."""
