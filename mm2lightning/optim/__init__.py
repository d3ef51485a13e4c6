"""Optimizer wrappers, builders and parameter schedulers (no Lightning import)."""
