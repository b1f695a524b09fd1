"""Where results go: Prometheus exposition, the drift-events topic, the dead-letter topic."""
