"""Writes for trading, one module per concern:

- `orders`: placing orders (idempotent, under the tenant then account row locks, through the
  risk gate), filling resting limit orders on a new quote, cancelling open orders;
- `ledger`: booking a fill into its position, the account's cash and the order;
- `accounts`: creating accounts and rotating the credentials key.

Reads (snapshots, stats, daily P&L) are in `stratbox.trading.selectors`.

This package re-exports the public functions under their old path (`stratbox.trading.services.
order_place`, ...), including the reads that moved to the selectors, so callers written against
the single `services.py` keep working; new code imports from the module that owns the function.
"""

from stratbox.trading.selectors import (
    instance_daily_pnl,
    instance_snapshot,
    instance_stats,
    order_as_dict,
    position_as_dict,
)
from stratbox.trading.services.accounts import account_create, account_credentials_rotate
from stratbox.trading.services.orders import (
    OrderResult,
    client_order_id_for,
    order_place,
    orders_cancel_open,
    orders_mark_to_market,
)
from stratbox.trading.snapshot_cache import instance_snapshots_many

__all__ = [
    "OrderResult",
    "account_create",
    "account_credentials_rotate",
    "client_order_id_for",
    "instance_daily_pnl",
    "instance_snapshot",
    "instance_snapshots_many",
    "instance_stats",
    "order_as_dict",
    "order_place",
    "orders_cancel_open",
    "orders_mark_to_market",
    "position_as_dict",
]
