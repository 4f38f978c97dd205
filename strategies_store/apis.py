"""REST API of the strategy store: thin views that parse, scope through selectors and call services.

Uploads accept two shapes, both for `POST /strategies/` and `POST /strategies/{id}/versions/`:

* multipart — tick style: `file` (.py); bundle: `entry` (.py), `exit` (.py), `config` (.json);
* JSON — tick style: `source` (str); bundle: `entry_source`, `exit_source`, `config` (object).

Errors use the project's one body (drf-standardized-errors). Upload validation errors add
`line` and `col` to each item (null when not about a code position) and name the field the
client actually sent (`file` for multipart, `source` for JSON, ...), so a UI can highlight it.

An identical re-upload of the latest version answers **200** with that version and
`"duplicate": true` (a new version answers 201 with `"duplicate": false`): retrying an upload is
safe and needs no special-casing, and the status code still tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import exceptions, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from sandbox.policy import ALLOWED_IMPORTS  # the sandbox's own, documented allow-list
from strategies_store import selectors, services
from strategies_store.diffs import unified_diff
from strategies_store.models import StrategyDefinition, StrategyStyle
from strategies_store.serializers import (
    AllowedImportsOutput,
    StrategyMetaInput,
    StrategyOutput,
    StrategyUpdateInput,
    UploadDocInput,
    UploadErrorResponse,
    VersionDiffOutput,
    VersionMetaInput,
    VersionOutput,
    VersionSummaryOutput,
    VersionUploadOutput,
    version_files,
)
from strategies_store.validation import (
    CONFIG,
    ENTRY,
    EXIT,
    SOURCE,
    UploadInvalid,
    UploadIssue,
    max_source_bytes,
    too_large_issue,
)
from tenants.pagination import BoundedLimitOffsetPagination
from tenants.scopes import TokenScope
from tenants.scoping import TenantScopedMixin
from tenants.throttling import DiffThrottle, UploadThrottle

# --- errors ----------------------------------------------------------------------------------------


def upload_error_response(exc: UploadInvalid, fields: dict[str, str]) -> Response:
    """The standard validation error body, plus `line`/`col` per item for code positions."""
    fields = exc.fields or fields
    return Response(
        {
            "type": "validation_error",
            "errors": [
                {
                    "code": issue.code,
                    "detail": issue.detail,
                    "attr": fields.get(issue.attr, issue.attr),
                    "line": issue.line,
                    "col": issue.col,
                }
                for issue in exc.issues
            ],
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


# --- upload parsing -------------------------------------------------------------------------------


@dataclass
class UploadPayload:
    style: str
    source: str | bytes | None = None
    exit_source: str | bytes | None = None
    config: str | bytes | dict[str, Any] | None = None
    # logical input name -> the field the client sent (for error attrs)
    fields: dict[str, str] = field(default_factory=dict)


# (logical name, multipart file field, JSON/text field, required extension)
_INPUTS = (
    (SOURCE, "file", "source", ".py"),
    (ENTRY, "entry", "entry_source", ".py"),
    (EXIT, "exit", "exit_source", ".py"),
    (CONFIG, "config", "config", ".json"),
)
DEFAULT_FIELDS = {SOURCE: "source", ENTRY: "entry_source", EXIT: "exit_source", CONFIG: "config"}


def _read_file(logical: str, field_name: str, upload: UploadedFile, ext: str) -> bytes:
    name = upload.name or ""
    if not name.lower().endswith(ext):
        raise UploadInvalid(
            [UploadIssue(logical, "BAD_FILE_TYPE", f"'{field_name}' must be a {ext} file (got '{name}').")]
        )
    # Checked before reading, so an oversized upload is refused without loading it.
    if upload.size is not None and upload.size > max_source_bytes():
        raise UploadInvalid([too_large_issue(logical, upload.size)])
    upload.seek(0)
    return upload.read(max_source_bytes() + 1)


def parse_upload(request: Request, *, style: str | None) -> UploadPayload:
    """Collect the code inputs from a multipart or JSON request; `style` None = infer from the fields."""
    fields = dict(DEFAULT_FIELDS)
    try:
        return _parse_upload(request, style=style, fields=fields)
    except UploadInvalid as exc:
        exc.fields = fields
        raise


def _parse_upload(request: Request, *, style: str | None, fields: dict[str, str]) -> UploadPayload:
    found: dict[str, Any] = {}
    issues: list[UploadIssue] = []
    for logical, file_field, text_field, ext in _INPUTS:
        upload = request.FILES.get(file_field) if hasattr(request, "FILES") else None
        has_text = text_field in request.data and not isinstance(request.data.get(text_field), UploadedFile)
        if upload is not None and has_text and file_field != text_field:
            issues.append(
                UploadIssue(logical, "AMBIGUOUS", f"Send either '{file_field}' or '{text_field}', not both.")
            )
            continue
        if upload is not None:
            fields[logical] = file_field
            try:
                found[logical] = _read_file(logical, file_field, upload, ext)
            except UploadInvalid as exc:
                issues.extend(exc.issues)
        elif has_text:
            fields[logical] = text_field
            value = request.data.get(text_field)
            if logical == CONFIG and isinstance(value, dict):
                found[logical] = value
            elif isinstance(value, str):
                found[logical] = value
            else:
                kind = "a JSON object or a string" if logical == CONFIG else "a string"
                issues.append(UploadIssue(logical, "INVALID", f"'{text_field}' must be {kind}."))
    if issues:
        raise UploadInvalid(issues)

    bundle_given = [name for name in (ENTRY, EXIT, CONFIG) if name in found]
    if style is None:
        style = StrategyStyle.SIGNAL_BUNDLE if bundle_given else StrategyStyle.TICK
    if style == StrategyStyle.TICK:
        if bundle_given:
            raise UploadInvalid(
                [
                    UploadIssue(
                        name,
                        "UNEXPECTED",
                        f"'{fields[name]}' belongs to a signal bundle; a tick-style strategy is one .py "
                        f"file ('file' in multipart, 'source' in JSON).",
                    )
                    for name in bundle_given
                ]
            )
        if SOURCE not in found:
            raise UploadInvalid(
                [
                    UploadIssue(
                        SOURCE,
                        "REQUIRED",
                        "Upload the strategy: a .py file as 'file' (multipart) or its text as 'source' "
                        "(JSON); for a signal bundle send entry/exit/config and a thesis.",
                    )
                ]
            )
        return UploadPayload(style=style, source=found[SOURCE], fields=fields)
    if SOURCE in found:
        raise UploadInvalid(
            [
                UploadIssue(
                    SOURCE,
                    "UNEXPECTED",
                    f"'{fields[SOURCE]}' is for tick-style strategies; a signal bundle is "
                    "entry.py + exit.py + config.json.",
                )
            ]
        )
    return UploadPayload(
        style=style,
        source=found.get(ENTRY),
        exit_source=found.get(EXIT),
        config=found.get(CONFIG),
        fields=fields,
    )


def _bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise exceptions.ValidationError({name: [f"'{raw}' is not a boolean (use true or false)."]})


# --- views ----------------------------------------------------------------------------------------


class StoreApi(TenantScopedMixin, GenericAPIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    pagination_class = BoundedLimitOffsetPagination
    # Filtering is done by the selectors (builtin, style), documented per view; no generic backends.
    filter_backends: list[Any] = []

    def get_definition(self, strategy_id: Any) -> StrategyDefinition:
        definition = selectors.strategy_get(tenant=self.request.tenant, strategy_id=strategy_id)  # type: ignore[attr-defined]
        if definition is None:
            raise exceptions.NotFound("Strategy not found.")
        return definition

    def get_writable_definition(self, strategy_id: Any) -> StrategyDefinition:
        definition = self.get_definition(strategy_id)
        if definition.is_builtin:
            raise services.CatalogReadOnly(definition)
        return definition

    def paginated(self, queryset: Any, serializer_class: type, **context: Any) -> Response:
        page = self.paginate_queryset(queryset)
        data = serializer_class(page, many=True, context={"request": self.request, **context}).data
        return self.get_paginated_response(data)


STRATEGY_ID = OpenApiParameter("strategy_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
VERSION_NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH)

STRATEGY_LIST_PARAMS = [
    OpenApiParameter("builtin", OpenApiTypes.BOOL, description="true: catalog only; false: your own only"),
    OpenApiParameter("style", OpenApiTypes.STR, enum=StrategyStyle.values),
]


# Query parameters validated by hand (not through a filterset), so their 400s are declared here.
@extend_validation_errors(["invalid"], field_name="builtin", methods=["get"])
@extend_validation_errors(["invalid"], field_name="style", methods=["get"])
class StrategyListCreateApi(StoreApi):
    write_scope = TokenScope.STRATEGIES_WRITE
    serializer_class = StrategyOutput
    throttle_classes = [UploadThrottle]  # each upload compiles in a sandbox host process

    @extend_schema(parameters=STRATEGY_LIST_PARAMS, responses=StrategyOutput(many=True))
    def get(self, request: Request) -> Response:
        style = request.query_params.get("style") or None
        if style is not None and style not in StrategyStyle.values:
            raise exceptions.ValidationError(
                {"style": [f"'{style}' is not a style; use {' or '.join(StrategyStyle.values)}."]}
            )
        qs = selectors.strategy_list(
            tenant=request.tenant, builtin=_bool_param(request, "builtin"), style=style
        )  # type: ignore[attr-defined]
        return self.paginated(qs.prefetch_related("versions"), StrategyOutput)

    @extend_schema(
        request={"multipart/form-data": UploadDocInput, "application/json": UploadDocInput},
        responses={201: StrategyOutput, 400: UploadErrorResponse},
    )
    def post(self, request: Request) -> Response:
        meta = StrategyMetaInput(data=request.data)
        meta.is_valid(raise_exception=True)
        data = meta.validated_data
        fields = dict(DEFAULT_FIELDS)
        try:
            payload = parse_upload(request, style=data.get("style"))
            fields = payload.fields
            version = services.strategy_create(
                tenant=request.tenant,  # type: ignore[attr-defined]
                author=request.user,
                key=data["key"],
                name=data["name"],
                description=data["description"],
                style=payload.style,
                thesis=data["thesis"],
                source=payload.source,
                exit_source=payload.exit_source,
                config=payload.config,
                notes=data["notes"],
            )
        except UploadInvalid as exc:
            return upload_error_response(exc, fields)
        return Response(StrategyOutput(version.definition).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[STRATEGY_ID])
class StrategyDetailApi(StoreApi):
    write_scope = TokenScope.STRATEGIES_WRITE
    serializer_class = StrategyOutput

    @extend_schema(responses=StrategyOutput)
    def get(self, request: Request, strategy_id: str) -> Response:
        return Response(StrategyOutput(self.get_definition(strategy_id)).data)

    @extend_schema(request=StrategyUpdateInput, responses=StrategyOutput)
    def patch(self, request: Request, strategy_id: str) -> Response:
        definition = self.get_writable_definition(strategy_id)
        data = StrategyUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            definition = services.strategy_update(
                definition=definition, actor=request.user, **data.validated_data
            )
        except UploadInvalid as exc:
            return upload_error_response(exc, {})
        return Response(StrategyOutput(definition).data)

    @extend_schema(request=None, responses={204: None, 409: OpenApiResponse(description="STRATEGY_IN_USE")})
    def delete(self, request: Request, strategy_id: str) -> Response:
        definition = self.get_writable_definition(strategy_id)
        services.strategy_delete(definition=definition, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[STRATEGY_ID])
class VersionListCreateApi(StoreApi):
    write_scope = TokenScope.STRATEGIES_WRITE
    serializer_class = VersionSummaryOutput
    throttle_classes = [UploadThrottle]

    @extend_schema(responses=VersionSummaryOutput(many=True))
    def get(self, request: Request, strategy_id: str) -> Response:
        definition = self.get_definition(strategy_id)
        return self.paginated(selectors.version_list(definition=definition), VersionSummaryOutput)

    @extend_schema(
        request={"multipart/form-data": UploadDocInput, "application/json": UploadDocInput},
        responses={
            201: VersionUploadOutput,
            200: OpenApiResponse(VersionUploadOutput, description="identical to the latest: duplicate=true"),
            400: UploadErrorResponse,
        },
    )
    def post(self, request: Request, strategy_id: str) -> Response:
        definition = self.get_writable_definition(strategy_id)
        meta = VersionMetaInput(data=request.data)
        meta.is_valid(raise_exception=True)
        fields = dict(DEFAULT_FIELDS)
        try:
            payload = parse_upload(request, style=definition.style)
            fields = payload.fields
            version = services.version_create(
                definition=definition,
                author=request.user,
                source=payload.source,
                exit_source=payload.exit_source,
                config=payload.config,
                thesis=meta.validated_data["thesis"],
                notes=meta.validated_data["notes"],
            )
        except UploadInvalid as exc:
            return upload_error_response(exc, fields)
        except services.DuplicateVersion as exc:
            body = VersionUploadOutput(exc.existing, context={"duplicate": True}).data
            return Response({**body, "detail": exc.message}, status=status.HTTP_200_OK)
        return Response(
            VersionUploadOutput(version, context={"duplicate": False}).data, status=status.HTTP_201_CREATED
        )


@extend_schema(parameters=[STRATEGY_ID, VERSION_NUMBER])
class VersionDetailApi(StoreApi):
    serializer_class = VersionOutput

    @extend_schema(responses=VersionOutput)
    def get(self, request: Request, strategy_id: str, number: int) -> Response:
        definition = self.get_definition(strategy_id)
        version = selectors.version_get(definition=definition, number=number)
        if version is None:
            raise exceptions.NotFound("Version not found.")
        return Response(VersionOutput(version).data)


@extend_schema(parameters=[STRATEGY_ID, VERSION_NUMBER])
@extend_validation_errors(["invalid"], field_name="against", methods=["get"])
class VersionDiffApi(StoreApi):
    serializer_class = VersionDiffOutput
    throttle_classes = [DiffThrottle]  # results are cached; distinct pairs still cost CPU

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "against",
                OpenApiTypes.INT,
                description="compare with this version instead of the previous one",
            )
        ],
        responses=VersionDiffOutput,
    )
    def get(self, request: Request, strategy_id: str, number: int) -> Response:
        definition = self.get_definition(strategy_id)
        version = selectors.version_get(definition=definition, number=number)
        if version is None:
            raise exceptions.NotFound("Version not found.")
        against = request.query_params.get("against")
        if against:
            base = selectors.version_get(definition=definition, number=against)
            if base is None:
                raise exceptions.ValidationError({"against": [f"Version {against} does not exist."]})
        else:
            base = selectors.version_previous(version)
        old_files = version_files(base) if base else {}
        new_files = version_files(version)
        files = []
        for name in new_files:
            old = old_files.get(name, "")
            old_label = f"v{base.number}/{name}" if base else "/dev/null"
            diff = unified_diff(old, new_files[name], fromfile=old_label, tofile=f"v{version.number}/{name}")
            files.append({"file": name, "diff": diff, "changed": old != new_files[name]})
        return Response(
            VersionDiffOutput(
                {
                    "strategy": definition.id,
                    "from_number": base.number if base else None,
                    "to_number": version.number,
                    "files": files,
                }
            ).data
        )


RANDOM_NOTE = "seeded per instance: reproducible, and independent of every other instance"


class AllowedImportsApi(TenantScopedMixin, GenericAPIView):
    """The sandbox's import allow-list, as shown to strategy authors."""

    serializer_class = AllowedImportsOutput
    pagination_class = None

    @extend_schema(responses=AllowedImportsOutput)
    def get(self, request: Request) -> Response:
        modules = [
            {
                "module": module,
                "names": list(names),
                "note": RANDOM_NOTE if module == "random" else "",
            }
            for module, names in sorted(ALLOWED_IMPORTS.items())
        ]
        return Response(
            AllowedImportsOutput(
                {"modules": modules, "max_source_bytes": settings.STRATBOX_MAX_SOURCE_BYTES}
            ).data
        )
