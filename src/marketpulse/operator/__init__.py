"""The kopf operator that turns a StockPipeline into a running pipeline."""
