"""Kafka plumbing: client settings, the consumer loop and its commit order."""
