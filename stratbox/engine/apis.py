"""Engine API: runtime status, pause/resume, test run, execution history, the tenant kill switch."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.engine import control, rendering
from stratbox.engine.dry_run import test_run
from stratbox.engine.models import Run
from stratbox.engine.selectors import RunFilter, run_get, run_list, runtime_status
from stratbox.engine.serializers import KillSwitchInput, RunDetailOutput, RunOutput
from stratbox.instances.selectors import instance_get
from stratbox.instances.serializers import ConflictErrorResponse
from tenants.scopes import TokenScope, TokenScopePermission
from tenants.scoping import IsTenantMember, IsTenantOwner, TenantScopedApi, TenantScopedMixin, not_found

RuntimeOutput = inline_serializer(
    name="InstanceRuntime",
    fields={
        "instance_id": serializers.UUIDField(),
        "mode": serializers.CharField(),
        "loaded": serializers.BooleanField(),
        "paused": serializers.BooleanField(),
        "pause_reason": serializers.CharField(allow_null=True),
        "kill_switch": serializers.BooleanField(),
        "last_tick_at": serializers.DateTimeField(allow_null=True),
        "last_error": serializers.DictField(allow_null=True),
        "next_due_at": serializers.DateTimeField(allow_null=True),
        "worker": serializers.CharField(allow_null=True),
        "consecutive_failures": serializers.IntegerField(),
        "coalesced_ticks": serializers.IntegerField(),
        "fingerprint": serializers.CharField(allow_null=True),
        "state_rev": serializers.IntegerField(),
        "tick_seq": serializers.IntegerField(allow_null=True),
        "frequency_seconds": serializers.IntegerField(),
        "trigger": serializers.CharField(),
        "stats": serializers.DictField(),
    },
)


class _InstanceApi(TenantScopedApi):
    def instance(self, request: Request, instance_id: Any) -> Any:
        instance = instance_get(tenant=request.tenant, instance_id=instance_id)  # type: ignore[attr-defined]
        if instance is None:
            raise not_found("No such instance.")
        return instance


class InstanceRuntimeApi(_InstanceApi):
    @extend_schema(responses=RuntimeOutput, summary="Runtime status of an instance")
    def get(self, request: Request, instance_id: str) -> Response:
        return Response(runtime_status(instance=self.instance(request, instance_id)))


class InstancePauseApi(_InstanceApi):
    write_scope = TokenScope.INSTANCES_CONTROL

    @extend_schema(
        request=None,
        responses={200: RuntimeOutput, 409: ConflictErrorResponse},
        summary="Pause a running instance (runtime only)",
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = self.instance(request, instance_id)
        control.instance_pause(instance=instance, reason=control.PauseReason.USER, actor=request.user)
        return Response(runtime_status(instance=instance))


class InstanceResumeApi(_InstanceApi):
    write_scope = TokenScope.INSTANCES_CONTROL

    @extend_schema(
        request=None,
        responses={200: RuntimeOutput, 409: ConflictErrorResponse},
        summary="Resume a paused instance",
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = self.instance(request, instance_id)
        control.instance_resume(instance=instance, actor=request.user)
        return Response(runtime_status(instance=instance))


class InstanceTestRunApi(_InstanceApi):
    write_scope = TokenScope.INSTANCES_CONTROL

    @extend_schema(
        request=None,
        responses=inline_serializer(
            name="TestRunResult",
            fields={
                "run": RunDetailOutput(),
                "state": serializers.DictField(allow_null=True),
                "quote": serializers.DictField(),
                "quote_source": serializers.CharField(),
                "mode": serializers.CharField(),
            },
        ),
        summary="Run one cycle now in a sandbox; nothing reaches a broker",
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = self.instance(request, instance_id)
        run, extra = test_run(instance, actor=request.user)
        return Response({"run": RunDetailOutput(run).data, **extra})


class InstanceRenderApi(_InstanceApi):
    @extend_schema(
        responses={
            200: inline_serializer(
                name="InstanceWidgets",
                fields={
                    "widgets": serializers.ListField(child=serializers.DictField()),
                    "rendered_at": serializers.FloatField(),
                    "cached": serializers.BooleanField(),
                },
            ),
            409: ConflictErrorResponse,
        },
        summary="Render the instance's widgets now (rate limited per instance; else the cached render)",
    )
    def get(self, request: Request, instance_id: str) -> Response:
        instance = self.instance(request, instance_id)
        return Response(rendering.render_for_api(instance))


class RunListApi(TenantScopedMixin, ListAPIView):
    serializer_class = RunOutput
    # The selector's own FilterSet, applied by the backend so that OpenAPI documents the filters
    # and their 400s; the selector scopes to the tenant.
    filter_backends = [DjangoFilterBackend]
    filterset_class = RunFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no tenant
            return Run.objects.none()
        return run_list(tenant=self.request.tenant)  # type: ignore[attr-defined]


class RunDetailApi(TenantScopedApi):
    @extend_schema(responses=RunDetailOutput)
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get(tenant=request.tenant, run_id=run_id)  # type: ignore[attr-defined]
        if run is None:
            raise not_found("No such run.")
        return Response(RunDetailOutput(run).data)


KillSwitchOutput = inline_serializer(
    name="KillSwitch",
    fields={"on": serializers.BooleanField(), "killed_at": serializers.DateTimeField(allow_null=True)},
)


class KillSwitchApi(TenantScopedApi):
    write_scope = TokenScope.INSTANCES_CONTROL

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [IsAuthenticated(), IsTenantMember(), IsTenantOwner(), TokenScopePermission()]
        return super().get_permissions()

    @extend_schema(responses=KillSwitchOutput)
    def get(self, request: Request) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        return Response({"on": tenant.killed_at is not None, "killed_at": tenant.killed_at})

    @extend_schema(request=KillSwitchInput, responses=KillSwitchOutput, summary="Tenant kill switch (owners)")
    def post(self, request: Request) -> Response:
        data = KillSwitchInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = control.tenant_kill_switch(
            tenant=request.tenant,
            on=data.validated_data["on"],
            actor=request.user,  # type: ignore[attr-defined]
        )
        return Response({"on": tenant.killed_at is not None, "killed_at": tenant.killed_at})
