"""MarketPulse: real-time stock-market analytics on Kubernetes."""
