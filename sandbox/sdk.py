"""The strategy SDK: the only names user code imports from the platform (``from sandbox.sdk import ...``).

Tick style::

    class MyStrategy(Strategy):
        CONFIG_SCHEMA = {...}
        def init(self) -> dict: ...            # becomes self.state
        def on_tick(self, tick: Tick) -> None: ...
        def render(self) -> dict: ...          # {"widgets": [...]}

Signal style: ``should_enter(ctx) -> list[EntrySignal]`` and
``should_exit(ctx, position) -> ExitSignal | None`` (as module functions in a bundle's
``entry.py``/``exit.py``, or as methods of a :class:`SignalStrategy` subclass).

Everything here is read-only from user code: SDK classes are sealed, SDK values are immutable.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.context import TickContext


class SealedMeta(type):
    """Metaclass refusing attribute writes on the SDK's own classes (not on user subclasses)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        if cls.__dict__.get("_sdk_sealed", False):
            raise AttributeError(f"the SDK class {cls.__name__} is read-only")
        super().__setattr__(name, value)

    def __delattr__(cls, name: str) -> None:
        if cls.__dict__.get("_sdk_sealed", False):
            raise AttributeError(f"the SDK class {cls.__name__} is read-only")
        super().__delattr__(name)

    def __repr__(cls) -> str:
        return f"<class {cls.__name__!r}>"


EMPTY_SCHEMA: Mapping[str, Any] = MappingProxyType({})
"""The base classes' ``CONFIG_SCHEMA``: read-only, so no instance can change another's defaults."""


_TickBase = namedtuple(
    "_TickBase",
    ["market", "ts", "price", "bid", "ask", "volume", "open", "high", "low", "close"],
    defaults=(None, None, None, None),
)


class Tick(_TickBase, metaclass=SealedMeta):
    """One market update: market, ts, price, bid, ask, volume (+ open/high/low/close when bar-driven)."""

    __slots__ = ()
    _sdk_sealed = True


def _readonly_setattr(self: object, name: str, value: object) -> None:
    raise AttributeError(f"{type(self).__name__} is read-only")


def _readonly_delattr(self: object, name: str) -> None:
    raise AttributeError(f"{type(self).__name__} is read-only")


class EntrySignal(metaclass=SealedMeta):
    """A request to open a position; the engine sizes it from the instance's capital allocation.

    ``sl`` / ``tp``: an optional stop-loss / take-profit attached to the entry once it fills (a
    price, or ``"2%"`` of the fill price), as ``place_order`` takes them."""

    __slots__ = ("market", "side", "reason", "confidence", "sl", "tp")
    _sdk_sealed = True
    market: str
    side: str
    reason: str
    confidence: float
    sl: Any
    tp: Any

    def __init__(
        self,
        market: str,
        side: str = "long",
        reason: str = "",
        confidence: float = 1.0,
        sl: Any = None,
        tp: Any = None,
    ) -> None:
        object.__setattr__(self, "market", market)
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "sl", sl)
        object.__setattr__(self, "tp", tp)

    __setattr__ = _readonly_setattr
    __delattr__ = _readonly_delattr

    def __repr__(self) -> str:
        return f"EntrySignal({self.market!r}, {self.side!r}, {self.reason!r}, {self.confidence!r})"


class ExitSignal(metaclass=SealedMeta):
    """A request to close the position ``position_id``."""

    __slots__ = ("position_id", "reason")
    _sdk_sealed = True
    position_id: str
    reason: str

    def __init__(self, position_id: str, reason: str = "") -> None:
        object.__setattr__(self, "position_id", position_id)
        object.__setattr__(self, "reason", reason)

    __setattr__ = _readonly_setattr
    __delattr__ = _readonly_delattr

    def __repr__(self) -> str:
        return f"ExitSignal({self.position_id!r}, {self.reason!r})"


class Position(metaclass=SealedMeta):
    """An open position (read-only), handed to ``should_exit``."""

    __slots__ = (
        "position_id",
        "market",
        "side",
        "qty",
        "entry_price",
        "current_price",
        "unrealized_pnl",
        "opened_at",
    )
    _sdk_sealed = True
    position_id: str
    market: str
    side: str
    qty: float
    entry_price: float
    current_price: float
    unrealized_pnl: float
    opened_at: float

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, fields.get(name))

    __setattr__ = _readonly_setattr
    __delattr__ = _readonly_delattr

    def __repr__(self) -> str:
        return f"Position({self.position_id!r}, {self.market!r}, {self.side!r}, qty={self.qty!r})"


class OrderReceipt(metaclass=SealedMeta):
    """What ``context.place_order`` returns: client_order_id, status (submitted|shadow|rejected), reason."""

    __slots__ = ("client_order_id", "status", "reason")
    _sdk_sealed = True
    client_order_id: str | None
    status: str
    reason: str | None

    def __init__(self, client_order_id: str | None, status: str, reason: str | None = None) -> None:
        object.__setattr__(self, "client_order_id", client_order_id)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "reason", reason)

    __setattr__ = _readonly_setattr
    __delattr__ = _readonly_delattr

    @property
    def ok(self) -> bool:
        return self.status != "rejected"

    def __repr__(self) -> str:
        return f"OrderReceipt({self.client_order_id!r}, {self.status!r}, {self.reason!r})"


class Strategy(metaclass=SealedMeta):
    """Base class of tick-style strategies. ``self.config`` and ``self.context`` are read-only."""

    _sdk_sealed = True
    CONFIG_SCHEMA: Mapping[str, Any] = EMPTY_SCHEMA
    state: Any
    # Set by the runtime with object.__setattr__ (unreachable from user code: "_" names).
    _sb_config: Mapping[str, Any]
    _sb_context: TickContext | None

    @property
    def config(self) -> Mapping[str, Any]:
        """The instance's validated config (a read-only mapping)."""
        return self._sb_config

    @property
    def context(self) -> TickContext | None:
        """The capability context of the current call (revoked when the call returns)."""
        return self._sb_context

    def init(self) -> dict[str, Any]:
        return {}

    def on_tick(self, tick: Tick) -> None:
        return None

    def render(self) -> dict[str, Any]:
        return {"widgets": []}

    def on_config(self, changed: list[str]) -> None:
        """Called after a live config update; ``self.config`` already holds the new values."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} strategy>"


class SignalStrategy(metaclass=SealedMeta):
    """Base class of single-file signal-style strategies."""

    _sdk_sealed = True
    CONFIG_SCHEMA: Mapping[str, Any] = EMPTY_SCHEMA
    THESIS: str = ""
    state: Any
    _sb_config: Mapping[str, Any]

    @property
    def config(self) -> Mapping[str, Any]:
        return self._sb_config

    def init(self) -> dict[str, Any]:
        return {}

    def should_enter(self, ctx: Any) -> list[EntrySignal]:
        return []

    def should_exit(self, ctx: Any, position: Position) -> ExitSignal | None:
        return None

    def render(self) -> dict[str, Any]:
        return {"widgets": []}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} strategy>"


# --- widget helpers (plain dicts; see README.md ("Writing a strategy") for the shapes) ---


def series(name: str, points: list[Any]) -> dict[str, Any]:
    return {"name": name, "points": [[p[0], p[1]] for p in points]}


def line_chart(title: str, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "line_chart", "title": title, "series": list(series)}


def metric(label: str, value: Any, unit: str | None = None) -> dict[str, Any]:
    widget: dict[str, Any] = {"type": "metric", "label": label, "value": value}
    if unit is not None:
        widget["unit"] = unit
    return widget


def table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> dict[str, Any]:
    widget: dict[str, Any] = {"type": "table", "columns": list(columns), "rows": [list(r) for r in rows]}
    if title is not None:
        widget["title"] = title
    return widget


def text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def log_widget(lines: list[str]) -> dict[str, Any]:
    return {"type": "log", "lines": list(lines)}


def is_finite_number(value: object) -> bool:
    """True for an exact int/float that is finite (bool excluded)."""
    return (type(value) is int or type(value) is float) and math.isfinite(value)


SDK_EXPORTS: dict[str, Any] = {
    "Strategy": Strategy,
    "SignalStrategy": SignalStrategy,
    "Tick": Tick,
    "EntrySignal": EntrySignal,
    "ExitSignal": ExitSignal,
    "Position": Position,
    "OrderReceipt": OrderReceipt,
    "series": series,
    "line_chart": line_chart,
    "metric": metric,
    "table": table,
    "text": text,
    "log_widget": log_widget,
}
