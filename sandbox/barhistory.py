"""``context.history(n, field)``: recent bars of the instance's market, served by trusted code.

The trusted side hands the context the bars as columns (``ts, open, high, low, close, volume``,
oldest first): the engine from its per-market cache of recent quotes (sent only to strategies
that ask for history, see ``uses_history``), a backtest from the chunk it is running plus the
tail of the chunks before. The strategy does not keep a window in its state. A call returns a
fresh list of floats, oldest first, ending with the current bar, at most ``n`` long (shorter
while fewer bars exist).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

HISTORY_FIELDS = ("ts", "open", "high", "low", "close", "volume")
MAX_HISTORY_BARS = 1000
"""The largest ``n`` a strategy may ask for (and what the trusted side keeps per market)."""


def history_args(n: Any, field: Any) -> None:
    """Refuse bad arguments with a clear error (exact types: no lying subclasses)."""
    if type(n) is not int or not 1 <= n <= MAX_HISTORY_BARS:
        raise ValueError(f"history(n): n must be an int between 1 and {MAX_HISTORY_BARS}")
    if type(field) is not str or field not in HISTORY_FIELDS:
        raise ValueError(f"history(n, field): field must be one of {', '.join(HISTORY_FIELDS)}")


Columns = Mapping[str, Sequence[float]]


def history_window(tail: Columns | None, cols: Columns | None, end: int, n: int, field: str) -> list[float]:
    """The last ``n`` values of ``field`` up to index ``end`` (exclusive) of ``cols``, continued
    backwards into ``tail`` (earlier bars) when ``cols`` has fewer than ``n`` before ``end``."""
    out: list[float] = []
    if cols is not None:
        col = cols.get(field)
        if col is not None:
            out = list(col[max(0, end - n) : end])
    missing = n - len(out)
    if missing > 0 and tail is not None:
        before = tail.get(field)
        if before:
            out = list(before[-missing:]) + out
    return out


class PriceHistory:
    """Signal style ``ctx.history``: the recent prices as a read-only sequence (``len(h)``,
    ``h[-1]``, ``h[-20:]``, iteration — as before), and callable like the tick context's
    ``history(n, field="close")`` for recent bars of the market."""

    __slots__ = ("_prices", "_bars")
    _prices: tuple[float, ...]
    _bars: Callable[[int, str], list[float]]

    def __init__(self, prices: tuple[float, ...], bars: Callable[[int, str], list[float]]) -> None:
        object.__setattr__(self, "_prices", prices)
        object.__setattr__(self, "_bars", bars)  # a callable (n, field) -> list[float]

    def __call__(self, n: Any, field: Any = "close") -> list[float]:
        history_args(n, field)
        return self._bars(n, field)

    def __len__(self) -> int:
        return len(self._prices)

    def __getitem__(self, index: Any) -> Any:
        if type(index) is not int and type(index) is not slice:
            raise TypeError("history indices must be integers or slices")
        return self._prices[index]

    def __iter__(self) -> Iterator[float]:
        return iter(self._prices)

    def __reversed__(self) -> Iterator[float]:
        return reversed(self._prices)

    def __contains__(self, value: object) -> bool:
        return value in self._prices

    def __bool__(self) -> bool:
        return bool(self._prices)

    def __eq__(self, other: object) -> bool:
        if type(other) is PriceHistory:
            return self._prices == other._prices
        return type(other) is tuple and self._prices == other

    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ctx.history is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("ctx.history is read-only")

    def __repr__(self) -> str:
        return f"<history of {len(self._prices)} prices>"


def uses_history(sources: Mapping[str, str]) -> bool:
    """Whether strategy code may read ``history`` at all: any attribute ``.history`` or the text
    ``"history"`` (``getattr(ctx, "history")``) in its source. Conservative by design: the engine
    sends bars only to such strategies, so one that never asks costs nothing per tick, and one
    that asks always finds them. Sources here passed upload validation (size and depth bounded).
    """
    for source in sources.values():
        if "history" not in source:
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True  # cannot tell: serve it
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "history":
                return True
            if isinstance(node, ast.Constant) and type(node.value) is str and "history" in node.value:
                return True
    return False
