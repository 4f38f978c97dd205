"""REST API v1 for strategy instances: parse, scope to the caller's tenant, call one service, shape.

Another tenant's instance is a 404 (the selectors never find it); viewers get 403 on writes
(`IsTenantMember`); state conflicts are 409 with an UPPER_SNAKE code.
"""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.instances.models import IDENTITY_FIELDS, StrategyInstance
from stratbox.instances.selectors import InstanceFilter, instance_get, instance_list
from stratbox.instances.serializers import (
    READ_ONLY_REASONS,
    ActivateInput,
    ConflictErrorResponse,
    InstanceCreateInput,
    InstanceOutput,
    InstanceUpdateInput,
    ModeInput,
    PowerInput,
    UpgradeInput,
    UpgradeOutput,
)
from stratbox.instances.services import (
    instance_activate,
    instance_create,
    instance_delete,
    instance_power,
    instance_set_mode,
    instance_update_config,
    instance_upgrade,
)
from tenants.scopes import TokenScope
from tenants.scoping import TenantScopedApi, TenantScopedMixin

TAG = ["instances"]
INSTANCE_ID = OpenApiParameter("instance_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
CONFLICT = OpenApiResponse(ConflictErrorResponse, description="The instance's mode forbids this.")


def _document_errors(*specs: tuple[list[str], list[str], list[str]]) -> Any:
    """Add the error codes/attrs raised by services (not visible to the serializer) to OpenAPI."""

    def decorate(view: Any) -> Any:
        for codes, fields, methods in specs:
            for field in fields:
                view = extend_validation_errors(codes, field_name=field, methods=methods)(view)
        return view

    return decorate


SERVICE_CHECKED = ["name", "strategy", "version", "account", "market", "config", "mode"]
ALLOCATION = [
    "total_capital",
    "capital_per_trade",
    "max_positions",
    "max_position_size",
    "max_daily_loss",
    "sizing_method",
    "frequency_seconds",
    "trigger",
]


class _SchemaOnlyFilterBackend(DjangoFilterBackend):
    """Documents `InstanceFilter` in OpenAPI; the filtering itself happens in `instance_list`."""

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        return queryset


def _instance_or_404(request: Request, instance_id: str) -> StrategyInstance:
    instance = instance_get(tenant=request.tenant, instance_id=instance_id)  # type: ignore[attr-defined]
    if instance is None:
        raise NotFound("Instance not found.")
    return instance


def _output(instance: StrategyInstance, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(InstanceOutput(instance).data, status=status_code)


@extend_schema_view(
    get=extend_schema(tags=TAG, summary="List the tenant's instances"),
    post=extend_schema(
        tags=TAG,
        summary="Create an instance",
        request=InstanceCreateInput,
        responses={201: InstanceOutput},
    ),
)
@_document_errors(
    (["invalid"], [*SERVICE_CHECKED, *ALLOCATION], ["post"]),
    (["read_only"], ["id"], ["post"]),
)
class InstanceListCreateApi(TenantScopedMixin, generics.ListAPIView):
    write_scope = TokenScope.INSTANCES_WRITE
    serializer_class = InstanceOutput
    filter_backends = [_SchemaOnlyFilterBackend]
    filterset_class = InstanceFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return StrategyInstance.objects.none()
        return instance_list(tenant=self.request.tenant, filters=self.request.query_params)  # type: ignore[attr-defined]

    def post(self, request: Request) -> Response:
        data = InstanceCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        instance = instance_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,
            strategy_key=values.pop("strategy"),
            version_number=values.pop("version", None),
            account_id=values.pop("account"),
            market_id=values.pop("market"),
            **values,
        )
        return _output(instance, status_code=status.HTTP_201_CREATED)


@_document_errors(
    (["invalid"], ["name", "config", *ALLOCATION], ["patch", "put"]),
    (["immutable"], list(IDENTITY_FIELDS), ["patch", "put"]),
    (["read_only"], list(READ_ONLY_REASONS), ["patch", "put"]),
)
class InstanceDetailApi(TenantScopedApi):
    write_scope = TokenScope.INSTANCES_WRITE

    @extend_schema(tags=TAG, summary="Get an instance", parameters=[INSTANCE_ID], responses=InstanceOutput)
    def get(self, request: Request, instance_id: str) -> Response:
        return _output(_instance_or_404(request, instance_id))

    @extend_schema(
        tags=TAG,
        summary="Change config, capital allocation, frequency or name",
        description="Identity (id, strategy, version, account, market) and mode are refused with a 400 "
        "naming the field. A change to a config field not marked live bumps config_revision (reload).",
        parameters=[INSTANCE_ID],
        request=InstanceUpdateInput,
        responses=InstanceOutput,
    )
    def patch(self, request: Request, instance_id: str) -> Response:
        return self._update(request, instance_id, partial=True)

    @extend_schema(
        tags=TAG,
        summary="Replace config, capital allocation, frequency and name",
        parameters=[INSTANCE_ID],
        request=InstanceUpdateInput,
        responses=InstanceOutput,
    )
    def put(self, request: Request, instance_id: str) -> Response:
        return self._update(request, instance_id, partial=False)

    def _update(self, request: Request, instance_id: str, *, partial: bool) -> Response:
        instance = _instance_or_404(request, instance_id)
        data = InstanceUpdateInput(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        updated = instance_update_config(
            instance=instance, actor=request.user, replace_config=not partial, **data.validated_data
        )
        return _output(updated)

    @extend_schema(
        tags=TAG,
        summary="Delete an instance (only while off)",
        parameters=[INSTANCE_ID],
        responses={204: None, 409: CONFLICT},
    )
    def delete(self, request: Request, instance_id: str) -> Response:
        instance_delete(instance=_instance_or_404(request, instance_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InstanceModeApi(TenantScopedApi):
    write_scope = TokenScope.INSTANCES_CONTROL

    @extend_schema(
        tags=TAG,
        summary="Set the mode (off | observe | active)",
        description="off <-> observe powers the instance; observe <-> active activates it. "
        "off -> active is refused (409 ACTIVATION_WHILE_OFF); active -> off is an emergency stop.",
        parameters=[INSTANCE_ID],
        request=ModeInput,
        responses={200: InstanceOutput, 409: CONFLICT},
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = _instance_or_404(request, instance_id)
        data = ModeInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _output(
            instance_set_mode(instance=instance, actor=request.user, mode=data.validated_data["mode"])
        )


class InstancePowerApi(TenantScopedApi):
    write_scope = TokenScope.INSTANCES_CONTROL

    @extend_schema(
        tags=TAG,
        summary="Power toggle: on (off -> observe) or off (any mode -> off)",
        parameters=[INSTANCE_ID],
        request=PowerInput,
        responses=InstanceOutput,
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = _instance_or_404(request, instance_id)
        data = PowerInput(data=request.data)
        data.is_valid(raise_exception=True)
        return _output(instance_power(instance=instance, actor=request.user, on=data.validated_data["on"]))


class InstanceActivateApi(TenantScopedApi):
    write_scope = TokenScope.INSTANCES_CONTROL

    @extend_schema(
        tags=TAG,
        summary="Activation toggle: observe <-> active (refused while off)",
        parameters=[INSTANCE_ID],
        request=ActivateInput,
        responses={200: InstanceOutput, 409: CONFLICT},
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = _instance_or_404(request, instance_id)
        data = ActivateInput(data=request.data)
        data.is_valid(raise_exception=True)
        updated = instance_activate(
            instance=instance, actor=request.user, active=data.validated_data["active"]
        )
        return _output(updated)


@_document_errors((["invalid"], ["version", "config"], ["post"]))
class InstanceUpgradeApi(TenantScopedApi):
    write_scope = TokenScope.INSTANCES_WRITE

    @extend_schema(
        tags=TAG,
        summary="Upgrade (or roll back) the instance to another version of its strategy",
        description="The config is carried over and validated against the new version's schema "
        "(kept, added with defaults, removed — reported); an invalid value is a 400 naming "
        "`config.<field>`. The instance reloads: state reset unless `keep_state`. A live instance "
        "stops trading (active -> observe) until staff approve the new version. Audited.",
        parameters=[INSTANCE_ID],
        request=UpgradeInput,
        responses={200: UpgradeOutput, 409: CONFLICT},
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = _instance_or_404(request, instance_id)
        data = UpgradeInput(data=request.data)
        data.is_valid(raise_exception=True)
        upgraded, report = instance_upgrade(
            instance=instance,
            actor=request.user,
            version_number=data.validated_data["version"],
            keep_state=data.validated_data["keep_state"],
            config=data.validated_data.get("config"),
        )
        return Response({"instance": InstanceOutput(upgraded).data, "report": report.as_json()})
