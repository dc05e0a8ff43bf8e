"""The Streamlit analytics app: `marketpulse dashboard` serves `app.py`, a router over `pages/`.

Data comes through one module, `data`, which reads gold Parquet from the pipeline's bucket (DuckDB
mode) or Snowflake's gold schema (Snowflake mode); the live quotes always come from the bucket.
"""
