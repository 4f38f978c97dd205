"""REST API v1 for plugins: the registry (read), mounts per instance, notification targets, artifacts.

A pipeline pushes `latest_signal.json` with a tenant API token (`Authorization: Bearer sbx_…`):
the request body is the artifact exactly as produced; it is stored byte for byte with its sha256.
Every refusal is a 400 whose detail is the contract's message (code PLUGIN_CONTRACT, or
PLUGIN_NOT_MOUNTED / PLUGIN_DISABLED / ARTIFACT_TOO_LARGE).
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.instances.models import StrategyInstance
from stratbox.instances.selectors import instance_get
from stratbox.plugins import selectors, services
from stratbox.plugins.models import PluginArtifact
from stratbox.plugins.serializers import (
    ArtifactDetailOutput,
    ArtifactOutput,
    DefinitionOutput,
    MountsDocument,
    PluginStatusOutput,
    TargetsDocument,
)
from tenants.scoping import IsTenantMember, TenantScopedApi, TenantScopedMixin

TAG = ["plugins"]
INSTANCE_ID = OpenApiParameter("instance_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
ARTIFACT_ID = OpenApiParameter("artifact_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def _instance_or_404(request: Request, instance_id: Any) -> StrategyInstance:
    instance = instance_get(tenant=request.tenant, instance_id=instance_id)  # type: ignore[attr-defined]
    if instance is None:
        raise NotFound("Instance not found.")
    return instance


def _raw_json(request: Request) -> bytes:
    """The body exactly as sent (read before DRF parses it, so the stored bytes are the pushed ones)."""
    return bytes(request._request.body)  # noqa: SLF001 - DRF keeps the Django request here


def _document(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(
            {"non_field_errors": [ErrorDetail(f"invalid JSON: {exc}", code="parse_error")]}
        ) from exc


class _RawBodyMixin:
    # Parsed by hand: the service needs the exact bytes; DRF's parser would consume the stream.
    parser_classes = [JSONParser]


class DefinitionListApi(TenantScopedMixin, generics.ListAPIView):
    serializer_class = DefinitionOutput
    pagination_class = None

    def get_queryset(self) -> Any:
        return selectors.definition_list()

    @extend_schema(tags=TAG, summary="The plugin registry (definitions, schema versions, deprecations)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class InstanceMountsApi(_RawBodyMixin, TenantScopedApi):
    @extend_schema(
        tags=TAG,
        parameters=[INSTANCE_ID],
        responses={200: MountsDocument},
        summary="An instance's plugin mounts",
    )
    def get(self, request: Request, instance_id: Any) -> Response:
        instance = _instance_or_404(request, instance_id)
        return Response(services.mounts_config(instance))

    @extend_schema(
        tags=TAG,
        parameters=[INSTANCE_ID],
        request=MountsDocument,
        responses={200: MountsDocument},
        summary="Replace an instance's plugin mounts (the contract's strategy_plugins config), fail-closed",
    )
    def put(self, request: Request, instance_id: Any) -> Response:
        raw = _raw_json(request)
        instance = _instance_or_404(request, instance_id)
        services.mounts_set(instance=instance, raw=_document(raw), actor=request.user)
        return Response(services.mounts_config(instance))


class InstancePluginStatusApi(TenantScopedApi):
    @extend_schema(
        tags=TAG,
        parameters=[INSTANCE_ID],
        responses={200: PluginStatusOutput(many=True)},
        summary="Each mounted plugin's latest signal as the instance consumes it (or why it does not)",
    )
    def get(self, request: Request, instance_id: Any) -> Response:
        instance = _instance_or_404(request, instance_id)
        return Response(services.instance_signals(instance=instance))


class InstanceArtifactsApi(_RawBodyMixin, TenantScopedMixin, generics.ListAPIView):
    queryset = PluginArtifact.objects.none()  # for the schema; get_queryset scopes to the tenant
    serializer_class = ArtifactOutput

    def get_queryset(self) -> Any:
        instance = _instance_or_404(self.request, self.kwargs["instance_id"])
        return selectors.artifact_list(tenant=self.request.tenant, instance=instance)  # type: ignore[attr-defined]

    @extend_schema(tags=TAG, parameters=[INSTANCE_ID], summary="An instance's artifacts, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        parameters=[INSTANCE_ID],
        request=OpenApiTypes.OBJECT,
        responses={201: ArtifactOutput},
        summary="Push a plugin artifact (latest_signal.json) for one of the instance's mounts",
    )
    def post(self, request: Request, instance_id: Any) -> Response:
        raw = _raw_json(request)
        instance = _instance_or_404(request, instance_id)
        artifact = services.artifact_push(
            tenant=request.tenant, raw=raw, actor=request.user, instance=instance
        )  # type: ignore[attr-defined]
        return Response(ArtifactOutput(artifact).data, status=201)


class TargetsApi(_RawBodyMixin, TenantScopedApi):
    @extend_schema(
        tags=TAG, responses={200: TargetsDocument}, summary="The tenant's notification-target mounts"
    )
    def get(self, request: Request) -> Response:
        return Response(services.targets_config(request.tenant))  # type: ignore[attr-defined]

    @extend_schema(
        tags=TAG,
        request=TargetsDocument,
        responses={200: TargetsDocument},
        summary="Replace the tenant's notification-target mounts (the contract's notification_targets config)",
    )
    def put(self, request: Request) -> Response:
        raw = _raw_json(request)
        services.targets_set(tenant=request.tenant, raw=_document(raw), actor=request.user)  # type: ignore[attr-defined]
        return Response(services.targets_config(request.tenant))  # type: ignore[attr-defined]


class ArtifactListApi(_RawBodyMixin, TenantScopedMixin, generics.ListAPIView):
    queryset = PluginArtifact.objects.none()  # for the schema; get_queryset scopes to the tenant
    serializer_class = ArtifactOutput

    def get_queryset(self) -> Any:
        return selectors.artifact_list(tenant=self.request.tenant)  # type: ignore[attr-defined]

    @extend_schema(tags=TAG, summary="The tenant's artifacts, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        request=OpenApiTypes.OBJECT,
        responses={201: ArtifactOutput},
        summary="Push a notification-target artifact (not tied to a strategy)",
    )
    def post(self, request: Request) -> Response:
        raw = _raw_json(request)
        artifact = services.artifact_push(tenant=request.tenant, raw=raw, actor=request.user)  # type: ignore[attr-defined]
        return Response(ArtifactOutput(artifact).data, status=201)


class ArtifactDetailApi(TenantScopedApi):
    permission_classes = [permissions.IsAuthenticated, IsTenantMember]

    @extend_schema(
        tags=TAG, parameters=[ARTIFACT_ID], responses={200: ArtifactDetailOutput}, summary="One artifact"
    )
    def get(self, request: Request, artifact_id: Any) -> Response:
        artifact = selectors.artifact_get(tenant=request.tenant, artifact_id=artifact_id)  # type: ignore[attr-defined]
        if artifact is None:
            raise NotFound("Artifact not found.")
        return Response(ArtifactDetailOutput(artifact).data)
