"""Resource and output limits for sandboxed work (per plan; the defaults suit the free plan)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """Every budget the host and its client enforce. All times are wall-clock seconds."""

    tick_timeout: float = 0.25  # per on_tick call (and per signal cycle)
    load_timeout: float = 2.0  # compile + module body + init()
    render_timeout: float = 0.5
    backtest_timeout: float = 60.0  # per backtest chunk
    validate_timeout: float = 5.0  # upload-time compile check
    spawn_timeout: float = 10.0  # host boot
    memory_bytes: int = 512 * 1024 * 1024  # RLIMIT_AS of a host
    open_files: int = 32  # RLIMIT_NOFILE of a host
    max_source_bytes: int = 256 * 1024
    max_nesting: int = 60  # AST depth
    max_log_lines: int = 100  # per call
    max_log_chars: int = 2000  # per line (longer lines are truncated)
    max_orders_per_call: int = 20  # further orders get rejected receipts (ORDER_QUOTA_EXCEEDED)
    max_signals_per_call: int = 50
    max_state_bytes: int = 256 * 1024
    max_render_bytes: int = 512 * 1024
    max_json_depth: int = 32
    max_history: int = 1000  # signal-style ctx.history length (persisted with the state)
    max_message_bytes: int = 64 * 1024 * 1024  # a backtest chunk's reply larger than this is refused
    # Any other reply (tick, signal cycle, render, load, validation...): its state, render, logs and
    # orders are each capped far below this, so a longer frame can only be forged. The client
    # refuses it from its length header, before reading or decoding a byte of it.
    max_reply_bytes: int = 4 * 1024 * 1024

    def reply_cap(self, cmd: str) -> int:
        """The largest reply frame the client accepts for a request ``cmd``."""
        return self.max_message_bytes if cmd in ("backtest", "batch") else self.max_reply_bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        return cls(**data)
