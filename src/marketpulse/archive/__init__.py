"""archive: Kafka ticks → bounded raw NDJSON objects in S3 (bronze); offsets committed after the write."""
