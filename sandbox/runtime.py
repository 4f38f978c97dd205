"""Running loaded strategies: load, tick, render, signal cycle, config updates, backtests.

This is trusted code that runs *inside* the host process next to the untrusted strategy (and,
with ``restricted=False``, in-process for the plain-Python benchmark baseline). Every call into
user code goes through :meth:`Instance._user_call`, which classifies failures into
:class:`SandboxError` codes and keeps only the user's own frames in tracebacks.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import sys
import types
from collections import deque
from collections.abc import Callable
from typing import Any

from sandbox import sdk
from sandbox.context import (
    CallRecord,
    SignalContext,
    TickContext,
    bracket_problem,
    bracket_value,
    make_position,
)
from sandbox.errors import ErrorCode, SandboxError
from sandbox.limits import Limits
from sandbox.outputs import check_json, check_widgets, text_problem
from sandbox.policy import CompileIssue, PolicyViolation, Runtime, compile_source, make_globals
from sandbox.schema import apply_config, live_fields, validate_config_schema

# Signal-style ``ctx.history`` travels inside the persisted state under this reserved key, so a
# worker that reloads an instance with its saved state keeps the history. User code never sees it.
HISTORY_KEY = "_sb_history"

TICK_STYLES = frozenset({"tick"})
SIGNAL_STYLES = frozenset({"signal", "signal_bundle"})
STYLES = TICK_STYLES | SIGNAL_STYLES


INIT_ARGS_MESSAGE = (
    "the strategy class's __init__ must take no arguments besides self (it is called as __init__() on "
    "every load); compute the initial state in init() and rebuild non-state attributes in on_load()"
)

# Which runtime last ran user code that can time the interpreter-wide regex/strptime caches.
_CACHE_OWNER: list[Runtime | None] = [None]


def _purge_shared_caches(rt: Runtime) -> None:
    """Empty the ``re`` and ``strptime`` caches when another instance's code is about to run.

    Compiling a pattern that is already cached is measurably faster, so a shared cache would tell
    one instance which patterns another one used. Purged on a switch only: a backtest or a run of
    ticks of one instance keeps its warm cache.
    """
    if _CACHE_OWNER[0] is rt:
        return
    _CACHE_OWNER[0] = rt
    re.purge()
    strptime = sys.modules.get("_strptime")
    cache = getattr(strptime, "_regex_cache", None)
    if type(cache) is dict:
        cache.clear()


class RawJSON(str):
    """JSON text already checked by :func:`check_json`; the host splices it into its reply as is."""

    __slots__ = ()


def issue_error(issue: CompileIssue) -> SandboxError:
    code = {"FORBIDDEN_IMPORT": ErrorCode.FORBIDDEN}.get(issue.code, issue.code)
    return SandboxError(ErrorCode(code), issue.message, issue.line)


class Instance:
    """One loaded strategy instance (fresh globals, fresh module wrappers, own RNG)."""

    def __init__(
        self,
        instance_id: str,
        *,
        style: str,
        sources: dict[str, str],
        config: dict[str, Any],
        state: Any,
        seed: int | None,
        limits: Limits,
        restricted: bool = True,
        config_schema: Any = None,
    ) -> None:
        if style not in STYLES:
            raise SandboxError(ErrorCode.BAD_REQUEST, f"unknown style {style!r}")
        self.id = instance_id
        self.style = style
        self.sources = sources
        self.limits = limits
        self.restricted = restricted
        self.rt = Runtime(seed=seed)
        self.rec = CallRecord(limits)
        self.rt.log = self._log
        self.user_files = frozenset(sources)
        self.history: deque[float] = deque(maxlen=max(0, limits.max_history))
        self.last_snapshot: dict[str, Any] = {}
        self.backtest: Any = None
        self.obj: Any = None
        self.entry: Callable[..., Any] | None = None
        self.exit: Callable[..., Any] | None = None
        self.globals: dict[str, dict[str, Any]] = {}
        self.schema_override = config_schema
        load_rec = CallRecord(limits, drop_logs=True)
        self.rec = load_rec
        for filename, source in sources.items():
            self.globals[filename] = self._exec_file(filename, source)
        self.schema = self._find_entry_points()
        clean, errors = apply_config(self.schema, config)
        if errors:
            field, msg = sorted(errors.items())[0]
            raise SandboxError(ErrorCode.BAD_CONFIG, f"config field {field!r}: {msg}")
        self.config = types.MappingProxyType(clean)
        self.state: Any = None
        if self.obj is not None:
            object.__setattr__(self.obj, "_sb_config", self.config)
            object.__setattr__(self.obj, "_sb_context", None)
            self._call_user_init()
        if state is None:
            state = self._initial_state()
        else:
            state = self._take_history(state)
            self._check_state(state)
            state = json.loads(json.dumps(state))
        self._set_state(state)
        self._check_state(self._get_state())
        if self.obj is not None and hasattr(type(self.obj), "on_load"):
            self._user_call(self.obj.on_load)
        self.load_logs = load_rec.logs
        self.good_state_json = self._finish(load_rec)

    # ----------------------------------------------------------------- loading
    def _exec_file(self, filename: str, source: str) -> dict[str, Any]:
        if self.restricted:
            code, issues, _imports = compile_source(
                source, filename, self.limits.max_source_bytes, self.limits.max_nesting
            )
            if code is None:
                raise issue_error(issues[0])
            g = make_globals(self.rt, module_name=filename.rsplit(".", 1)[0])
            _purge_shared_caches(self.rt)
        else:
            code = compile(source, filename, "exec")
            g = {"__name__": filename.rsplit(".", 1)[0], "__builtins__": builtins}
        self._user_call(lambda: exec(code, g))  # noqa: S102 - the point of the sandbox
        return g

    def _classes(self, base: type) -> list[type[Any]]:
        found: list[type[Any]] = []
        for g in self.globals.values():
            for value in g.values():
                if (
                    isinstance(value, type)
                    and issubclass(value, base)
                    and value is not base
                    and (value in self.rt.user_types or not self.restricted)
                    and value not in found
                ):
                    found.append(value)
        return [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]

    def _find_entry_points(self) -> dict[str, Any]:
        raw_schema: Any = {}
        if self.style in ("tick", "signal"):
            base = sdk.Strategy if self.style == "tick" else sdk.SignalStrategy
            classes = self._classes(base)
            if not classes:
                raise SandboxError(ErrorCode.NO_STRATEGY_CLASS, f"no class subclassing {base.__name__} found")
            if len(classes) > 1:
                names = ", ".join(sorted(c.__name__ for c in classes))
                raise SandboxError(
                    ErrorCode.AMBIGUOUS_STRATEGY_CLASS, f"more than one strategy class: {names}"
                )
            # An arbitrary user class (its __new__ comes from its bases; user code cannot define one):
            # allocate without running user __init__.
            cls: Any = classes[0]
            self.obj = cls.__new__(cls)
            if self.schema_override is None:
                raw_schema = getattr(cls, "CONFIG_SCHEMA", {})
                if raw_schema is sdk.EMPTY_SCHEMA:
                    raw_schema = {}
            if self.style == "signal":
                self.entry = self.obj.should_enter
                self.exit = self.obj.should_exit
        else:  # signal_bundle: entry.py / exit.py module functions
            entry_g = self.globals.get("entry.py", {})
            exit_g = self.globals.get("exit.py", {})
            self.entry = entry_g.get("should_enter")
            self.exit = exit_g.get("should_exit")
            if not callable(self.entry):
                raise SandboxError(ErrorCode.MISSING_FUNCTION, "entry.py must define should_enter(ctx)")
            if not callable(self.exit):
                raise SandboxError(
                    ErrorCode.MISSING_FUNCTION, "exit.py must define should_exit(ctx, position)"
                )
            raw_schema = entry_g.get("CONFIG_SCHEMA", {})
        # The engine passes the schema stored with the validated version: the instance's config
        # never depends on what a class attribute holds at run time.
        if self.schema_override is not None:
            raw_schema = self.schema_override
        try:
            check_json(
                raw_schema, what="CONFIG_SCHEMA", code=ErrorCode.BAD_SCHEMA, max_depth=4, max_bytes=64 * 1024
            )
        except SandboxError as exc:
            raise SandboxError(ErrorCode.BAD_SCHEMA, exc.message) from None
        schema = json.loads(json.dumps(raw_schema))
        if type(schema) is not dict:
            raise SandboxError(ErrorCode.BAD_SCHEMA, "CONFIG_SCHEMA must be a dict literal")
        errors = validate_config_schema(schema)
        if errors:
            field, msg = sorted(errors.items())[0]
            raise SandboxError(ErrorCode.BAD_SCHEMA, f"CONFIG_SCHEMA field {field!r}: {msg}")
        return schema

    def _call_user_init(self) -> None:
        """Run the strategy class's own ``__init__(self)`` (if any) on every load, before init().

        Contract: no arguments besides ``self``; ``self.config`` is readable, ``self.context`` is
        None and ``self.state`` is not set yet (it comes from init() or the saved state after)."""
        init = type(self.obj).__init__
        if init is object.__init__:
            return
        if type(init) is types.FunctionType:
            code = init.__code__
            required = code.co_argcount - len(init.__defaults__ or ())
            kw_required = [
                n
                for n in code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
                if n not in (init.__kwdefaults__ or {})
            ]
            if required > 1 or kw_required:
                raise SandboxError(ErrorCode.RUNTIME_ERROR, INIT_ARGS_MESSAGE, code.co_firstlineno)
        self._user_call(init, self.obj)

    def _initial_state(self) -> Any:
        """``init()``'s dict; an ``init()`` that returns None may have filled ``self.state`` (a fresh {}) instead."""
        if self.obj is not None:
            object.__setattr__(self.obj, "state", {})
            object.__setattr__(self.obj, "_sb_context", TickContext(self.rec, {}, readonly=True))
            try:
                state = self._user_call(self.obj.init)
            finally:
                self._revoke_obj_context()
            return self.obj.__dict__.get("state") if state is None else state
        return {}

    def _get_state(self) -> Any:
        return self.obj.state if self.obj is not None else self.state

    def _set_state(self, state: Any) -> None:
        if self.obj is not None:
            object.__setattr__(self.obj, "state", state)
        else:
            self.state = state

    def _take_history(self, state: Any) -> Any:
        """Signal styles: move a persisted history out of the state (bounded; bad entries dropped)."""
        if self.style not in SIGNAL_STYLES or type(state) is not dict or HISTORY_KEY not in state:
            return state
        state = dict(state)
        saved = state.pop(HISTORY_KEY)
        if type(saved) is list:
            self.history.clear()
            self.history.extend(
                float(p)
                for p in saved[-(self.history.maxlen or 0) :]
                if (type(p) is int or type(p) is float) and math.isfinite(p)
            )
        return state

    def _check_state(self, state: Any) -> str:
        if type(state) is not dict:
            raise SandboxError(ErrorCode.BAD_STATE, f"state must be a dict, not {type(state).__name__}")
        if self.style in SIGNAL_STYLES and HISTORY_KEY in state:
            raise SandboxError(ErrorCode.BAD_STATE, f"the state key {HISTORY_KEY!r} is reserved")
        return check_json(
            state,
            what="state",
            code=ErrorCode.BAD_STATE,
            max_depth=self.limits.max_json_depth,
            max_bytes=self.limits.max_state_bytes,
        )

    def _revoke_obj_context(self) -> None:
        ctx = self.obj.__dict__.get("_sb_context") if self.obj is not None else None
        if ctx is not None:
            ctx._revoke()
        if self.obj is not None:
            object.__setattr__(self.obj, "_sb_context", None)

    # ----------------------------------------------------------------- calls
    def _log(self, level: str, msg: str) -> None:
        self.rec.log(level, msg)

    def _user_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run user code; classify anything it raises. Policy violations stick even if caught."""
        self.rt.violations.clear()
        if self.rt.uses_shared_caches:
            _purge_shared_caches(self.rt)
        try:
            result = fn(*args)
        except SandboxError:
            raise
        except MemoryError:
            raise SandboxError(ErrorCode.MEMORY_LIMIT, "the strategy exceeded its memory limit") from None
        except PolicyViolation as exc:
            line, tb = self._user_traceback(exc)
            raise SandboxError(ErrorCode.FORBIDDEN, str(exc.args[0] if exc.args else exc), line, tb) from None
        except BaseException as exc:  # noqa: BLE001 - classify every user failure
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not self.restricted:
                raise
            line, tb = self._user_traceback(exc)
            raise SandboxError(
                ErrorCode.RUNTIME_ERROR, _describe_exception(exc, self.rt.user_types), line, tb
            ) from None
        if self.rt.violations:
            raise SandboxError(ErrorCode.FORBIDDEN, self.rt.violations[0])
        if self.rec.log_overflow:
            raise SandboxError(
                ErrorCode.OUTPUT_LIMIT, f"more than {self.limits.max_log_lines} log lines in one call"
            )
        if self.rec.bad_output is not None:
            raise SandboxError(ErrorCode.BAD_OUTPUT, self.rec.bad_output)
        return result

    def _user_traceback(self, exc: BaseException) -> tuple[int | None, str | None]:
        lines: list[str] = []
        last: int | None = None
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename in self.user_files:
                last = tb.tb_lineno
                lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
                src_lines = self.sources[code.co_filename].splitlines()
                if 0 < tb.tb_lineno <= len(src_lines):
                    lines.append("    " + src_lines[tb.tb_lineno - 1].strip())
            tb = tb.tb_next
        if not lines:
            return None, None
        described = _describe_exception(exc, self.rt.user_types)
        return last, "Traceback (most recent call last):\n" + "\n".join(lines[-40:]) + "\n" + described

    def _finish(self, rec: CallRecord) -> str:
        """After a call: validate state, remember it as the last good one (signal styles: + history)."""
        text = self._check_state(self._get_state())
        if self.style in SIGNAL_STYLES and self.history:
            # Trusted, finite floats only (see signal_cycle); bounded by limits.max_history.
            history = json.dumps(list(self.history), separators=(",", ":"))
            sep = "" if text == "{}" else ","
            text = text[:-1] + sep + json.dumps(HISTORY_KEY) + ":" + history + "}"
        self.good_state_json = text
        return text

    def restore_state(self, state: Any) -> None:
        """Continue from a persisted state (the instance ticked elsewhere since): no init(), no on_load.

        The same checks as a load with a state; the state becomes the last good one, so a failing
        call right after it falls back to this state, not to the one this host held before."""
        state = self._take_history(state)
        self._check_state(state)
        self._set_state(json.loads(json.dumps(state)))
        self._finish(self.rec)

    def _state_out(self, text: str, raw: bool) -> Any:
        return RawJSON(text) if raw else json.loads(text)

    def tick(
        self, tick: dict[str, Any], snapshot: dict[str, Any], *, raw_state: bool = False
    ) -> dict[str, Any]:
        if self.obj is None or self.style != "tick":
            raise SandboxError(ErrorCode.BAD_REQUEST, "tick() needs a tick-style strategy")
        t = make_tick(tick)
        rec = self.rec = CallRecord(self.limits)
        self.last_snapshot = snapshot
        ctx = TickContext(rec, snapshot, price=t.price)
        object.__setattr__(self.obj, "_sb_context", ctx)
        try:
            self._user_call(self.obj.on_tick, t)
        finally:
            self._revoke_obj_context()
        text = self._finish(rec)
        return {
            "intents": rec.intents,
            "state": self._state_out(text, raw_state),
            "logs": rec.logs,
            "receipts": rec.receipts,
        }

    def render(self) -> dict[str, Any]:
        rec = self.rec = CallRecord(self.limits)
        if self.obj is None:  # signal bundle: optional module-level render(state) in entry.py
            fn = self.globals.get("entry.py", {}).get("render")
            payload = self._user_call(fn, self.state) if callable(fn) else {"widgets": []}
        else:
            object.__setattr__(self.obj, "_sb_context", TickContext(rec, self.last_snapshot, readonly=True))
            try:
                payload = self._user_call(self.obj.render)
            finally:
                self._revoke_obj_context()
        out = check_widgets(
            payload, max_depth=self.limits.max_json_depth, max_bytes=self.limits.max_render_bytes
        )
        widgets: dict[str, Any] = json.loads(
            json.dumps(out)
        )  # a fresh copy: nothing shared with user objects
        return widgets

    def signal_cycle(self, snapshot: dict[str, Any], *, raw_state: bool = False) -> dict[str, Any]:
        if self.style not in SIGNAL_STYLES or self.entry is None or self.exit is None:
            raise SandboxError(ErrorCode.BAD_REQUEST, "signal_cycle() needs a signal-style strategy")
        rec = self.rec = CallRecord(self.limits)
        self.last_snapshot = snapshot
        quote = snapshot.get("quote") or {}
        price = quote.get("price")
        if (type(price) is int or type(price) is float) and math.isfinite(price):
            self.history.append(float(price))
        state = self._get_state()
        ctx = SignalContext(rec, snapshot, self.config, state, tuple(self.history))
        try:
            exits: list[dict[str, Any]] = []
            for raw in snapshot.get("positions") or []:
                position = make_position(raw)
                signal = self._user_call(self.exit, ctx, position)
                checked = check_exit(signal, position)
                if checked is not None:
                    exits.append(checked)
            entries = check_entries(self._user_call(self.entry, ctx), self.limits.max_signals_per_call)
        finally:
            ctx._revoke()
        text = self._finish(rec)
        return {
            "entries": entries,
            "exits": exits,
            "logs": rec.logs,
            "state": self._state_out(text, raw_state),
        }

    def update_config(self, config: dict[str, Any]) -> None:
        if type(config) is not dict:
            raise SandboxError(ErrorCode.BAD_CONFIG, "config must be an object")
        live = live_fields(self.schema)
        merged = dict(self.config)
        changed: list[str] = []
        for key, value in config.items():
            if key not in self.schema:
                raise SandboxError(ErrorCode.BAD_CONFIG, f"config field {key!r}: unknown field")
            if merged.get(key) != value or type(merged.get(key)) is not type(value):
                if key not in live:
                    raise SandboxError(
                        ErrorCode.BAD_CONFIG,
                        f"config field {key!r} is not live; reload the instance to change it",
                    )
                merged[key] = value
                changed.append(key)
        clean, errors = apply_config(self.schema, merged)
        if errors:
            field, msg = sorted(errors.items())[0]
            raise SandboxError(ErrorCode.BAD_CONFIG, f"config field {field!r}: {msg}")
        self.config = types.MappingProxyType(clean)
        if self.obj is not None:
            object.__setattr__(self.obj, "_sb_config", self.config)
            if changed and hasattr(self.obj, "on_config"):
                self.rec = CallRecord(self.limits)
                self._user_call(self.obj.on_config, list(changed))
                self._finish(self.rec)


def make_tick(tick: dict[str, Any]) -> sdk.Tick:
    if type(tick) is not dict:
        raise SandboxError(ErrorCode.BAD_REQUEST, "tick must be a dict")
    price = _num(tick.get("price", tick.get("close")))
    return sdk.Tick(
        str(tick.get("market", "")),
        _num(tick.get("ts")),
        price,
        _num(tick.get("bid", price)),
        _num(tick.get("ask", price)),
        _num(tick.get("volume", 0.0)),
        _opt(tick.get("open")),
        _opt(tick.get("high")),
        _opt(tick.get("low")),
        _opt(tick.get("close")),
    )


def _num(v: Any) -> float:
    if type(v) not in (int, float) or not math.isfinite(v):
        raise SandboxError(ErrorCode.BAD_REQUEST, f"tick field must be a finite number, got {v!r}")
    return float(v)


def _opt(v: Any) -> float | None:
    return None if v is None else _num(v)


def check_entries(result: Any, limit: int) -> list[dict[str, Any]]:
    if result is None:
        return []
    if type(result) is sdk.EntrySignal:
        result = [result]
    if type(result) not in (list, tuple):
        raise SandboxError(ErrorCode.BAD_OUTPUT, "should_enter() must return a list of EntrySignal")
    if len(result) > limit:
        raise SandboxError(ErrorCode.OUTPUT_LIMIT, f"should_enter() returned more than {limit} signals")
    out: list[dict[str, Any]] = []
    for sig in result:
        if type(sig) is not sdk.EntrySignal:
            raise SandboxError(ErrorCode.BAD_OUTPUT, "should_enter() must return EntrySignal objects")
        if type(sig.market) is not str or not sig.market or len(sig.market) > 64 or text_problem(sig.market):
            raise SandboxError(ErrorCode.BAD_OUTPUT, "EntrySignal.market must be a non-empty string of text")
        if type(sig.side) is not str or sig.side not in ("long", "short"):
            raise SandboxError(ErrorCode.BAD_OUTPUT, "EntrySignal.side must be 'long' or 'short'")
        if type(sig.reason) is not str or len(sig.reason) > 500 or text_problem(sig.reason):
            raise SandboxError(
                ErrorCode.BAD_OUTPUT, "EntrySignal.reason must be text of at most 500 characters"
            )
        conf = sig.confidence
        if type(conf) not in (int, float) or not math.isfinite(conf) or not 0 <= conf <= 1:
            raise SandboxError(
                ErrorCode.BAD_OUTPUT, "EntrySignal.confidence must be a number between 0 and 1"
            )
        entry: dict[str, Any] = {
            "market": sig.market,
            "side": sig.side,
            "reason": sig.reason,
            "confidence": float(conf),
        }
        for leg in ("sl", "tp"):
            value = getattr(sig, leg)
            if value is not None:
                if bracket_problem(value):
                    raise SandboxError(
                        ErrorCode.BAD_OUTPUT, f"EntrySignal.{leg} must be a positive price or a '2%' fraction"
                    )
                entry[leg] = bracket_value(value)
        out.append(entry)
    return out


def check_exit(signal: Any, position: sdk.Position) -> dict[str, Any] | None:
    if signal is None:
        return None
    if type(signal) is not sdk.ExitSignal:
        raise SandboxError(ErrorCode.BAD_OUTPUT, "should_exit() must return an ExitSignal or None")
    # Exact type first: comparing a user object would run its __eq__/__ne__ in trusted code.
    if type(signal.position_id) is not str or signal.position_id != position.position_id:
        raise SandboxError(
            ErrorCode.BAD_OUTPUT, "ExitSignal.position_id must be the id of the position passed in"
        )
    if type(signal.reason) is not str or len(signal.reason) > 500 or text_problem(signal.reason):
        raise SandboxError(ErrorCode.BAD_OUTPUT, "ExitSignal.reason must be text of at most 500 characters")
    return {"position_id": signal.position_id, "reason": signal.reason}


_EXC_ARGS = BaseException.__dict__["args"]  # the C descriptor: a user class attribute "args" cannot stand in
_PLAIN_ARG_TYPES = (str, int, float, bool, type(None), bytes)


def _describe_exception(exc: BaseException, user_types: set[type] | frozenset[type] = frozenset()) -> str:
    """``Name: message`` of an exception raised in user code, without running any user code.

    A user exception class's ``__str__`` and the ``__str__``/``__repr__`` of user objects in its
    args are never called: only exact built-in args are shown (the C ``BaseException.__str__``)."""
    cls = type(exc)
    name = cls.__name__
    args = _EXC_ARGS.__get__(exc)
    try:
        if type(args) is not tuple:
            text = ""
        elif not all(type(a) in _PLAIN_ARG_TYPES for a in args):
            # Never the user's __str__/__repr__: plain arguments as they are, others by their type's name.
            text = ", ".join(
                repr(a) if type(a) in _PLAIN_ARG_TYPES else f"<{type(a).__name__} object>" for a in args
            )
        elif any(t in user_types for t in cls.__mro__):
            text = BaseException.__str__(exc)
        else:
            text = str(exc)  # a built-in or stdlib exception with built-in args: no user code
    except ValueError:  # an int too long to print
        text = "<unprintable>"
    text = text[:1000]
    if text_problem(text) is not None:
        text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{name}: {text}" if text else name
