"""Obtain, start and stop the real components MarketPulse runs against locally.

Kafka (KRaft, from Maven Central jars), an S3 server (versitygw), a Kubernetes control plane
(etcd + kube-apiserver + kube-controller-manager), helm and fakesnow. The same code serves
`marketpulse dev up|status|down`, the pytest fixtures and the local demo.
"""
