"""The workloads' environment: what the renderer sets and each workload parses, one class per workload."""
