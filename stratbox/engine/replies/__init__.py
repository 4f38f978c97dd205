"""Trusted re-checks of everything a sandbox host answers, before the engine uses any of it.

Assume the host is fully controlled by its tenant (an escape from the language layer, a forged
reply): nothing it sends is used until it passed these checks, whatever the host checked itself.

- Shape: a reply is an exact ``dict`` holding only the fields its command produces. A reply with
  anything else (``mode``, ``snapshot``, ``order_id_prefix``, ...) is refused: the engine decides
  the mode and builds the snapshot, a host never does.
- Plain data: exact types (``type(x) is str``, never ``isinstance``), so no value can make trusted
  code run a special method; finite floats; ints within the digit limit; no NUL and no lone
  surrogate in any string or key (PostgreSQL's text and jsonb refuse both, and a refusal there
  would fail a whole batch write); bounded depth and size. State problems are ``BAD_STATE``, the
  rest ``BAD_OUTPUT``, sizes ``OUTPUT_LIMIT``; each message names the path (``state.rows[3].name``)
  and never echoes the value. The tick fails as any failed call does: recorded as a failed run,
  the last good state kept.
- Order intents, one by one: at most the per-call quota (``ORDER_QUOTA_EXCEEDED``), this
  instance's own client_order_id for this tick (``ORDER_ID_MISMATCH``), no market or account of
  their own (``FOREIGN_TARGET``), no status or mode of their own and receipts that agree with the
  instance's mode (``MODE_MISMATCH``), exact types and finiteness, side and type values and a
  clean tag (``INVALID_ORDER``). A forged intent is denied with its code, recorded in the run's
  actions like every denial (and so pushed to the dashboard), audited once per reply, and never
  reaches ``order_place``: no order row, no broker call.

The cost per tick is a few exact-type tests per field and one walk over the state (which the
engine serialises anyway: the JSON text is handed back for reuse). No deep copies.

Modules: `plain` (plain data, text, state and logs), `intents` (order intents), `commands` (each
command's reply and one tick's strategy outcome).
"""

from __future__ import annotations

from stratbox.engine.replies.commands import (
    ENTRY_FIELDS,
    EXIT_FIELDS,
    LOAD_FIELDS,
    MAX_WIDGETS,
    RENDER_FIELDS,
    SIGNAL_FIELDS,
    TICK_FIELDS,
    WIDGET_TYPES,
    error_fields,
    load_reply,
    signal_reply,
    strategy_outcome,
    tick_reply,
    widgets_reply,
)
from stratbox.engine.replies.intents import (
    INTENT_FIELDS,
    MAX_TAG_CHARS,
    ORDER_SIDES,
    ORDER_TYPES,
    RECEIPT_FIELDS,
    RECEIPT_STATUSES,
    STATUS_FIELDS,
    TARGET_FIELDS,
    denied_action,
    order_intents,
)
from stratbox.engine.replies.plain import (
    HISTORY_KEY,
    MAX_INT_DIGITS,
    ReplyRefused,
    check_logs,
    check_plain,
    clean_text,
    state_json,
    text_problem,
)

__all__ = [
    "ENTRY_FIELDS",
    "EXIT_FIELDS",
    "HISTORY_KEY",
    "INTENT_FIELDS",
    "LOAD_FIELDS",
    "MAX_INT_DIGITS",
    "MAX_TAG_CHARS",
    "MAX_WIDGETS",
    "ORDER_SIDES",
    "ORDER_TYPES",
    "RECEIPT_FIELDS",
    "RECEIPT_STATUSES",
    "RENDER_FIELDS",
    "ReplyRefused",
    "SIGNAL_FIELDS",
    "STATUS_FIELDS",
    "TARGET_FIELDS",
    "TICK_FIELDS",
    "WIDGET_TYPES",
    "check_logs",
    "check_plain",
    "clean_text",
    "denied_action",
    "error_fields",
    "load_reply",
    "order_intents",
    "signal_reply",
    "state_json",
    "strategy_outcome",
    "text_problem",
    "tick_reply",
    "widgets_reply",
]
