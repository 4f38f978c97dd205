"""The language layer of the sandbox: a RestrictedPython policy tuned to cost (almost) nothing.

Stock RestrictedPython turns every attribute read, subscript, iteration and unpacking into a
Python-level guard call (~6.8x slower for a typical strategy). This policy moves the checks to
compile time wherever the decision depends only on the *name* and keeps a cheap runtime guard
only where it depends on the *object*:

* attribute reads ``a.b``: names starting with ``_`` and the frame/generator/code/traceback
  internals are rejected at compile time; every other read compiles to a plain ``LOAD_ATTR``,
  except the few names whose danger depends on the object (``format``/``format_map`` on strings:
  format-string traversal; ``obj`` on exceptions: ``AttributeError.obj`` leaks host objects),
  which go through ``_getattr_``;
* attribute writes ``a.b = v`` / ``a.b += v`` / ``del a.b``: ``_write_(a)`` allows only objects of
  classes the user's own module created (and those classes), so SDK classes, module wrappers,
  stdlib classes and functions can never be patched; ``self.n += 1`` is supported safely;
* subscripts, item writes, iteration and unpacking compile to plain bytecode: every container
  user code can reach is either created by the user, a fresh per-call copy, or immutable, so a
  guard could not refuse anything (the check is discharged by construction, not dropped);
* imports go through ``__import__`` to curated, per-instance, read-only module wrappers holding
  hand-picked functions -- never the real module objects (``statistics.sys`` does not exist);
* builtins are an allow-list without ``type``/``vars``/``dir``/``eval``/``exec``/``open``/...;
  ``getattr``/``hasattr`` re-apply the compile-time name rules at run time; ``print`` logs;
* no callable handed to user code takes an attribute *name* as data unless it applies the same
  rules: ``functools.wraps``/``total_ordering`` and ``collections.namedtuple`` are stand-ins that
  touch only the user's own functions and classes (``attrgetter``/``methodcaller`` are not offered);
* classes may derive only from :data:`SUBCLASSABLE` bases and the user's own classes: a ``str``
  subclass would carry the unguarded ``str.format`` at class level;
* Python functions and bound methods are handed out as :class:`HostFunction` wrappers: no
  ``__globals__``/``__self__`` behind them, and reprs without addresses or module paths.

``tests/sandbox/test_sandbox_census.py`` walks everything reachable from user code and fails on
anything not plain data and not on its reviewed allow-list.

Runtime violations raise :class:`PolicyViolation` *and* are recorded on the instance, so a
strategy that catches the exception still fails the call with ``FORBIDDEN``.
"""

from __future__ import annotations

import ast
import bisect
import collections
import datetime
import decimal
import fractions
import functools
import heapq
import itertools
import math
import operator
import random
import re
import statistics
import string
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from RestrictedPython.transformer import ALLOWED_FUNC_NAMES, INSPECT_ATTRIBUTES, RestrictingNodeTransformer

from sandbox import indicators, sdk

# ---------------------------------------------------------------------------------------------
# The allow-list shown to users: module -> exposed names.

RANDOM_METHODS: tuple[str, ...] = (
    "betavariate",
    "choice",
    "choices",
    "expovariate",
    "gammavariate",
    "gauss",
    "getrandbits",
    "lognormvariate",
    "normalvariate",
    "paretovariate",
    "randint",
    "random",
    "randrange",
    "sample",
    "seed",
    "shuffle",
    "triangular",
    "uniform",
    "vonmisesvariate",
    "weibullvariate",
)
# ``typing`` is offered for annotations only: inert per-instance markers, never the real objects
# (whose aliases forward attribute access to their origin and share one lru cache between callers).
TYPING_NAMES: tuple[str, ...] = (
    "Any",
    "Callable",
    "ClassVar",
    "Counter",
    "DefaultDict",
    "Deque",
    "Dict",
    "Final",
    "FrozenSet",
    "Generator",
    "Iterable",
    "Iterator",
    "List",
    "Literal",
    "Mapping",
    "MutableMapping",
    "MutableSequence",
    "MutableSet",
    "Optional",
    "OrderedDict",
    "Sequence",
    "Set",
    "Tuple",
    "Type",
    "Union",
)

_MATH_NAMES = sorted(n for n in dir(math) if not n.startswith("_"))
_ITERTOOLS_NAMES = sorted(n for n in dir(itertools) if not n.startswith("_"))

ALLOWED_IMPORTS: dict[str, list[str]] = {
    "math": _MATH_NAMES,
    "statistics": [
        "NormalDist",
        "StatisticsError",
        "correlation",
        "covariance",
        "fmean",
        "geometric_mean",
        "harmonic_mean",
        "linear_regression",
        "mean",
        "median",
        "median_grouped",
        "median_high",
        "median_low",
        "mode",
        "multimode",
        "pstdev",
        "pvariance",
        "quantiles",
        "stdev",
        "variance",
    ],
    "datetime": ["MAXYEAR", "MINYEAR", "date", "datetime", "time", "timedelta", "timezone"],
    "decimal": [
        "Decimal",
        "DecimalException",
        "DivisionByZero",
        "InvalidOperation",
        "ROUND_05UP",
        "ROUND_CEILING",
        "ROUND_DOWN",
        "ROUND_FLOOR",
        "ROUND_HALF_DOWN",
        "ROUND_HALF_EVEN",
        "ROUND_HALF_UP",
        "ROUND_UP",
    ],
    "fractions": ["Fraction"],
    "itertools": _ITERTOOLS_NAMES,
    "functools": [
        "cache",
        "cached_property",
        "cmp_to_key",
        "lru_cache",
        "partial",
        "reduce",
        "total_ordering",
        "wraps",
    ],
    "collections": ["ChainMap", "Counter", "OrderedDict", "defaultdict", "deque", "namedtuple"],
    "heapq": [
        "heapify",
        "heappop",
        "heappush",
        "heappushpop",
        "heapreplace",
        "merge",
        "nlargest",
        "nsmallest",
    ],
    "bisect": ["bisect", "bisect_left", "bisect_right", "insort", "insort_left", "insort_right"],
    "random": [*RANDOM_METHODS, "Random"],
    "re": [
        "A",
        "ASCII",
        "DOTALL",
        "I",
        "IGNORECASE",
        "M",
        "MULTILINE",
        "S",
        "VERBOSE",
        "X",
        "compile",
        "error",
        "escape",
        "findall",
        "finditer",
        "fullmatch",
        "match",
        "search",
        "split",
        "sub",
        "subn",
    ],
    "operator": [
        "abs",
        "add",
        "and_",
        "concat",
        "contains",
        "countOf",
        "eq",
        "floordiv",
        "ge",
        "gt",
        "index",
        "indexOf",
        "inv",
        "invert",
        "itemgetter",
        "le",
        "lshift",
        "lt",
        "mod",
        "mul",
        "ne",
        "neg",
        "not_",
        "or_",
        "pos",
        "pow",
        "rshift",
        "sub",
        "truediv",
        "truth",
        "xor",
    ],
    "sandbox.sdk": sorted(sdk.SDK_EXPORTS),
    "sandbox.indicators": sorted(indicators.INDICATOR_EXPORTS),
    "typing": sorted([*TYPING_NAMES, "TYPE_CHECKING", "cast"]),
    "__future__": ["annotations"],
}
"""Modules user code may import and the names each exposes (``random`` is seeded per instance)."""

SANDBOX_MODULES: frozenset[str] = frozenset({"sandbox.sdk", "sandbox.indicators"})
"""The platform's own modules offered to user code (``from sandbox import sdk, indicators``)."""

_REAL_MODULES: dict[str, Any] = {
    "math": math,
    "statistics": statistics,
    "datetime": datetime,
    "decimal": decimal,
    "fractions": fractions,
    "itertools": itertools,
    "functools": functools,
    "collections": collections,
    "heapq": heapq,
    "bisect": bisect,
    "re": re,
    "operator": operator,
    "sandbox.indicators": indicators,
}

# Attribute names refused at compile time (beyond anything starting with "_").
FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset(INSPECT_ATTRIBUTES) | frozenset(
    {
        "f_back",
        "f_builtins",
        "f_code",
        "f_globals",
        "f_locals",
        "f_trace",
        "f_generator",
        "f_lasti",
        "f_lineno",
        "f_trace_lines",
        "f_trace_opcodes",
        "tb_frame",
        "tb_next",
        "tb_lasti",
        "tb_lineno",
        "func_globals",
        "func_code",
        "func_closure",
        "im_func",
        "im_self",
        "im_class",
        "mro",
        "fget",
        "fset",
        "fdel",
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
    }
)
FORBIDDEN_ATTRIBUTE_PREFIXES: tuple[str, ...] = ("co_", "gi_", "cr_", "ag_", "tb_")
# Attribute names whose danger depends on the object: compiled to ``_getattr_(obj, name)``.
GUARDED_ATTRIBUTES: frozenset[str] = frozenset({"format", "format_map", "obj"})
# Special methods user classes may define (no __del__, __getattribute__, __setattr__, __format__, ...).
ALLOWED_MAGIC_METHODS: frozenset[str] = frozenset(ALLOWED_FUNC_NAMES) | frozenset(
    {
        "__init__",
        "__repr__",
        "__str__",
        "__len__",
        "__iter__",
        "__next__",
        "__getitem__",
        "__setitem__",
        "__delitem__",
        "__contains__",
        "__hash__",
        "__bool__",
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__add__",
        "__radd__",
        "__sub__",
        "__rsub__",
        "__mul__",
        "__rmul__",
        "__truediv__",
        "__rtruediv__",
        "__floordiv__",
        "__mod__",
        "__neg__",
        "__pos__",
        "__abs__",
        "__call__",
        "__enter__",
        "__exit__",
    }
)
FORBIDDEN_MAGIC_METHODS: frozenset[str] = frozenset(
    {
        "__del__",
        "__getattr__",
        "__getattribute__",
        "__setattr__",
        "__delattr__",
        "__format__",
        "__init_subclass__",
        "__class_getitem__",
        "__set_name__",
        "__get__",
        "__set__",
        "__delete__",
        "__reduce__",
        "__reduce_ex__",
        "__new__",
        "__instancecheck__",
        "__subclasscheck__",
        "__index__",
        "__int__",
        "__float__",
        "__complex__",
        "__getstate__",
        "__setstate__",
    }
)

SAFE_BUILTIN_NAMES: tuple[str, ...] = (
    "abs",
    "all",
    "any",
    "bin",
    "bool",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "complex",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "frozenset",
    "hash",
    "hex",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "object",
    "oct",
    "ord",
    "pow",
    "property",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "zip",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "Exception",
    "IndexError",
    "KeyError",
    "LookupError",
    "NotImplementedError",
    "OverflowError",
    "RuntimeError",
    "StopIteration",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
)
SAFE_CONSTANTS: dict[str, Any] = {
    "True": True,
    "False": False,
    "None": None,
    "NotImplemented": NotImplemented,
    "Ellipsis": Ellipsis,
}


# Modules that stdlib C code imports on behalf of an allowed function; never handed to user code.
INTERNAL_IMPORTS: frozenset[str] = frozenset({"_strptime", "time", "unicodedata"})


class PolicyViolation(Exception):
    """Raised into user code when a runtime guard refuses an operation."""


@dataclass
class CompileIssue:
    """One problem found while compiling user code (line/col 1-based)."""

    code: str
    message: str
    line: int | None = None
    col: int | None = None


def attribute_name_problem(name: str) -> str | None:
    """Why an attribute name is refused by the policy, or None when it is fine."""
    if name.startswith("_") and name != "_":
        return f'"{name}" is an invalid attribute name because it starts with "_"'
    if name.endswith("__roles__"):
        return f'"{name}" is an invalid attribute name'
    if name in FORBIDDEN_ATTRIBUTES or name.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES):
        return f'"{name}" is a restricted attribute (interpreter internals)'
    return None


# ---------------------------------------------------------------------------------------------
# Compile-time policy


class StratboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython transformer with compile-time attribute checks and cheap runtime guards."""

    def __init__(
        self,
        errors: list[str] | None = None,
        warnings: list[str] | None = None,
        used_names: dict[str, bool] | None = None,
    ) -> None:
        super().__init__(errors, warnings, used_names)
        self.issues: list[CompileIssue] = []
        self.imports: list[str] = []
        # Per function scope: how many try/with blocks enclose the node being visited.
        self._cleanup_depth: list[int] = [0]

    # errors carry line/col so uploads can point at them
    def error(self, node: ast.AST, info: str) -> None:
        super().error(node, info)
        line = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        code = "FORBIDDEN_IMPORT" if info.startswith("import of") else "FORBIDDEN"
        self.issues.append(CompileIssue(code, info, line, col + 1 if isinstance(col, int) else None))

    def check_name(self, node: Any, name: str | None, allow_magic_methods: bool = False) -> None:
        if name is None:
            return
        if allow_magic_methods and name.startswith("__") and name.endswith("__"):
            if name in FORBIDDEN_MAGIC_METHODS or name not in ALLOWED_MAGIC_METHODS:
                self.error(node, f'defining "{name}" is not allowed')
                return
            if getattr(node, "col_offset", 0) != 0:
                return
        if name == "print":
            self.error(node, '"print" is a reserved name')
            return
        super().check_name(node, name, allow_magic_methods=False)

    def visit_Name(self, node: ast.Name) -> Any:
        if isinstance(node.ctx, ast.Load) and node.id == "print":
            return node  # our print builtin logs through the context
        if node.id == "printed":
            self.error(node, '"printed" is a reserved name')
            return node
        self.check_name(node, node.id)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        problem = attribute_name_problem(node.attr)
        if problem is not None and not self._is_super_magic(node):
            self.error(node, problem)
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):
            if node.attr in GUARDED_ATTRIBUTES:
                call = ast.Call(
                    func=ast.Name("_getattr_", ast.Load()),
                    args=[node.value, ast.Constant(node.attr)],
                    keywords=[],
                )
                return ast.copy_location(call, node)
            return node
        guard = ast.Call(func=ast.Name("_write_", ast.Load()), args=[node.value], keywords=[])
        node.value = ast.copy_location(guard, node.value)
        return node

    @staticmethod
    def _is_super_magic(node: ast.Attribute) -> bool:
        """``super().__init__(...)`` and friends: allowed magic names on a bare super() call."""
        value = node.value
        return (
            node.attr in ALLOWED_MAGIC_METHODS
            and isinstance(node.ctx, ast.Load)
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "super"
            and not value.args
            and not value.keywords
        )

    # Finalisers: a suspended generator is closed when it is garbage-collected, which runs the
    # ``finally``/``except`` clauses and ``__exit__`` around its ``yield`` -- user code at an
    # arbitrary later moment, outside any call's budget and inside another call. So a ``yield``
    # may not sit inside ``try``/``with`` (and ``__del__`` may not be defined): closing a user
    # generator then executes nothing of the user's.
    def _enter_scope(self, visit: Callable[[Any], Any], node: ast.AST) -> Any:
        self._cleanup_depth.append(0)
        try:
            return visit(node)
        finally:
            self._cleanup_depth.pop()

    def _enter_cleanup(self, visit: Callable[[Any], Any], node: ast.AST) -> Any:
        self._cleanup_depth[-1] += 1
        try:
            return visit(node)
        finally:
            self._cleanup_depth[-1] -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        return self._enter_scope(super().visit_FunctionDef, node)

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        return self._enter_scope(super().visit_Lambda, node)

    def visit_Try(self, node: ast.Try) -> Any:
        return self._enter_cleanup(super().visit_Try, node)

    def _check_yield(self, node: ast.Yield | ast.YieldFrom) -> None:
        if self._cleanup_depth[-1]:
            self.error(
                node,
                "yield inside try/with is not allowed: its cleanup would run when the generator "
                "is garbage-collected, outside any call",
            )

    def visit_Yield(self, node: ast.Yield) -> Any:
        self._check_yield(node)
        return super().visit_Yield(node)

    def visit_YieldFrom(self, node: ast.YieldFrom) -> Any:
        self._check_yield(node)
        return super().visit_YieldFrom(node)

    # No guard is needed for these (see the module docstring); keep the plain bytecode.
    def visit_Subscript(self, node: ast.Subscript) -> Any:
        return self.node_contents_visit(node)

    def guard_iter(self, node: Any) -> Any:
        return self.node_contents_visit(node)

    def visit_Assign(self, node: ast.Assign) -> Any:
        return self.node_contents_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        return self.node_contents_visit(node)

    def visit_With(self, node: ast.With) -> Any:
        return self._enter_cleanup(self.node_contents_visit, node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        # ``self.n += 1`` becomes ``_write_(self).n += 1`` (the target visit adds the guard).
        return self.node_contents_visit(node)

    def visit_Call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval"):
            self.error(node, f"{node.func.id} calls are not allowed")
        return self.node_contents_visit(node)

    def _check_module(self, node: ast.Import | ast.ImportFrom, module: str, names: list[str]) -> None:
        if module not in ALLOWED_IMPORTS and not (module == "sandbox" and not names):
            self.error(
                node, f"import of {module!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_IMPORTS))})"
            )
            return
        allowed = ALLOWED_IMPORTS.get(module, [])
        for name in names:
            if name not in allowed:
                self.error(node, f"import of {module}.{name} is not allowed")
        if module not in self.imports:
            self.imports.append(module)

    def visit_Import(self, node: ast.Import) -> Any:
        for alias in node.names:
            if alias.name in SANDBOX_MODULES and alias.asname is None:
                short = alias.name.rpartition(".")[2]
                self.error(node, f"use 'from sandbox import {short}' or 'from {alias.name} import ...'")
            self._check_module(node, alias.name, [])
        return self.check_import_names(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        if node.level:
            self.error(node, "import of relative modules is not allowed")
            return node
        module = node.module or ""
        if module == "sandbox":
            for alias in node.names:
                if f"sandbox.{alias.name}" in SANDBOX_MODULES:
                    self._check_module(node, f"sandbox.{alias.name}", [])
                else:
                    self.error(node, f"import of sandbox.{alias.name} is not allowed")
        else:
            self._check_module(node, module, [a.name for a in node.names])
        return self.check_import_names(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        for kw in node.keywords:
            if kw.arg != "metaclass":
                self.error(node, "class keyword arguments are not allowed")
        return super().visit_ClassDef(node)


def ast_depth(tree: ast.AST) -> int:
    """Maximum nesting depth of an AST, computed without recursion."""
    best = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > best:
            best = depth
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))
    return best


def parse_source(
    source: str, filename: str, max_bytes: int, max_depth: int
) -> tuple[ast.Module | None, list[CompileIssue]]:
    """Size check, parse and depth check. Untrusted work: call inside a host process."""
    if len(source.encode("utf-8", "surrogatepass")) > max_bytes:
        return None, [CompileIssue("TOO_LARGE", f"{filename} is larger than {max_bytes // 1024} KiB")]
    try:
        tree = ast.parse(source, filename, "exec")
    except SyntaxError as exc:
        msg = str(exc.msg)
        if "too many nested" in msg or "too complex" in msg:
            return None, [CompileIssue("TOO_DEEP", f"{filename}: {msg}", exc.lineno, exc.offset)]
        return None, [CompileIssue("COMPILE_ERROR", f"{type(exc).__name__}: {msg}", exc.lineno, exc.offset)]
    except (RecursionError, MemoryError):
        return None, [CompileIssue("TOO_DEEP", f"{filename} is nested too deeply to compile")]
    except ValueError as exc:  # null bytes
        return None, [CompileIssue("COMPILE_ERROR", f"ValueError: {exc}")]
    depth = ast_depth(tree)
    if depth > max_depth:
        return None, [
            CompileIssue("TOO_DEEP", f"{filename} is nested {depth} levels deep (limit {max_depth})")
        ]
    return tree, []


def compile_tree(tree: ast.Module, filename: str) -> tuple[CodeType | None, list[CompileIssue], list[str]]:
    """Apply the policy to a parsed module and compile it. Returns (code, issues, imports)."""
    policy = StratboxPolicy()
    try:
        policy.visit(tree)
    except RecursionError:
        return None, [CompileIssue("TOO_DEEP", f"{filename} is nested too deeply to compile")], []
    if policy.issues:
        return None, policy.issues, policy.imports
    ast.fix_missing_locations(tree)
    try:
        code = compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return (
            None,
            [CompileIssue("COMPILE_ERROR", f"SyntaxError: {exc.msg}", exc.lineno, exc.offset)],
            policy.imports,
        )
    except (RecursionError, MemoryError):
        return None, [CompileIssue("TOO_DEEP", f"{filename} is nested too deeply to compile")], policy.imports
    return code, [], policy.imports


def compile_source(
    source: str, filename: str, max_bytes: int = 256 * 1024, max_depth: int = 60
) -> tuple[CodeType | None, list[CompileIssue], list[str]]:
    tree, issues = parse_source(source, filename, max_bytes, max_depth)
    if tree is None:
        return None, issues, []
    return compile_tree(tree, filename)


# ---------------------------------------------------------------------------------------------
# Runtime: per-instance guards, curated modules and builtins


class ModuleProxy:
    """A read-only, per-instance stand-in for an allowed module: only the curated names exist."""

    _sb_name: str  # set with object.__setattr__ ("_" names are unreachable from user code)

    def __init__(self, name: str, names: dict[str, Any]) -> None:
        self.__dict__.update(names)
        object.__setattr__(self, "_sb_name", name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"module {self._sb_name!r} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module {self._sb_name!r} is read-only")

    def __repr__(self) -> str:
        return f"<module {self._sb_name!r} (sandboxed)>"


class RandomGenerator(ModuleProxy):
    """What ``random.Random(seed)`` returns: the generator's methods, bound to a private ``random.Random``."""

    def __repr__(self) -> str:
        return "<random.Random (sandboxed)>"


class HostFunction:
    """A trusted callable handed to user code in place of a Python function or bound method.

    It calls straight through, but has no ``__globals__``, ``__self__`` or ``__wrapped__`` to walk
    and a repr without a heap address or module path.
    """

    __slots__ = ("_sb_fn", "_sb_label")
    _sb_fn: Callable[..., Any]
    _sb_label: str

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        object.__setattr__(self, "_sb_fn", fn)
        object.__setattr__(self, "_sb_label", label)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._sb_fn(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self._sb_label} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self._sb_label} is read-only")

    def __repr__(self) -> str:
        return f"<function {self._sb_label}>"


class TypingName:
    """An inert ``typing`` name for annotations: subscript it, ``|`` it, never call it."""

    __slots__ = ("_sb_name",)
    _sb_name: str

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_sb_name", name)

    def __getitem__(self, item: Any) -> TypingName:
        return TypingName(self._sb_name + "[...]")

    def __or__(self, other: Any) -> TypingName:
        return TypingName("Union[...]")

    def __ror__(self, other: Any) -> TypingName:
        return TypingName("Union[...]")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"typing.{self._sb_name} is for annotations only")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"typing.{self._sb_name} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"typing.{self._sb_name} is read-only")

    def __repr__(self) -> str:
        return f"typing.{self._sb_name}"


def _typing_cast(tp: Any, value: Any) -> Any:
    return value


_FORMAT_PARSER = string.Formatter().parse


def _check_format_string(fmt: str, depth: int = 0) -> str | None:
    """Refuse format fields that traverse attributes or items (``{0.__class__}``, ``{x[0]}``)."""
    if depth > 2:
        return "format specs are nested too deeply"
    try:
        parts = list(_FORMAT_PARSER(fmt))
    except ValueError as exc:
        return f"bad format string: {exc}"
    for _literal, field_name, spec, _conv in parts:
        if field_name is not None and ("." in field_name or "[" in field_name):
            return "format fields may not access attributes or items; use an f-string"
        if spec:
            problem = _check_format_string(spec, depth + 1)
            if problem:
                return problem
    return None


# Classes user code may subclass besides its own. Everything else is refused at class creation:
# a subclass of ``str`` would carry the unguarded ``str.format`` at class level, a subclass of
# ``cached_property`` a writable attribute *name*, and so on. Adding a base needs the same review
# as adding a module name (see tests/sandbox/test_sandbox_census.py).
SUBCLASSABLE_BUILTINS: tuple[type, ...] = (
    object,
    dict,
    list,
    tuple,
    set,
    frozenset,
    int,
    float,
    ArithmeticError,
    AssertionError,
    AttributeError,
    Exception,
    IndexError,
    KeyError,
    LookupError,
    NotImplementedError,
    OverflowError,
    RuntimeError,
    StopIteration,
    TypeError,
    ValueError,
    ZeroDivisionError,
)
SUBCLASSABLE: frozenset[type] = frozenset({*SUBCLASSABLE_BUILTINS, sdk.Strategy, sdk.SignalStrategy})

_PYTHON_CALLABLES = (types.FunctionType, types.MethodType, types.BuiltinMethodType)


def _expose(module: str, name: str, value: Any) -> Any:
    """Wrap a Python function or bound method in a :class:`HostFunction`; leave everything else."""
    if isinstance(value, _PYTHON_CALLABLES) and not isinstance(
        getattr(value, "__self__", None), types.ModuleType
    ):
        return HostFunction(value, f"{module}.{name}")
    return value


@dataclass
class Runtime:
    """Everything the guards of one loaded instance need. Created fresh for every load."""

    seed: int | None = None
    user_types: set[type] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    modules: dict[str, ModuleProxy] = field(default_factory=dict)
    log: Callable[[str, str], None] = field(default=lambda level, msg: None)
    module_globals: list[dict[str, Any]] = field(default_factory=list)
    generators: int = 0

    def violation(self, message: str) -> PolicyViolation:
        self.violations.append(message)
        return PolicyViolation(message)

    def is_user_object(self, ob: object) -> bool:
        return type(ob) in self.user_types or (isinstance(ob, type) and ob in self.user_types)

    def is_user_function(self, fn: object) -> bool:
        """A plain function (or lambda) defined in one of this instance's own files."""
        if type(fn) is not types.FunctionType:
            return False
        fn_globals = fn.__globals__
        return any(fn_globals is g for g in self.module_globals)

    @property
    def uses_shared_caches(self) -> bool:
        """Whether user code can time the interpreter-wide ``re``/``strptime`` caches."""
        return "re" in self.modules or "datetime" in self.modules

    # -- modules
    def module(self, name: str) -> ModuleProxy:
        proxy = self.modules.get(name)
        if proxy is None:
            proxy = ModuleProxy(name, self._module_names(name))
            self.modules[name] = proxy
        return proxy

    def _module_names(self, name: str) -> dict[str, Any]:
        if name == "random":
            rng = random.Random(self.seed if self.seed is not None else 0)
            names: dict[str, Any] = {n: HostFunction(getattr(rng, n), f"random.{n}") for n in RANDOM_METHODS}
            names["Random"] = HostFunction(self._new_random, "random.Random")
            return names
        if name == "sandbox.sdk":
            return {n: _expose("sdk", n, v) for n, v in sdk.SDK_EXPORTS.items()}
        if name == "sandbox":
            return {"sdk": self.module("sandbox.sdk"), "indicators": self.module("sandbox.indicators")}
        if name == "__future__":
            # The compiler acts on the import; the value bound at run time is plain data, not the
            # shared __future__._Feature object.
            return {"annotations": "annotations"}
        if name == "typing":
            names = {n: TypingName(n) for n in TYPING_NAMES}
            names["TYPE_CHECKING"] = False
            names["cast"] = HostFunction(_typing_cast, "typing.cast")
            return names
        real = _REAL_MODULES[name]
        names = {n: _expose(name, n, getattr(real, n)) for n in ALLOWED_IMPORTS[name]}
        if name == "functools":
            names["wraps"] = HostFunction(self._wraps, "functools.wraps")
            names["total_ordering"] = HostFunction(self._total_ordering, "functools.total_ordering")
        elif name == "collections":
            names["namedtuple"] = HostFunction(self._namedtuple, "collections.namedtuple")
        return names

    def _new_random(self, seed: Any = None) -> RandomGenerator:
        """``random.Random(seed)``: a new generator of this instance only (seeded deterministically)."""
        if seed is None:
            self.generators += 1
            seed = (self.seed or 0) * 1_000_003 + self.generators
        elif type(seed) not in (int, float, str, bytes):
            raise TypeError("random.Random(seed): the seed must be an int, float, str, bytes or None")
        rng = random.Random(seed)
        return RandomGenerator(
            "random.Random", {n: HostFunction(getattr(rng, n), f"Random.{n}") for n in RANDOM_METHODS}
        )

    # functools/collections helpers that read or write attributes by name, narrowed to the
    # user's own objects and to names the compile-time policy accepts.
    def _wrapper_names(self, given: Any, default: tuple[str, ...], what: str) -> tuple[str, ...]:
        if given is default:
            same: tuple[str, ...] = default
            return same
        if type(given) is not tuple and type(given) is not list:
            raise self.violation(f"functools.wraps({what}=...) must be a tuple of attribute names")
        names: tuple[str, ...] = tuple(given)
        for attr in names:
            if type(attr) is not str:
                raise self.violation(f"functools.wraps({what}=...) must be a tuple of attribute names")
            if attr not in default:
                problem = attribute_name_problem(attr)
                if problem is not None:
                    raise self.violation(problem)
        return names

    def _wraps(
        self,
        wrapped: Any,
        assigned: Any = functools.WRAPPER_ASSIGNMENTS,
        updated: Any = functools.WRAPPER_UPDATES,
    ) -> HostFunction:
        names_assigned = self._wrapper_names(assigned, functools.WRAPPER_ASSIGNMENTS, "assigned")
        names_updated = self._wrapper_names(updated, functools.WRAPPER_UPDATES, "updated")

        def decorator(wrapper: Any) -> Any:
            if not self.is_user_function(wrapper):
                raise self.violation("functools.wraps can only decorate a function defined in your strategy")
            return functools.update_wrapper(wrapper, wrapped, names_assigned, names_updated)

        return HostFunction(decorator, "functools.wraps(...)")

    def _total_ordering(self, cls: Any) -> Any:
        if not (isinstance(cls, type) and cls in self.user_types):
            raise self.violation(
                "functools.total_ordering can only decorate a class defined in your strategy"
            )
        return functools.total_ordering(cls)

    def _namedtuple(
        self, typename: Any, field_names: Any, *, rename: bool = False, defaults: Any = None
    ) -> type:
        make: Any = collections.namedtuple
        cls: type = make(typename, field_names, rename=rename, defaults=defaults)
        self.user_types.add(cls)  # a fresh class of this instance: it may be subclassed
        return cls


def make_globals(rt: Runtime, module_name: str = "strategy") -> dict[str, Any]:
    """Fresh module globals (and a fresh builtins dict) for one compiled user file."""
    import builtins as _b

    user_types = rt.user_types

    def _write_(ob: Any) -> Any:
        if type(ob) in user_types or (isinstance(ob, type) and ob in user_types):
            return ob
        raise rt.violation(f"cannot modify {_describe(ob)}: only objects of your own classes can be changed")

    def _getattr_(ob: Any, name: str) -> Any:
        if name == "format" or name == "format_map":
            if type(ob) is str:
                return _safe_str_method(rt, ob, name)
            if type(ob) in user_types or (isinstance(ob, type) and ob in user_types):
                # User classes cannot derive from str (see SUBCLASSABLE): no str.format to inherit.
                return getattr(ob, name)
            raise rt.violation(f"access to .{name} of {_describe(ob)} is not allowed")
        if name == "obj" and isinstance(ob, BaseException) and type(ob) not in user_types:
            raise rt.violation("access to .obj of exceptions is not allowed")
        return getattr(ob, name)

    _missing = object()

    def safe_getattr(ob: Any, name: Any, default: Any = _missing) -> Any:
        if type(name) is not str:
            raise TypeError("attribute name must be a string")
        problem = attribute_name_problem(name)
        if problem is not None:
            raise rt.violation(problem)
        try:
            if name in GUARDED_ATTRIBUTES:
                return _getattr_(ob, name)
            return getattr(ob, name)
        except AttributeError:
            if default is _missing:
                raise
            return default

    def safe_hasattr(ob: Any, name: Any) -> bool:
        try:
            safe_getattr(ob, name)
        except AttributeError:
            return False
        return True

    def _import_(
        name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if level != 0 or type(name) is not str:
            raise rt.violation("relative imports are not allowed")
        if name == "sandbox" or (name in SANDBOX_MODULES and not fromlist):
            return rt.module("sandbox")
        if name not in ALLOWED_IMPORTS:
            # C code inside allowed functions (datetime.strptime -> _strptime) imports through the
            # caller's builtins; user source can never name these (compile-time "_" rule).
            if name in INTERNAL_IMPORTS and name in sys.modules:
                return sys.modules[name]
            raise rt.violation(f"import of {name!r} is not allowed")
        return rt.module(name)

    def _class_factory(name: str, bases: tuple[Any, ...], ns: dict[str, Any], **kw: Any) -> type:
        if kw:
            raise rt.violation("class keyword arguments are not allowed")
        for key in ns:
            if key in FORBIDDEN_MAGIC_METHODS:
                raise rt.violation(f'defining "{key}" is not allowed')
        for base in bases:
            if not isinstance(base, type):
                raise rt.violation("class bases must be classes")
            if base not in user_types and base not in SUBCLASSABLE:
                raise rt.violation(
                    f"subclassing {base.__name__} is not allowed; a class may derive from your own classes, "
                    "Strategy, SignalStrategy, object, the built-in exceptions, dict, list, tuple, set, "
                    "frozenset, int and float"
                )
        cls = type(name, bases, ns)
        user_types.add(cls)
        return cls

    def _print(*args: Any, sep: Any = " ", end: Any = "\n", **_ignored: Any) -> None:
        rt.log("info", str(sep).join(str(a) for a in args))

    safe_builtins: dict[str, Any] = {n: getattr(_b, n) for n in SAFE_BUILTIN_NAMES}
    safe_builtins.update(SAFE_CONSTANTS)
    safe_builtins.update(
        {
            "__build_class__": _b.__build_class__,
            "__import__": _import_,
            "getattr": HostFunction(safe_getattr, "getattr"),
            "hasattr": HostFunction(safe_hasattr, "hasattr"),
            "print": HostFunction(_print, "print"),
        }
    )
    module_globals = {
        "__builtins__": safe_builtins,
        "__name__": module_name,
        "__metaclass__": _class_factory,
        "_write_": _write_,
        "_getattr_": _getattr_,
    }
    rt.module_globals.append(module_globals)
    return module_globals


def _safe_str_method(rt: Runtime, text: str, name: str) -> HostFunction:
    problem = _check_format_string(text)

    def fmt(*args: Any, **kwargs: Any) -> str:
        if problem:
            raise rt.violation(problem)
        if name == "format_map":
            return text.format_map(*args)
        return text.format(*args, **kwargs)

    return HostFunction(fmt, f"str.{name}")


def _describe(ob: object) -> str:
    if isinstance(ob, type):
        return f"class {ob.__name__}"
    if isinstance(ob, ModuleProxy):
        return repr(ob)
    if isinstance(ob, (HostFunction, types.FunctionType, types.BuiltinFunctionType)):
        return "a function object"
    return f"a {type(ob).__name__} object"
