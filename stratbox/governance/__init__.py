"""Governance: paper track record, graduation criteria, staff approval of live trading."""
