"""What the operator manages outside Kubernetes: S3 buckets and (direct backend) Kafka topics.

Synchronous SDK calls; the reconcile runs them on worker threads.
"""
