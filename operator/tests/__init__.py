"""Tests of the operator: a package, so pytest names modules tests.* and never re-imports the top-level
operator/ folder as a namespace package that would shadow the standard library's `operator`."""
