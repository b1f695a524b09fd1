"""Pane state per input partition: ledgers, windows, label joins, checkpoints and restore."""
