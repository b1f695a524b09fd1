"""Tooling beside the service: benchmarks, the demo, the embedded broker, synthetic traffic."""
