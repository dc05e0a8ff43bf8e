"""alerts: evaluate a pipeline's alert rules over the ticks stream."""
