"""Upload-time analysis of a strategy file: compile errors, forbidden constructs and imports,
the strategy class or signal functions, and ``CONFIG_SCHEMA`` read as a literal -- without
executing anything. Parsing and compiling are untrusted work, so this runs inside a host.
"""

from __future__ import annotations

import ast
from typing import Any

from sandbox.errors import SandboxError
from sandbox.limits import Limits
from sandbox.policy import CompileIssue, compile_tree, parse_source
from sandbox.schema import validate_config_schema

# Stand-ins for the other file of a bundle while one file is trial-loaded on its own.
_BUNDLE_STUBS = {
    "signal_entry": ("exit.py", "def should_exit(ctx, position):\n    return None\n"),
    "signal_exit": ("entry.py", "def should_enter(ctx):\n    return []\n"),
}

VALIDATE_STYLES = ("tick", "signal", "signal_entry", "signal_exit")


def _issue(code: str, message: str, node: ast.AST | None = None) -> dict[str, Any]:
    line = getattr(node, "lineno", None) if node is not None else None
    col = getattr(node, "col_offset", None) if node is not None else None
    return {"code": code, "message": message, "line": line, "col": col + 1 if isinstance(col, int) else None}


def _base_names(node: ast.ClassDef) -> list[str]:
    names = []
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.append(base.id)
        elif isinstance(base, ast.Attribute):
            names.append(base.attr)
    return names


def _strategy_classes(tree: ast.Module, base: str) -> list[ast.ClassDef]:
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    derived: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, node in classes.items():
            if name not in derived and any(b == base or b in derived for b in _base_names(node)):
                derived.add(name)
                changed = True
    used_as_base = {b for n in derived for b in _base_names(classes[n])}
    return [classes[n] for n in derived if n not in used_as_base]


def _schema_from(body: list[ast.stmt], issues: list[dict[str, Any]]) -> dict[str, Any]:
    for stmt in body:
        value: ast.expr | None = None
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "CONFIG_SCHEMA" for t in stmt.targets
        ):
            value = stmt.value
        elif (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and stmt.target.id == "CONFIG_SCHEMA"
        ):
            value = stmt.value
        if value is None:
            continue
        try:
            schema = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            issues.append(
                _issue(
                    "BAD_SCHEMA",
                    "CONFIG_SCHEMA must be a literal dict (no names, calls or expressions)",
                    stmt,
                )
            )
            return {}
        errors = validate_config_schema(schema)
        for field, msg in sorted(errors.items()):
            issues.append(
                _issue(
                    "BAD_SCHEMA", f"CONFIG_SCHEMA field {field!r}: {msg}" if field != "__all__" else msg, stmt
                )
            )
        return schema if not errors else {}
    return {}


def _function(tree: ast.Module, name: str, nargs: int) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            args = node.args
            total = len(args.posonlyargs) + len(args.args)
            if total >= nargs or args.vararg is not None:
                return node
    return None


def analyze(source: str, style: str, filename: str, limits: Limits) -> dict[str, Any]:
    """Return a report dict: ok, errors, config_schema, class_name, imports."""
    report: dict[str, Any] = {
        "ok": False,
        "errors": [],
        "config_schema": {},
        "class_name": None,
        "imports": [],
    }
    if style not in VALIDATE_STYLES:
        report["errors"].append(
            _issue("BAD_REQUEST", f"unknown style {style!r}; use one of {', '.join(VALIDATE_STYLES)}")
        )
        return report
    tree, parse_issues = parse_source(source, filename, limits.max_source_bytes, limits.max_nesting)
    if tree is None:
        report["errors"] = [_compile_issue(i) for i in parse_issues]
        return report
    issues: list[dict[str, Any]] = []
    # Found by reading the source: the trial load (which resolves aliases as a run does) decides.
    class_issues: list[dict[str, Any]] = []
    if style in ("tick", "signal"):
        base = "Strategy" if style == "tick" else "SignalStrategy"
        classes = _strategy_classes(tree, base)
        if not classes:
            class_issues.append(
                _issue(
                    "NO_STRATEGY_CLASS",
                    f"define exactly one class subclassing {base} (from sandbox.sdk import {base})",
                )
            )
        elif len(classes) > 1:
            names = ", ".join(sorted(c.name for c in classes))
            class_issues.append(
                _issue("AMBIGUOUS_STRATEGY_CLASS", f"more than one strategy class: {names}", classes[1])
            )
        else:
            report["class_name"] = classes[0].name
            report["config_schema"] = _schema_from(classes[0].body, issues)
    else:
        name, nargs, sig = (
            ("should_enter", 1, "should_enter(ctx)")
            if style == "signal_entry"
            else ("should_exit", 2, "should_exit(ctx, position)")
        )
        if _function(tree, name, nargs) is None:
            issues.append(_issue("MISSING_FUNCTION", f"{filename} must define a module-level function {sig}"))
        report["config_schema"] = _schema_from(tree.body, issues)
    _code, compile_issues, imports = compile_tree(tree, filename)
    report["imports"] = imports
    report["errors"] = [_compile_issue(i) for i in compile_issues] + issues
    if report["errors"]:
        report["errors"] += class_issues
    else:
        _trial_load(report, source, style, filename, limits)
        if (
            class_issues
            and report["errors"]
            and report["errors"][0]["code"] in ("NO_STRATEGY_CLASS", "AMBIGUOUS_STRATEGY_CLASS")
        ):
            report["errors"] = class_issues  # the same verdict, with the source's line numbers
    report["ok"] = not report["errors"]
    return report


def _trial_load(report: dict[str, Any], source: str, style: str, filename: str, limits: Limits) -> None:
    """Load the file exactly as a run would (module body, class, __init__, init(), on_load) with
    the schema's defaults, inside the same budget as a load: a file that validates also loads, and
    the report names the class that actually runs and the schema it actually has."""
    from sandbox.runtime import Instance

    if style in ("tick", "signal"):
        sources = {filename: source}
        run_style = style
        schema_override = None
    else:
        other, stub = _BUNDLE_STUBS[style]
        sources = {filename: source, other: stub}
        run_style = "signal_bundle"
        schema_override = report["config_schema"]  # a bundle's schema is config.json's
    try:
        inst = Instance(
            "validate",
            style=run_style,
            sources=sources,
            config={},
            state=None,
            seed=0,
            limits=limits,
            config_schema=schema_override,
        )
    except SandboxError as exc:
        report["errors"].append(
            {
                "code": str(exc.code),
                "message": f"loading {filename}: {exc.message}",
                "line": exc.line,
                "col": None,
            }
        )
        return
    if inst.obj is not None:
        report["class_name"] = type(inst.obj).__name__
        report["config_schema"] = inst.schema


def _compile_issue(issue: CompileIssue) -> dict[str, Any]:
    return {"code": issue.code, "message": issue.message, "line": issue.line, "col": issue.col}
