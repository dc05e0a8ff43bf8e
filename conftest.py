"""Shared pytest setup: fixtures that run real Kafka, S3, Kubernetes and fakesnow servers."""

pytest_plugins = ["marketpulse_dev.pytest_plugin"]
