"""The URL resolver walked into concrete routes, and request bodies shaped from the OpenAPI schema.

The matrix is generated from these, so an endpoint added later is attacked without anyone
editing the tests: a new path parameter name with no value in `tests/security` fails the
coverage test until someone says which of A's objects it takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import IsAdminUser

PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SAFE = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Route:
    route: str  # Django's route string, e.g. "api/v1/instances/<str:instance_id>/"
    callback: Any

    @property
    def params(self) -> list[tuple[str, str]]:
        """(name, converter) of each path parameter, in order."""
        return [(m["name"], m["converter"] or "str") for m in PARAM.finditer(self.route)]

    @property
    def template(self) -> str:
        """The OpenAPI path: /api/v1/instances/{instance_id}/."""
        return "/" + PARAM.sub(lambda m: "{" + m["name"] + "}", self.route)

    def url(self, values: dict[str, Any]) -> str:
        return "/" + PARAM.sub(lambda m: str(values[m["name"]]), self.route)

    @property
    def view_class(self) -> Any:
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)

    @property
    def handled(self) -> set[str] | None:
        """The methods the view implements (None for a plain function view: unknown)."""
        cls = self.view_class
        if cls is None:
            return None
        return {m for m in METHODS if hasattr(cls, m.lower())}

    @property
    def staff_only(self) -> bool:
        cls = self.view_class
        classes = getattr(cls, "permission_classes", []) or []
        return any(isinstance(p, type) and issubclass(p, IsAdminUser) for p in classes)

    def __str__(self) -> str:
        return self.template


def _walk(patterns: list[Any], prefix: str) -> list[Route]:
    found: list[Route] = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append(Route(prefix + str(pattern.pattern), pattern.callback))
    return found


def routes(prefix: str) -> list[Route]:
    """Every route of the project's URLconf under `prefix` (e.g. "api/v1/"), resolver order."""
    return [r for r in _walk(get_resolver().url_patterns, "") if r.route.startswith(prefix)]


# --- request bodies from the schema --------------------------------------------------------------


@cache
def project_schema() -> dict[str, Any]:
    """The whole project's OpenAPI document, as /api/schema/ serves it."""
    from tests.api.openapi import generate

    schema, _, _ = generate(None)
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    for combinator in ("allOf", "oneOf", "anyOf"):
        if combinator in node and node[combinator]:
            return _resolve(schema, node[combinator][0])
    return node


def example(schema: dict[str, Any], node: dict[str, Any], name: str, values: dict[str, Any]) -> Any:
    """A plausible value for a schema node; `values` overrides by field name (ids, modes, ...)."""
    if name in values:
        return values[name]
    node = _resolve(schema, node)
    if "enum" in node and node["enum"]:
        return next((v for v in node["enum"] if v not in ("", None)), node["enum"][0])
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return {
            key: example(schema, sub, key, values)
            for key, sub in node.get("properties", {}).items()
            if not sub.get("readOnly")
        }
    if kind == "array":
        return []
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return node.get("minimum", 1)
    fmt = node.get("format")
    if fmt == "uuid":
        return "00000000-0000-4000-8000-000000000000"
    if fmt == "date-time":
        return "2026-03-01T00:00:00Z"
    if fmt == "decimal" or node.get("pattern", "").startswith("^-?\\d"):
        return "10.00"
    return "matrix"


def request_body(route: Route, method: str, values: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON body the schema documents for this operation, filled with plausible values."""
    schema = project_schema()
    operation = schema["paths"].get(route.template, {}).get(method.lower())
    if operation is None:
        return {}
    content = operation.get("requestBody", {}).get("content", {})
    media = content.get("application/json") or next(iter(content.values()), None)
    if media is None:
        return {}
    body = example(schema, media["schema"], "", values)
    return body if isinstance(body, dict) else {}


def query_parameters(route: Route) -> list[str]:
    operation = project_schema()["paths"].get(route.template, {}).get("get", {})
    return [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
