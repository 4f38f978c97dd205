"""Loopback venues that speak real venues' wire protocols (Alpaca; Binance spot for ccxt).

For tests and the local demo only: the platform (`stratbox`) never imports this package (an
import-linter contract says so). The venues' official client libraries, pointed here by their URL
overrides, work unchanged; see engine.py for the matching and fault model.
"""
