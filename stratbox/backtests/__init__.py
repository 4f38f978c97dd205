"""Backtests: replays of stored bars through the sandboxed strategy with the paper fill model."""
