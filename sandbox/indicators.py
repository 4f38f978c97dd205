"""Incremental technical indicators for strategies (``from sandbox.indicators import SMA, ...``).

Each indicator is fed one value (or one bar) at a time with ``update(...)``, which returns the
current value, or ``None`` until enough values have been seen (``ready`` says which). ``extend``
feeds many at once, e.g. ``SMA(20).extend(self.context.history(20))`` after a reload. Every
update costs O(1) (the rolling max/min: amortised O(1)), so an indicator is cheap on every bar.

Definitions (the usual ones, as in TA-Lib and backtesting.py's examples):

- ``SMA(n)``: mean of the last n values.
- ``EMA(n)``: alpha = 2 / (n + 1); the first value is the SMA of the first n values, then
  ``ema = alpha * x + (1 - alpha) * ema``.
- ``RSI(n)``: Wilder's: the first average gain/loss is the mean over the first n changes, then
  ``avg = (avg * (n - 1) + change) / n``; ``RSI = 100 - 100 / (1 + avg_gain / avg_loss)``
  (100 when there was no loss, 50 when the price never moved).
- ``ATR(n)``: Wilder's average of the true range ``max(high - low, |high - prev close|,
  |low - prev close|)`` (the first bar's true range is ``high - low``); the first ATR is the
  mean of the first n true ranges.
- ``Bollinger(n, k=2.0)``: middle = SMA(n), upper/lower = middle +/- k * population standard
  deviation of the last n values; ``update`` returns ``(lower, middle, upper)``.
- ``RollingMax(n)`` / ``RollingMin(n)``: the largest / smallest of the last n values.

Values must be finite real numbers (int or float; a bool is refused); a bad value raises
``TypeError``/``ValueError`` and leaves the indicator unchanged. Indicators are plain objects of
your instance: keep them on ``self`` (they are not JSON, so not in ``self.state``).

This module is pure Python and imports only the standard library (it runs inside the sandbox).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

MAX_PERIOD = 100_000
"""The largest window an indicator accepts (a window is held in memory)."""


def _period(n: object, what: str) -> int:
    if type(n) is not int or not 1 <= n <= MAX_PERIOD:
        raise ValueError(f"{what}(n): n must be an int between 1 and {MAX_PERIOD}")
    return n


def _value(x: object, what: str) -> float:
    if type(x) is not int and type(x) is not float:
        raise TypeError(f"{what}.update: values must be int or float, not {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{what}.update: values must be finite")
    return v


class SMA:
    """Simple moving average of the last ``n`` values."""

    __slots__ = ("_n", "_window", "_sum", "_since", "_value")

    def __init__(self, n: int) -> None:
        self._n = _period(n, "SMA")
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._since = 0  # updates since the running sum was last recomputed exactly
        self._value: float | None = None

    @property
    def n(self) -> int:
        return self._n

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def update(self, x: float) -> float | None:
        v = _value(x, "SMA")
        self._window.append(v)
        self._sum += v
        if len(self._window) > self._n:
            self._sum -= self._window.popleft()
        self._since += 1
        if self._since >= self._n:  # once per window length: a running sum drifts with rounding
            self._since = 0
            self._sum = math.fsum(self._window)
        if len(self._window) == self._n:
            self._value = self._sum / self._n
        return self._value

    def extend(self, values: Iterable[float]) -> float | None:
        for x in values:
            self.update(x)
        return self._value

    def __repr__(self) -> str:
        return f"SMA({self._n}) = {self._value!r}"


class EMA:
    """Exponential moving average, seeded with the SMA of the first ``n`` values."""

    __slots__ = ("_n", "_alpha", "_seed", "_count", "_value")

    def __init__(self, n: int) -> None:
        self._n = _period(n, "EMA")
        self._alpha = 2.0 / (self._n + 1)
        self._seed = 0.0
        self._count = 0
        self._value: float | None = None

    @property
    def n(self) -> int:
        return self._n

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def update(self, x: float) -> float | None:
        v = _value(x, "EMA")
        if self._value is None:
            self._count += 1
            self._seed += v
            if self._count == self._n:
                self._value = self._seed / self._n
        else:
            self._value = self._alpha * v + (1.0 - self._alpha) * self._value
        return self._value

    def extend(self, values: Iterable[float]) -> float | None:
        for x in values:
            self.update(x)
        return self._value

    def __repr__(self) -> str:
        return f"EMA({self._n}) = {self._value!r}"


class RSI:
    """Wilder's relative strength index over ``n`` changes (0..100)."""

    __slots__ = ("_n", "_prev", "_count", "_gain", "_loss", "_value")

    def __init__(self, n: int = 14) -> None:
        self._n = _period(n, "RSI")
        self._prev: float | None = None
        self._count = 0
        self._gain = 0.0
        self._loss = 0.0
        self._value: float | None = None

    @property
    def n(self) -> int:
        return self._n

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def update(self, x: float) -> float | None:
        v = _value(x, "RSI")
        prev, self._prev = self._prev, v
        if prev is None:
            return None
        change = v - prev
        gain, loss = max(change, 0.0), max(-change, 0.0)
        n = self._n
        if self._count < n:
            self._count += 1
            self._gain += gain / n
            self._loss += loss / n
            if self._count < n:
                return None
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        if self._loss == 0.0:
            self._value = 50.0 if self._gain == 0.0 else 100.0
        else:
            self._value = 100.0 - 100.0 / (1.0 + self._gain / self._loss)
        return self._value

    def extend(self, values: Iterable[float]) -> float | None:
        for x in values:
            self.update(x)
        return self._value

    def __repr__(self) -> str:
        return f"RSI({self._n}) = {self._value!r}"


class ATR:
    """Wilder's average true range over ``n`` bars; feed it ``update(high, low, close)``."""

    __slots__ = ("_n", "_prev_close", "_count", "_sum", "_value")

    def __init__(self, n: int = 14) -> None:
        self._n = _period(n, "ATR")
        self._prev_close: float | None = None
        self._count = 0
        self._sum = 0.0
        self._value: float | None = None

    @property
    def n(self) -> int:
        return self._n

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def update(self, high: float, low: float, close: float) -> float | None:
        h, lo, c = _value(high, "ATR"), _value(low, "ATR"), _value(close, "ATR")
        if lo > h:
            raise ValueError("ATR.update: low is above high")
        prev = self._prev_close
        tr = h - lo if prev is None else max(h - lo, abs(h - prev), abs(lo - prev))
        self._prev_close = c
        n = self._n
        if self._value is None:
            self._count += 1
            self._sum += tr
            if self._count == n:
                self._value = self._sum / n
        else:
            self._value = (self._value * (n - 1) + tr) / n
        return self._value

    def extend(self, bars: Iterable[Sequence[float]]) -> float | None:
        """Feed ``(high, low, close)`` triples, e.g. ``zip(highs, lows, closes)``."""
        for bar in bars:
            if (type(bar) is not tuple and type(bar) is not list) or len(bar) != 3:
                raise TypeError("ATR.extend: give (high, low, close) triples")
            self.update(bar[0], bar[1], bar[2])
        return self._value

    def __repr__(self) -> str:
        return f"ATR({self._n}) = {self._value!r}"


class Bollinger:
    """Bollinger bands: SMA(n) +/- k population standard deviations of the last ``n`` values."""

    __slots__ = ("_n", "_k", "_window", "_value")

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        self._n = _period(n, "Bollinger")
        if (type(k) is not int and type(k) is not float) or not math.isfinite(k) or k < 0:
            raise ValueError("Bollinger(n, k): k must be a finite number >= 0")
        self._k = float(k)
        self._window: deque[float] = deque(maxlen=self._n)
        self._value: tuple[float, float, float] | None = None

    @property
    def n(self) -> int:
        return self._n

    @property
    def k(self) -> float:
        return self._k

    @property
    def value(self) -> tuple[float, float, float] | None:
        """``(lower, middle, upper)``, or None until ``n`` values were seen."""
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    @property
    def lower(self) -> float | None:
        return self._value[0] if self._value is not None else None

    @property
    def middle(self) -> float | None:
        return self._value[1] if self._value is not None else None

    @property
    def upper(self) -> float | None:
        return self._value[2] if self._value is not None else None

    def update(self, x: float) -> tuple[float, float, float] | None:
        self._window.append(_value(x, "Bollinger"))
        if len(self._window) == self._n:
            # Two passes over the window (exact, no drifting running sums of squares).
            mean = math.fsum(self._window) / self._n
            var = math.fsum((v - mean) ** 2 for v in self._window) / self._n
            band = self._k * math.sqrt(var)
            self._value = (mean - band, mean, mean + band)
        return self._value

    def extend(self, values: Iterable[float]) -> tuple[float, float, float] | None:
        for x in values:
            self.update(x)
        return self._value

    def __repr__(self) -> str:
        return f"Bollinger({self._n}, {self._k}) = {self._value!r}"


class _Rolling:
    """Rolling extreme of the last ``n`` values with a monotonic deque (amortised O(1))."""

    __slots__ = ("_n", "_seen", "_deque", "_value")
    _name = "Rolling"

    def __init__(self, n: int) -> None:
        self._n = _period(n, self._name)
        self._seen = 0
        self._deque: deque[tuple[int, float]] = deque()  # (index, value), extremes in order
        self._value: float | None = None

    def _dominates(self, new: float, old: float) -> bool:
        raise NotImplementedError

    @property
    def n(self) -> int:
        return self._n

    @property
    def value(self) -> float | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def update(self, x: float) -> float | None:
        v = _value(x, self._name)
        i = self._seen
        self._seen += 1
        d = self._deque
        while d and self._dominates(v, d[-1][1]):
            d.pop()
        d.append((i, v))
        if d[0][0] <= i - self._n:
            d.popleft()
        if self._seen >= self._n:
            self._value = d[0][1]
        return self._value

    def extend(self, values: Iterable[float]) -> float | None:
        for x in values:
            self.update(x)
        return self._value

    def __repr__(self) -> str:
        return f"{self._name}({self._n}) = {self._value!r}"


class RollingMax(_Rolling):
    """The largest of the last ``n`` values."""

    __slots__ = ()
    _name = "RollingMax"

    def _dominates(self, new: float, old: float) -> bool:
        return new >= old


class RollingMin(_Rolling):
    """The smallest of the last ``n`` values."""

    __slots__ = ()
    _name = "RollingMin"

    def _dominates(self, new: float, old: float) -> bool:
        return new <= old


INDICATOR_EXPORTS: dict[str, type] = {
    "SMA": SMA,
    "EMA": EMA,
    "RSI": RSI,
    "ATR": ATR,
    "Bollinger": Bollinger,
    "RollingMax": RollingMax,
    "RollingMin": RollingMin,
}
"""The names ``sandbox.indicators`` offers to strategy code."""
