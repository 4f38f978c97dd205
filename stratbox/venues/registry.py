"""Which adapter serves a broker name, with which configuration and shared rate limit.

Broker names: `alpaca:paper`, `alpaca:live`, `ccxt:<exchange id>` (any exchange ccxt knows), plus
any name configured in `settings.STRATBOX_VENUES` (JSON: name -> {"adapter": "alpaca" | "ccxt",
"label", "simulated", urls and options}), which is how the local demo's simulated venue and a
self-hosted gateway are named. A configured name also overrides a built-in one's settings.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings

from stratbox.markets.quotes import redis_client
from stratbox.venues.base import VENUE_REJECTED, VenueAdapter, VenueError
from stratbox.venues.ratelimit import TokenBucket

# Alpaca's trading API allows 200 requests a minute per account.
_ALPACA_LIMIT = {"rate_per_second": 200 / 60, "burst": 10}


def venue_config(broker: str) -> dict[str, Any]:
    """The adapter configuration of a broker name; VenueError(VENUE_REJECTED) for an unknown one."""
    configured = (getattr(settings, "STRATBOX_VENUES", None) or {}).get(broker)
    kind, _, rest = broker.partition(":")
    ccxt_base = _ccxt_config(rest) if kind == "ccxt" else None
    if kind == "alpaca" and rest in ("paper", "live"):
        base: dict[str, Any] = {
            "adapter": "alpaca",
            "environment": rest,
            "label": f"Alpaca ({rest})",
            **_ALPACA_LIMIT,
        }
    elif ccxt_base is not None:
        base = ccxt_base
    elif configured is None:
        raise VenueError(
            VENUE_REJECTED, f"unknown broker {broker!r}: use alpaca:paper, alpaca:live or ccxt:<exchange>"
        )
    else:
        base = {}
    config = {**base, **(configured or {})}
    if config.get("adapter") not in ("alpaca", "ccxt"):
        raise VenueError(VENUE_REJECTED, f"broker {broker!r} names no adapter")
    return config


def _ccxt_config(exchange: str) -> dict[str, Any] | None:
    """The built-in configuration of an exchange ccxt knows (None: it knows no such exchange)."""
    import ccxt  # a second to import: only ccxt brokers pay it, not every worker or Alpaca process

    if exchange not in ccxt.exchanges:
        return None
    rate_ms = getattr(getattr(ccxt, exchange), "rateLimit", 1000) or 1000
    return {
        "adapter": "ccxt",
        "exchange": exchange,
        "label": exchange.capitalize(),
        "rate_per_second": 1000 / rate_ms,
        "burst": 5,
    }


def venue_code(broker: str) -> str:
    """The Market.venue its instruments are stored under (ALPACA, BINANCE, or the configured one)."""
    config = venue_config(broker)
    return str(
        config.get("venue") or ("ALPACA" if config["adapter"] == "alpaca" else config["exchange"].upper())
    )


def brokers_for_venue(venue: str) -> list[str]:
    """Broker names whose instruments live under this Market.venue (configured ones, the built-in
    Alpaca ones, then ccxt's own)."""
    configured = sorted(getattr(settings, "STRATBOX_VENUES", None) or {})
    built_in = [n for n in ("alpaca:paper", "alpaca:live", f"ccxt:{venue.lower()}") if n not in configured]
    return [n for n in [*configured, *built_in] if _safe_code(n) == venue]


def _safe_code(broker: str) -> str:
    try:
        return venue_code(broker)
    except VenueError:
        return ""


def broker_choices() -> list[tuple[str, str]]:
    """Brokers a user can pick (configured ones first, simulated ones labelled so)."""
    out = []
    for name, config in sorted((getattr(settings, "STRATBOX_VENUES", None) or {}).items()):
        label = config.get("label") or name
        out.append((name, f"{label} (simulated venue)" if config.get("simulated") else label))
    out += [
        ("alpaca:paper", "Alpaca (paper)"),
        ("alpaca:live", "Alpaca (live)"),
        ("ccxt:binance", "Binance (ccxt)"),
    ]
    return out


def venue_describe(broker: str) -> dict[str, Any]:
    """How the UI names a broker: label, environment (paper | live | sandbox | simulated) and whether
    it is a simulated (loopback) venue. Never raises: an unknown broker is described as such."""
    try:
        config = venue_config(broker)
    except VenueError:
        return {"broker": broker, "label": broker or "—", "environment": "unknown", "simulated": False}
    simulated = bool(config.get("simulated"))
    if simulated:
        environment = "simulated"
    elif config["adapter"] == "alpaca":
        environment = str(config.get("environment") or "paper")
    else:
        environment = "sandbox" if config.get("sandbox") else "live"
    label = str(config.get("label") or broker)
    if simulated and "simulated" not in label.lower():
        label = f"{label} (simulated venue)"
    return {"broker": broker, "label": label, "environment": environment, "simulated": simulated}


def bucket_for(broker: str, credentials: dict[str, str], config: dict[str, Any]) -> TokenBucket:
    """The account's shared bucket: keyed by broker and a digest of the API key (never the key itself)."""
    key_id = credentials.get("api_key_id") or credentials.get("api_key") or ""
    digest = hashlib.sha256(key_id.encode()).hexdigest()[:16]
    return TokenBucket(
        redis_client(),
        f"{broker}:{digest}",
        rate=float(config.get("rate_per_second", 1.0)),
        burst=float(config.get("burst", 1.0)),
        max_wait=float(config.get("max_wait", 30.0)),
    )


def adapter_build(broker: str, credentials: dict[str, str], *, timeout: float | None = None) -> VenueAdapter:
    config = venue_config(broker)
    bucket = bucket_for(broker, credentials, config)
    seconds = timeout if timeout is not None else float(config.get("timeout", 10.0))
    venue = config.get("venue")
    if config["adapter"] == "alpaca":
        # alpaca-py takes a second to import: only processes that build an Alpaca adapter load it.
        from stratbox.venues.alpaca import AlpacaAdapter

        return AlpacaAdapter(
            credentials=credentials, config=config, bucket=bucket, timeout=seconds, venue=venue or "ALPACA"
        )
    # ccxt (and ccxt.pro) take seconds to import: only processes that build a ccxt adapter load them.
    from stratbox.venues.exchanges import CcxtAdapter

    return CcxtAdapter(credentials=credentials, config=config, bucket=bucket, timeout=seconds, venue=venue)
