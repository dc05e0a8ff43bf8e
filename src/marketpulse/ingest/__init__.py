"""ingest: read a source, produce one Kafka record per tick (key = symbol), bad data to the DLQ."""
