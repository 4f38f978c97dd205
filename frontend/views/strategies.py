"""Strategy pages: catalog + own definitions, upload (single file or bundle), versions, source view."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from frontend.access import tenant_view
from frontend.forms import StrategyUploadForm
from frontend.selectors import version_diff
from frontend.throttling import form_throttled
from sandbox.policy import ALLOWED_IMPORTS
from strategies_store.selectors import (
    strategy_get,
    version_get,
    version_list,
)
from strategies_store.selectors import (
    strategy_list as strategy_list_query,
)
from strategies_store.services import DuplicateVersion, strategy_create, version_create
from strategies_store.validation import UploadInvalid
from tenants.errors import ApplicationError, form_add_error
from tenants.throttling import DiffThrottle, UploadThrottle

# The store names logical inputs; the form has one field per thing the user touched.
ISSUE_FIELDS = {
    "entry_source": "entry_file",
    "exit_source": "exit_file",
    "config": "config_file",
    "thesis": "thesis",
    "name": "name",
    "key": "key",
    "style": "kind",
}
FILE_LABELS = {
    "source": "strategy.py",
    "entry_source": "entry.py",
    "exit_source": "exit.py",
    "config": "config.json",
}


def allowed_imports() -> dict[str, list[str]]:
    """The sandbox's import allow-list, shown next to every upload form."""
    return dict(sorted(ALLOWED_IMPORTS.items()))


def _decode(raw: Any) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    return raw or ""


def _error_views(issues: list[Any], sources: dict[str, str]) -> list[dict[str, Any]]:
    """For every file with line-numbered issues: its lines, with the offending ones marked."""
    views = []
    for attr, text in sources.items():
        file_issues = [i for i in issues if i.attr == attr and i.line]
        if not file_issues:
            continue
        bad = {i.line: i for i in file_issues}
        lines = text.splitlines() or [""]
        views.append(
            {
                "attr": attr,
                "file": FILE_LABELS.get(attr, attr),
                "lines": [
                    {"number": n, "text": t, "issue": bad.get(n)} for n, t in enumerate(lines, start=1)
                ],
            }
        )
    return views


# The text area (code editor) that holds each logical file of an upload.
EDITOR_FIELDS = {
    "source": "source",
    "entry_source": "entry_source",
    "exit_source": "exit_source",
    "config": "config_source",
}


def _editor_issues(issues: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Each problem with a position, by the editor that shows it at its line."""
    by_field: dict[str, list[dict[str, Any]]] = {}
    for issue in issues:
        field = EDITOR_FIELDS.get(issue.attr)
        if field is not None and issue.line:
            by_field.setdefault(field, []).append(
                {"line": issue.line, "col": issue.col, "message": issue.message, "code": issue.code}
            )
    return by_field


def _handle_upload(request: HttpRequest, form: StrategyUploadForm) -> tuple[Any, dict[str, Any]]:
    """Call the store; return (version or None, extra template context describing the failure)."""
    kwargs = form.upload_kwargs()
    data = form.cleaned_data
    try:
        if form.definition is None:
            version = strategy_create(
                tenant=request.tenant,  # type: ignore[attr-defined]
                author=request.user,
                key=data["key"],
                name=data["name"],
                description=data.get("description", ""),
                style=form.style,
                thesis=data.get("thesis"),
                notes=data.get("notes", ""),
                **kwargs,
            )
        else:
            version = version_create(
                definition=form.definition,
                author=request.user,
                thesis=data.get("thesis") or None,
                notes=data.get("notes", ""),
                **kwargs,
            )
        return version, {}
    except UploadInvalid as exc:
        field_map = {**ISSUE_FIELDS, "source": form.source_field()}
        for issue in exc.issues:
            target = field_map.get(issue.attr)
            message = f"{issue.detail} [{issue.code}]"
            form.add_error(target if target in form.fields else None, message)
        sources = (
            {"source": _decode(kwargs.get("source"))}
            if form.style == "tick"
            else {
                "entry_source": _decode(kwargs.get("source")),
                "exit_source": _decode(kwargs.get("exit_source")),
                "config": _decode(kwargs.get("config")),
            }
        )
        # Give every submitted file back in its editor, so the fix is one edit away.
        form.data = form.data.copy()
        if form.style == "tick":
            form.data["source"] = sources["source"]
        else:
            form.data["entry_source"] = sources["entry_source"]
            form.data["exit_source"] = sources["exit_source"]
            form.data["config_source"] = sources["config"]
        return None, {
            "issues": exc.issues,
            "error_views": _error_views(exc.issues, sources),
            "upload_issues": _editor_issues(exc.issues),
        }
    except DuplicateVersion as exc:
        return None, {"duplicate": exc.existing, "duplicate_message": exc.message}
    except ApplicationError as exc:  # KEY_TAKEN names `key`; anything else is form-wide, with its code
        if exc.field:
            form_add_error(form, exc)
        else:
            form.add_error(None, f"{exc.message} [{exc.code}]")
    return None, {}


@tenant_view
def strategy_list(request: HttpRequest) -> HttpResponse:
    strategies = list(strategy_list_query(tenant=request.tenant))  # type: ignore[attr-defined]
    return render(
        request,
        "frontend/strategies/list.html",
        {
            "own": [s for s in strategies if s.tenant_id is not None],
            "catalog": [s for s in strategies if s.tenant_id is None],
        },
    )


@tenant_view(write=True)
def strategy_upload(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {}
    if request.method == "POST":
        form = StrategyUploadForm(request.POST, request.FILES)
        if form_throttled(request, UploadThrottle, form):
            return render(
                request,
                "frontend/strategies/upload.html",
                {"form": form, "definition": None, "allowed_imports": allowed_imports()},
                status=429,
            )
        if form.is_valid():
            version, context = _handle_upload(request, form)
            if version is not None:
                messages.success(request, f"Uploaded {version.definition.key} v{version.number}.")
                return redirect("frontend:strategy_detail", strategy_id=version.definition_id)
        else:
            form.keep_chosen_files()
    else:
        form = StrategyUploadForm()
    return render(
        request,
        "frontend/strategies/upload.html",
        {"form": form, "definition": None, "allowed_imports": allowed_imports(), **context},
        status=400 if request.method == "POST" else 200,
    )


def _definition_or_404(request: HttpRequest, strategy_id: Any) -> Any:
    definition = strategy_get(tenant=request.tenant, strategy_id=strategy_id)  # type: ignore[attr-defined]
    if definition is None:
        raise Http404("No such strategy.")
    return definition


@tenant_view(write=True)
def strategy_version_upload(request: HttpRequest, strategy_id: str) -> HttpResponse:
    definition = _definition_or_404(request, strategy_id)
    if definition.tenant_id is None:
        messages.error(request, f"'{definition.key}' is a built-in catalog strategy and cannot be changed.")
        return redirect("frontend:strategy_detail", strategy_id=definition.id)
    context: dict[str, Any] = {}
    if request.method == "POST":
        form = StrategyUploadForm(request.POST, request.FILES, new_version_of=definition)
        if form_throttled(request, UploadThrottle, form):
            return render(
                request,
                "frontend/strategies/upload.html",
                {"form": form, "definition": definition, "allowed_imports": allowed_imports()},
                status=429,
            )
        if form.is_valid():
            version, context = _handle_upload(request, form)
            if version is not None:
                messages.success(request, f"Uploaded {definition.key} v{version.number}.")
                return redirect("frontend:strategy_detail", strategy_id=definition.id)
        else:
            form.keep_chosen_files()
    else:
        form = StrategyUploadForm(new_version_of=definition)
    return render(
        request,
        "frontend/strategies/upload.html",
        {"form": form, "definition": definition, "allowed_imports": allowed_imports(), **context},
        status=400 if request.method == "POST" else 200,
    )


@tenant_view
def strategy_detail(request: HttpRequest, strategy_id: str) -> HttpResponse:
    definition = _definition_or_404(request, strategy_id)
    return render(
        request,
        "frontend/strategies/detail.html",
        {"definition": definition, "versions": list(version_list(definition=definition))},
    )


@tenant_view
def strategy_version(request: HttpRequest, strategy_id: str, number: int) -> HttpResponse:
    definition = _definition_or_404(request, strategy_id)
    version = version_get(definition=definition, number=number)
    if version is None:
        raise Http404("No such version.")
    # The diff is cached per pair of versions; the API's per-user diff limit applies here too.
    throttled = form_throttled(request, DiffThrottle)
    files = [("strategy.py" if definition.style == "tick" else "entry.py", version.source)]
    if version.exit_source:
        files.append(("exit.py", version.exit_source))
    return render(
        request,
        "frontend/strategies/version.html",
        {
            "definition": definition,
            "version": version,
            "files": [{"name": n, "lines": (t or "").splitlines()} for n, t in files],
            "schema": version.config_schema_ordered,
            "diff": None if throttled else version_diff(version=version),
            "diff_throttled": throttled,
        },
    )
