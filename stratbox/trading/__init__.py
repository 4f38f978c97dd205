"""Accounts, orders, fills, positions, brokers and the pre-trade risk gate."""
