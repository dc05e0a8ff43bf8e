"""The local executor: run a StockPipeline's workloads as supervised processes on one machine."""
