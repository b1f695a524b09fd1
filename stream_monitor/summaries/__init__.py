"""Mergeable summaries of a window's events: bins, sketches and the statistics read from them."""
