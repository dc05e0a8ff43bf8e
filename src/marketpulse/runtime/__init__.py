"""What every workload shares: structured logs, the metrics/health endpoint, graceful shutdown."""
