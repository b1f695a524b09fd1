"""Pure statistic formulas over bin counts and sums; no state, no I/O."""
