"""Attack class: attribute and dunder escapes (subclasses, globals, frames, tracebacks, formats, code)."""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, strategy

runner = runner_fixture("t-attr")

COMPILE_TIME = [
    (
        "subclasses",
        "().__class__.__bases__[0].__subclasses__()",
        '"__subclasses__" is an invalid attribute name',
    ),
    ("self-dict", "x = self.__dict__", '"__dict__" is an invalid attribute name'),
    ("tick-class", "x = tick.__class__", '"__class__" is an invalid attribute name'),
    ("func-globals", "x = self.on_tick.__globals__", '"__globals__" is an invalid attribute name'),
    ("code-object", "x = (lambda: 0).__code__", '"__code__" is an invalid attribute name'),
    ("co-code", "f = lambda: 0\nx = f.co_code", '"co_code" is a restricted attribute'),
    ("co-consts", "f = lambda: 0\nx = f.co_consts", '"co_consts" is a restricted attribute'),
    ("gen-frame", "g = (i for i in [1])\nx = g.gi_frame", '"gi_frame" is a restricted attribute'),
    (
        "gen-frame-back",
        "g = (i for i in [1])\nx = g.gi_frame.f_back.f_globals",
        '"f_globals" is a restricted attribute',
    ),
    ("gen-code", "g = (i for i in [1])\nx = g.gi_code", '"gi_code" is a restricted attribute'),
    ("gen-yieldfrom", "g = (i for i in [1])\nx = g.gi_yieldfrom", '"gi_yieldfrom" is a restricted attribute'),
    ("coro-frame", "c = None\nx = c.cr_frame", '"cr_frame" is a restricted attribute'),
    ("agen-frame", "c = None\nx = c.ag_frame", '"ag_frame" is a restricted attribute'),
    (
        "traceback",
        "try:\n    1 / 0\nexcept Exception as e:\n    x = e.__traceback__",
        '"__traceback__" is an invalid attribute name',
    ),
    ("tb-frame", "tb = None\nx = tb.tb_frame", '"tb_frame" is a restricted attribute'),
    ("tb-next", "tb = None\nx = tb.tb_next", '"tb_next" is a restricted attribute'),
    ("frame-globals", "f = None\nx = f.f_globals", '"f_globals" is a restricted attribute'),
    ("frame-back", "f = None\nx = f.f_back", '"f_back" is a restricted attribute'),
    ("mro", "x = int.mro()", '"mro" is a restricted attribute'),
    ("property-fget", "x = type(self).context.fget", '"fget" is a restricted attribute'),
    ("object-subclasses", "x = object.__subclasses__()", '"__subclasses__" is an invalid attribute name'),
    ("super-class", "x = super().__class__", '"__class__" is an invalid attribute name'),
    ("fstring-dunder", "x = f'{tick.__class__}'", '"__class__" is an invalid attribute name'),
    ("builtins-name", "x = __builtins__", '"__builtins__" is an invalid variable name'),
    ("guard-name", "_write_ = lambda o: o", '"_write_" is an invalid variable name'),
    ("getattr-guard-name", "x = _getattr_", '"_getattr_" is an invalid variable name'),
    ("print-method", "x = print.__self__", '"__self__" is an invalid attribute name'),
    ("bound-func", "x = self.context.log.__func__", '"__func__" is an invalid attribute name'),
    ("exec", "exec('x = 1')", "exec calls are not allowed"),
    ("eval", "eval('1')", "eval calls are not allowed"),
    ("async-def", "async def f():\n    pass", "AsyncFunctionDef statements are not allowed"),
    ("match", "match tick:\n    case _:\n        pass", "Match statements are not allowed"),
    ("try-star", "try:\n    pass\nexcept* ValueError:\n    pass", "TryStar statements are not allowed"),
    ("breakpoint", "breakpoint()", '"breakpoint" is a reserved name'),
]


@pytest.mark.parametrize(
    ("payload", "message"), [c[1:] for c in COMPILE_TIME], ids=[c[0] for c in COMPILE_TIME]
)
def test_compile_time_escapes_are_forbidden(runner, payload: str, message: str) -> None:
    err = runner.expect(strategy(payload), "FORBIDDEN", message)
    assert err.line is not None and err.line >= 6  # points into on_tick


CLASS_LEVEL = [
    ("del-finaliser", "def __del__(self):\n    pass", 'defining "__del__" is not allowed'),
    (
        "getattribute",
        "def __getattribute__(self, name):\n    return 1",
        'defining "__getattribute__" is not allowed',
    ),
    (
        "setattr-hook",
        "def __setattr__(self, name, value):\n    pass",
        'defining "__setattr__" is not allowed',
    ),
    ("format-hook", "def __format__(self, spec):\n    return ''", 'defining "__format__" is not allowed'),
    ("init-subclass", "def __init_subclass__(cls):\n    pass", 'defining "__init_subclass__" is not allowed'),
    (
        "class-getitem",
        "def __class_getitem__(cls, item):\n    pass",
        'defining "__class_getitem__" is not allowed',
    ),
    ("reduce", "def __reduce__(self):\n    pass", 'defining "__reduce__" is not allowed'),
]


@pytest.mark.parametrize(("extra", "message"), [c[1:] for c in CLASS_LEVEL], ids=[c[0] for c in CLASS_LEVEL])
def test_dangerous_special_methods_cannot_be_defined(runner, extra: str, message: str) -> None:
    runner.expect(strategy(extra=extra), "FORBIDDEN", message)


def test_metaclass_keyword_is_forbidden(runner) -> None:
    runner.expect(
        strategy(module="class M:\n    pass\nclass X(metaclass=M):\n    pass"),
        "FORBIDDEN",
        '"metaclass" is not allowed',
    )


RUNTIME = [
    ("format-traversal", "'{0.__class__}'.format(1)", "format fields may not access attributes or items"),
    ("format-index", "'{0[0]}'.format([1])", "format fields may not access attributes or items"),
    ("format-map", "'{x.real}'.format_map({'x': 1})", "format fields may not access attributes or items"),
    (
        "format-nested-spec",
        "'{0:{1.__class__}}'.format(1, 2)",
        "format fields may not access attributes or items",
    ),
    (
        "str-format-unbound",
        "f = str.format\nf('{0.__class__}', 1)",
        "access to .format of class str is not allowed",
    ),
    (
        "str-format-map-unbound",
        "f = str.format_map\nf('{x.real}', {'x': 1})",
        "access to .format_map of class str is not allowed",
    ),
    (
        "partial-format",
        "import functools\nfunctools.partial(str.format, '{0.__class__}')(1)",
        "access to .format of class str is not allowed",
    ),
    (
        "map-format",
        "list(map(str.format, ['{0.__class__}'], [1]))",
        "access to .format of class str is not allowed",
    ),
    (
        "str-subclass",
        "class U(str):\n    pass\nU('{0.__class__}').format(1)",
        "subclassing str is not allowed",
    ),
    ("getattr-dunder", "getattr(1, '__class__')", '"__class__" is an invalid attribute name'),
    (
        "getattr-frame",
        "g = (i for i in [1])\ngetattr(g, 'gi' + '_frame')",
        '"gi_frame" is a restricted attribute',
    ),
    (
        "getattr-format",
        "getattr('{0.__class__}', 'format')(1)",
        "format fields may not access attributes or items",
    ),
    (
        "attributeerror-obj",
        "try:\n    self.context.nope\nexcept AttributeError as e:\n    x = e.obj",
        "access to .obj of exceptions is not allowed",
    ),
    (
        "caught-violation",
        "try:\n    '{0.__class__}'.format(1)\nexcept Exception:\n    pass",
        "format fields may not access attributes or items",
    ),
    (
        "bare-except-violation",
        "try:\n    x = str.format\nexcept:\n    pass",
        "access to .format of class str is not allowed",
    ),
]


@pytest.mark.parametrize(("payload", "message"), [c[1:] for c in RUNTIME], ids=[c[0] for c in RUNTIME])
def test_runtime_escapes_are_forbidden(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "FORBIDDEN", message)


MISSING_BUILTINS = [
    "type(1)",
    "vars()",
    "dir()",
    "globals()",
    "locals()",
    "setattr(self, 'x', 1)",
    "delattr(self, 'x')",
    "compile('1', 's', 'exec')",
    "open('/etc/passwd')",
    "input()",
    "memoryview(b'')",
    "help()",
]


@pytest.mark.parametrize("payload", MISSING_BUILTINS)
def test_escape_builtins_do_not_exist(runner, payload: str) -> None:
    name = payload.split("(")[0]
    err = runner.expect(strategy(payload), "RUNTIME_ERROR", f"NameError: name '{name}' is not defined")
    assert err.traceback is not None and 'File "strategy.py"' in err.traceback
