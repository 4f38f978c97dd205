"""`python -m venuesim alpaca|binance [--port N]`: one loopback venue in the foreground, with demo data.

Demo instruments and one account whose keys are printed (they are the simulator's own, not secrets):
point a platform at it with STRATBOX_VENUES (see stratbox/venues/registry.py).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from decimal import Decimal
from pathlib import Path

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


def walk(venue: Venue, *, seed: int = 7, every: float = 1.0) -> None:
    """Move every quote by a small seeded random step each `every` seconds (a demo that is alive)."""
    rng = random.Random(seed)
    while True:
        time.sleep(every)
        with venue.lock:
            for inst in venue.instruments.values():
                mid = (inst.bid + inst.ask) / 2
                step = Decimal(str(round(rng.gauss(0.0, 0.0005), 6)))
                bid = max(inst.tick, ((mid * (1 + step)) / inst.tick).to_integral_value() * inst.tick)
                venue.set_quote(inst.symbol, bid, bid + inst.tick * 2)


def main() -> None:
    parser = argparse.ArgumentParser(description="a loopback venue (simulated)")
    parser.add_argument("kind", choices=["alpaca", "binance"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--keys-file", default="", help='JSON {"api_key_id", "api_secret_key"} of the demo account'
    )
    args = parser.parse_args()
    if args.keys_file:
        keys = json.loads(Path(args.keys_file).read_text())
        DEMO_KEYS[args.kind] = (
            keys.get("api_key_id") or keys["api_key"],
            keys.get("api_secret_key") or keys["secret"],
        )
    venue = demo_venue(args.kind)
    app = alpaca.create_app(venue) if args.kind == "alpaca" else binance.create_app(venue)
    threading.Thread(target=walk, args=(venue,), name="venuesim-walk", daemon=True).start()
    key, _secret = DEMO_KEYS[args.kind]
    print(f"simulated {args.kind} venue on 127.0.0.1:{args.port or 8790}; demo key id {key}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port or 8790, log_level="warning", ws="websockets-sansio")


if __name__ == "__main__":
    main()
