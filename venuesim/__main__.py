"""`python -m venuesim alpaca|binance [--port N]`: one loopback venue in the foreground, with demo data.

Demo instruments and one account whose keys are printed (they are the simulator's own, not secrets):
point a platform at it with STRATBOX_VENUES (see stratbox/venues/registry.py).
"""

from __future__ import annotations

import argparse
from decimal import Decimal

import uvicorn

from venuesim import alpaca, binance
from venuesim.engine import Instrument, Venue

DEMO_KEYS = {
    "alpaca": ("PKDEMOSIMULATED0001", "simulated-alpaca-secret"),
    "binance": ("simulated-binance-key", "simulated-binance-secret"),
}


def demo_venue(kind: str) -> Venue:
    venue = Venue(kind)
    d = Decimal
    if kind == "alpaca":
        venue.add_instrument(
            Instrument(
                "AAPL",
                "AAPL",
                "USD",
                d("0.01"),
                d("0.0001"),
                d("0.0001"),
                d("187.10"),
                d("187.12"),
                name="Apple Inc. (simulated)",
            )
        )
        venue.add_instrument(
            Instrument(
                "SPY",
                "SPY",
                "USD",
                d("0.01"),
                d("0.0001"),
                d("0.0001"),
                d("601.20"),
                d("601.22"),
                name="SPDR S&P 500 ETF (simulated)",
                exchange="ARCA",
            )
        )
        venue.add_account(*DEMO_KEYS["alpaca"], cash=d("100000"))
    else:
        venue.add_instrument(
            Instrument(
                "BTCUSDT",
                "BTC",
                "USDT",
                d("0.01"),
                d("0.00001"),
                d("0.00001"),
                d("60000.00"),
                d("60000.10"),
                asset_class="crypto",
            )
        )
        venue.add_instrument(
            Instrument(
                "ETHUSDT",
                "ETH",
                "USDT",
                d("0.01"),
                d("0.0001"),
                d("0.0001"),
                d("3000.00"),
                d("3000.05"),
                asset_class="crypto",
            )
        )
        venue.add_account(*DEMO_KEYS["binance"], cash=d("100000"), currency="USDT")
    return venue


def main() -> None:
    parser = argparse.ArgumentParser(description="a loopback venue (simulated)")
    parser.add_argument("kind", choices=["alpaca", "binance"])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    venue = demo_venue(args.kind)
    app = alpaca.create_app(venue) if args.kind == "alpaca" else binance.create_app(venue)
    key, secret = DEMO_KEYS[args.kind]
    print(f"simulated {args.kind} venue; demo key {key} / {secret}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port or 8790, log_level="warning", ws="websockets-sansio")


if __name__ == "__main__":
    main()
