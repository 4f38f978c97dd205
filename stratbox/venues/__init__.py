"""Venue adapters (Alpaca, crypto exchanges through ccxt) and the market data they feed.

Trusted code only: adapters hold decrypted credentials and talk to venues; they never run in, or
hand anything to, a sandbox host. The layer sits just above `markets` (it writes Market and Bar
rows and the quote path) and below `instances` and `trading`, which use it for accounts.
"""
