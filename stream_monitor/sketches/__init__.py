"""Binning of raw values into the fixed bins that windows count (mergeable by addition)."""
