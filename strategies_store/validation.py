"""Upload validation: the web process's cheap checks, then the sandbox's compile check.

Nothing here executes, compiles or even parses user code: compiling is untrusted work (a deeply
nested file exhausts the recursion limit or memory), so this module only checks what is safe to
check on bytes — size first, then UTF-8 and NUL bytes — and hands the text to
`sandbox.validate_source`, which compiles inside a sandbox host process. `config.json` is data,
not code, so it is decoded here with `json` (bounded by the same size limit).

Every problem becomes an `UploadIssue` naming the logical input (`source`, `entry_source`,
`exit_source`, `config`, `thesis`) and, for code errors, the line and column; the API maps the
logical names back to the field the client actually sent (`file`, `entry`, ... for multipart).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

import sandbox
from strategies_store.models import StrategyStyle

# Logical inputs of an upload (the JSON API's field names).
SOURCE = "source"
ENTRY = "entry_source"
EXIT = "exit_source"
CONFIG = "config"
THESIS = "thesis"

# File names shown to users and used in diffs; also what the sandbox puts in tracebacks.
FILE_NAMES = {SOURCE: "strategy.py", ENTRY: "entry.py", EXIT: "exit.py", CONFIG: "config.json"}
# Which sandbox validation style checks which file.
SANDBOX_STYLES = {SOURCE: "tick", ENTRY: "signal_entry", EXIT: "signal_exit"}
# Keys config.json may set that the platform itself reads (others are kept as the author's notes).
BUNDLE_TEXT_KEYS = ("name", "description", "thesis")
MAX_THESIS_CHARS = 5000


@dataclass(frozen=True)
class UploadIssue:
    """One reason an upload was refused (the API renders it as one standard error item)."""

    attr: str
    code: str
    message: str
    line: int | None = None
    col: int | None = None

    @property
    def detail(self) -> str:
        if self.line is not None:
            where = f"line {self.line}" + (f", col {self.col}" if self.col is not None else "")
            return f"{FILE_NAMES.get(self.attr, self.attr)} {where}: {self.message}"
        return self.message


class UploadInvalid(Exception):
    """The upload was refused; `issues` says why (never empty)."""

    def __init__(self, issues: list[UploadIssue], fields: dict[str, str] | None = None) -> None:
        self.issues = issues
        # logical input name -> the request field the client used (set by the API's parser)
        self.fields = fields
        super().__init__("; ".join(i.detail for i in issues))


@dataclass
class ValidatedUpload:
    """Everything a version row needs, checked and normalised."""

    style: str
    source: str
    exit_source: str = ""
    bundle_config: dict[str, Any] = field(default_factory=dict)
    config_schema: dict[str, Any] = field(default_factory=dict)
    validation_report: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    thesis: str = ""  # from config.json (bundles); the caller decides whether a form field overrides it


def max_source_bytes() -> int:
    return int(getattr(settings, "STRATBOX_MAX_SOURCE_BYTES", 256 * 1024))


def too_large_issue(attr: str, size: int) -> UploadIssue:
    limit = max_source_bytes()
    return UploadIssue(
        attr,
        "TOO_LARGE",
        f"{FILE_NAMES.get(attr, attr)} is {size} bytes; the limit is {limit} bytes ({limit // 1024} KiB).",
    )


def decode_text(attr: str, raw: str | bytes) -> str:
    """Size, UTF-8 and NUL checks, in that order (the size check never looks at the content)."""
    limit = max_source_bytes()
    if isinstance(raw, str):
        # A str can hide a large encoded size (4 bytes per character at most); measure honestly,
        # but without encoding a multi-megabyte string when its length alone already decides it.
        size = len(raw) if len(raw) > limit else len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise UploadInvalid([too_large_issue(attr, size)])
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UploadInvalid(
                [UploadIssue(attr, "ENCODING", f"{FILE_NAMES.get(attr, attr)} is not valid UTF-8 text.")]
            ) from exc
        text = raw
    else:
        if len(raw) > limit:
            raise UploadInvalid([too_large_issue(attr, len(raw))])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UploadInvalid(
                [
                    UploadIssue(
                        attr,
                        "ENCODING",
                        f"{FILE_NAMES.get(attr, attr)} is not valid UTF-8 (byte {exc.start}).",
                    )
                ]
            ) from exc
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise UploadInvalid(
            [
                UploadIssue(
                    attr,
                    "NUL_BYTE",
                    f"{FILE_NAMES.get(attr, attr)} contains a NUL byte (line {line}); upload a text file.",
                )
            ]
        )
    if not text.strip():
        raise UploadInvalid([UploadIssue(attr, "EMPTY", f"{FILE_NAMES.get(attr, attr)} is empty.")])
    return text


def _issue_value(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _report_dict(report: Any) -> dict[str, Any]:
    """The sandbox's report as plain JSON for `validation_report` (never trusts its types blindly)."""
    errors = [
        {
            "code": str(_issue_value(i, "code") or ""),
            "message": str(_issue_value(i, "message") or ""),
            "line": _int_or_none(_issue_value(i, "line")),
            "col": _int_or_none(_issue_value(i, "col")),
        }
        for i in (getattr(report, "errors", None) or [])
    ]
    schema = getattr(report, "config_schema", None)
    imports = getattr(report, "imports", None) or []
    return {
        "ok": bool(getattr(report, "ok", False)) and not errors,
        "errors": errors,
        "class_name": getattr(report, "class_name", None),
        "imports": sorted(str(i) for i in imports),
        "config_schema": schema if isinstance(schema, dict) else {},
    }


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def check_code(attr: str, text: str) -> dict[str, Any]:
    """Compile-check one file in a sandbox host; return the report as JSON or raise UploadInvalid."""
    try:
        report = sandbox.validate_source(
            text,
            style=SANDBOX_STYLES[attr],
            filename=FILE_NAMES[attr],
            # The host re-checks the size; it must agree with the limit this deployment configured.
            limits=sandbox.Limits(max_source_bytes=max_source_bytes()),
        )
    except sandbox.SandboxError as exc:
        # TIMEOUT / MEMORY_LIMIT / HOST_CRASHED while compiling: the file itself is the likely cause
        # (pathological nesting or size), so it is the upload that is refused, naming the file.
        raise UploadInvalid(
            [
                UploadIssue(
                    attr,
                    str(exc.code),
                    f"{FILE_NAMES[attr]} could not be checked by the sandbox: {exc.message}",
                    line=exc.line,
                )
            ]
        ) from exc
    as_dict = _report_dict(report)
    if not as_dict["ok"]:
        issues = [
            UploadIssue(attr, e["code"] or "INVALID", e["message"] or "invalid", e["line"], e["col"])
            for e in as_dict["errors"]
        ] or [UploadIssue(attr, "INVALID", f"{FILE_NAMES[attr]} was refused by the sandbox.")]
        raise UploadInvalid(issues)
    return as_dict


def check_schema(attr: str, schema: Any, *, where: str) -> dict[str, Any]:
    """Validate a CONFIG_SCHEMA (from a strategy's literal or a bundle's config.json)."""
    errors = sandbox.validate_config_schema(schema)
    if errors:
        raise UploadInvalid(
            [
                UploadIssue(
                    attr,
                    "BAD_SCHEMA",
                    f"{where}: {msg}" if name == "__all__" else f"{where} field '{name}': {msg}",
                )
                for name, msg in sorted(errors.items())
            ]
        )
    return dict(schema)


def parse_bundle_config(raw: str | bytes | dict[str, Any] | None) -> dict[str, Any]:
    """Decode and check config.json: an object with optional name/description/thesis and a config_schema."""
    if raw is None:
        raise UploadInvalid([UploadIssue(CONFIG, "REQUIRED", "config.json is required for a signal bundle.")])
    if isinstance(raw, dict):
        config: Any = raw
        size = len(json.dumps(raw, ensure_ascii=False, default=str).encode())
        if size > max_source_bytes():
            raise UploadInvalid([too_large_issue(CONFIG, size)])
    else:
        text = decode_text(CONFIG, raw)
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UploadInvalid(
                [UploadIssue(CONFIG, "INVALID_JSON", f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)]
            ) from exc
        except (RecursionError, ValueError) as exc:
            raise UploadInvalid(
                [UploadIssue(CONFIG, "INVALID_JSON", "config.json is nested too deeply.")]
            ) from exc
    if not isinstance(config, dict):
        raise UploadInvalid(
            [UploadIssue(CONFIG, "INVALID_JSON", "config.json must be a JSON object ({...}).")]
        )
    for key in BUNDLE_TEXT_KEYS:
        if key in config and not isinstance(config[key], str):
            raise UploadInvalid(
                [UploadIssue(CONFIG, "INVALID_JSON", f"config.json: '{key}' must be a string.")]
            )
    if "config_schema" not in config:
        raise UploadInvalid(
            [
                UploadIssue(
                    CONFIG,
                    "REQUIRED",
                    "config.json must contain 'config_schema' (an object of field specs; {} for none).",
                )
            ]
        )
    if sandbox.contains_nul(config):
        # Stored as jsonb, whose text cannot hold NUL (a "\u0000" escape passes the byte check).
        raise UploadInvalid([UploadIssue(CONFIG, "NUL_BYTE", "config.json must not contain NUL characters.")])
    try:
        # Canonical form is what gets hashed and stored; it must round-trip as strict JSON.
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UploadInvalid(
            [UploadIssue(CONFIG, "INVALID_JSON", "config.json must not contain NaN or Infinity.")]
        ) from exc
    return config


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_sha256(*, style: str, source: str, exit_source: str = "", bundle_config: Any = None) -> str:
    """One digest over every file of an upload; bundles hash entry + exit + canonical config.json."""
    digest = hashlib.sha256()
    if style == StrategyStyle.SIGNAL_BUNDLE:
        for name, text in (
            ("entry.py", source),
            ("exit.py", exit_source),
            ("config.json", canonical_json(bundle_config or {})),
        ):
            encoded = text.encode("utf-8")
            # Length-prefixed so that moving bytes between files can never produce the same digest.
            digest.update(f"{name}\x00{len(encoded)}\x00".encode())
            digest.update(encoded)
        return digest.hexdigest()
    digest.update(source.encode("utf-8"))
    return digest.hexdigest()


def validate_upload(
    *,
    style: str,
    source: str | bytes | None,
    exit_source: str | bytes | None = None,
    config: str | bytes | dict[str, Any] | None = None,
) -> ValidatedUpload:
    """Run every check for one upload; raise UploadInvalid (all problems found) or return the result.

    Cheap per-file checks run for every file before any sandbox work, so that a bundle with a
    too-large exit.py is refused without spawning a host for entry.py.
    """
    if style == StrategyStyle.TICK:
        if exit_source is not None or config is not None:
            raise UploadInvalid(
                [UploadIssue(EXIT, "UNEXPECTED", "a tick-style upload is one .py file; drop exit/config.")]
            )
        if source is None:
            raise UploadInvalid([UploadIssue(SOURCE, "REQUIRED", "the strategy source is required.")])
        text = decode_text(SOURCE, source)
        report = check_code(SOURCE, text)
        schema = check_schema(SOURCE, report["config_schema"], where="CONFIG_SCHEMA")
        return ValidatedUpload(
            style=style,
            source=text,
            config_schema=schema,
            validation_report={"files": {"strategy.py": report}},
            sha256=content_sha256(style=style, source=text),
        )
    if style != StrategyStyle.SIGNAL_BUNDLE:
        raise UploadInvalid([UploadIssue("style", "INVALID", f"unknown style {style!r}.")])

    issues: list[UploadIssue] = []
    texts: dict[str, str] = {}
    for attr, raw in ((ENTRY, source), (EXIT, exit_source)):
        if raw is None:
            issues.append(
                UploadIssue(attr, "REQUIRED", f"{FILE_NAMES[attr]} is required for a signal bundle.")
            )
            continue
        try:
            texts[attr] = decode_text(attr, raw)
        except UploadInvalid as exc:
            issues.extend(exc.issues)
    bundle_config: dict[str, Any] = {}
    try:
        bundle_config = parse_bundle_config(config)
    except UploadInvalid as exc:
        issues.extend(exc.issues)
    if issues:
        raise UploadInvalid(issues)

    reports: dict[str, Any] = {}
    for attr in (ENTRY, EXIT):
        try:
            reports[FILE_NAMES[attr]] = check_code(attr, texts[attr])
        except UploadInvalid as exc:
            issues.extend(exc.issues)
    if reports.get(FILE_NAMES[ENTRY], {}).get("config_schema"):
        issues.append(schema_in_entry_issue(texts[ENTRY]))
    try:
        schema = check_schema(CONFIG, bundle_config["config_schema"], where="config.json config_schema")
    except UploadInvalid as exc:
        issues.extend(exc.issues)
    if issues:
        raise UploadInvalid(issues)
    return ValidatedUpload(
        style=style,
        source=texts[ENTRY],
        exit_source=texts[EXIT],
        bundle_config=bundle_config,
        config_schema=schema,
        validation_report={"files": reports},
        sha256=content_sha256(
            style=style, source=texts[ENTRY], exit_source=texts[EXIT], bundle_config=bundle_config
        ),
        thesis=str(bundle_config.get("thesis", "")).strip(),
    )


def schema_in_entry_issue(entry_text: str) -> UploadIssue:
    """A bundle's config schema lives only in config.json: one place, so the form and the runtime agree.

    The line is found by a plain text scan (the sandbox's report does not carry it).
    """
    line = next(
        (
            n
            for n, text in enumerate(entry_text.splitlines(), start=1)
            if text.startswith("CONFIG_SCHEMA") and text[13:].lstrip()[:1] in ("=", ":")
        ),
        None,
    )
    return UploadIssue(
        ENTRY,
        "SCHEMA_IN_ENTRY",
        "a bundle's config schema belongs in config.json's 'config_schema'; remove CONFIG_SCHEMA from entry.py.",
        line,
        1 if line is not None else None,
    )


def clean_thesis(value: str | None) -> str:
    thesis = (value or "").strip()
    if len(thesis) > MAX_THESIS_CHARS:
        raise UploadInvalid(
            [UploadIssue(THESIS, "TOO_LONG", f"the thesis may be at most {MAX_THESIS_CHARS} characters.")]
        )
    return thesis
