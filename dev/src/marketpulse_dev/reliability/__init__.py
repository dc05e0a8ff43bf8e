"""Fault-injection harness for the nothing-lost invariants (docs/architecture.md, "Invariants"):
the acknowledged-tick ledger, a TCP fault proxy, the pipeline under test, and the drain-and-check
that judges a scenario."""
