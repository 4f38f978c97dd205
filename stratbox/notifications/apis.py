"""REST API v1 for notifications: channels, Test send, subscriptions, delivery log, inbox, settings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.instances.selectors import instance_get
from stratbox.notifications import selectors, services
from stratbox.notifications.models import Channel, Delivery, NotificationEvent, Subscription
from stratbox.notifications.serializers import (
    ChannelCreatedOutput,
    ChannelInput,
    ChannelOutput,
    ChannelUpdateInput,
    DeliveryOutput,
    EventOutput,
    MarkReadInput,
    SettingsIO,
    SubscriptionInput,
    SubscriptionOutput,
)
from stratbox.trading.credentials import CredentialsUnavailable
from tenants.scoping import IsTenantMember, IsTenantOwnerOrReadOnly, TenantScopedApi, TenantScopedMixin

TAG = ["notifications"]
CHANNEL_ID = OpenApiParameter("channel_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def _channel_or_404(request: Request, channel_id: Any) -> Any:
    channel = selectors.channel_get(tenant=request.tenant, channel_id=channel_id)  # type: ignore[attr-defined]
    if channel is None:
        raise NotFound("Channel not found.")
    return channel


class ChannelListApi(TenantScopedMixin, generics.ListAPIView):
    queryset = Channel.objects.none()  # for the schema; get_queryset scopes to the tenant
    serializer_class = ChannelOutput

    def get_queryset(self) -> Any:
        return selectors.channel_list(tenant=self.request.tenant)  # type: ignore[attr-defined]

    @extend_schema(tags=TAG, summary="The tenant's channels (URLs redacted)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        request=ChannelInput,
        responses={201: ChannelCreatedOutput},
        summary="Add a channel (an apprise URL, stored encrypted); a webhook's signing secret is shown once",
    )
    def post(self, request: Request) -> Response:
        data = ChannelInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            channel, secret = services.channel_create(
                tenant=request.tenant,  # type: ignore[attr-defined]
                actor=request.user,
                name=data.validated_data["name"],
                url=data.validated_data["url"],
            )
        except CredentialsUnavailable as exc:
            raise ValidationError({"url": [ErrorDetail(str(exc), code="CREDENTIALS_UNAVAILABLE")]}) from exc
        channel.signing_secret = secret  # type: ignore[attr-defined]
        return Response(ChannelCreatedOutput(channel).data, status=201)


class ChannelDetailApi(TenantScopedApi):
    @extend_schema(tags=TAG, parameters=[CHANNEL_ID], responses={200: ChannelOutput}, summary="One channel")
    def get(self, request: Request, channel_id: Any) -> Response:
        return Response(ChannelOutput(_channel_or_404(request, channel_id)).data)

    @extend_schema(
        tags=TAG,
        parameters=[CHANNEL_ID],
        request=ChannelUpdateInput,
        responses={200: ChannelOutput},
        summary="Enable (after a failure streak) or disable a channel",
    )
    def patch(self, request: Request, channel_id: Any) -> Response:
        channel = _channel_or_404(request, channel_id)
        data = ChannelUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        channel = services.channel_set_enabled(
            channel=channel, actor=request.user, enabled=data.validated_data["enabled"]
        )
        return Response(ChannelOutput(channel).data)

    @extend_schema(tags=TAG, parameters=[CHANNEL_ID], responses={204: None}, summary="Delete a channel")
    def delete(self, request: Request, channel_id: Any) -> Response:
        services.channel_delete(channel=_channel_or_404(request, channel_id), actor=request.user)
        return Response(status=204)


class ChannelTestApi(TenantScopedApi):
    @extend_schema(
        tags=TAG,
        parameters=[CHANNEL_ID],
        request=None,
        responses={202: EventOutput},
        summary="Test send: one message to this channel, recorded in the delivery log",
    )
    def post(self, request: Request, channel_id: Any) -> Response:
        event = services.channel_test(channel=_channel_or_404(request, channel_id), actor=request.user)
        return Response(EventOutput(event).data, status=202)


class SubscriptionListApi(TenantScopedMixin, generics.ListAPIView):
    queryset = Subscription.objects.none()  # for the schema; get_queryset scopes to the tenant
    serializer_class = SubscriptionOutput

    def get_queryset(self) -> Any:
        tenant = self.request.tenant  # type: ignore[attr-defined]
        instance_id = self.request.query_params.get("instance")
        if instance_id is not None:
            instance = instance_get(tenant=tenant, instance_id=instance_id)
            if instance is None:
                return selectors.subscription_list(tenant=tenant).none()
            instance_id = instance.pk
        return selectors.subscription_list(tenant=tenant, instance_id=instance_id)

    @extend_schema(
        tags=TAG,
        parameters=[OpenApiParameter("instance", OpenApiTypes.UUID, required=False)],
        summary="Subscriptions: event × channel × on|silent|off, per instance or tenant default",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAG,
        request=SubscriptionInput,
        responses={200: SubscriptionOutput},
        summary="Set one subscription",
    )
    def post(self, request: Request) -> Response:
        data = SubscriptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = request.tenant  # type: ignore[attr-defined]
        channel = selectors.channel_get(tenant=tenant, channel_id=data.validated_data["channel"])
        if channel is None:
            raise ValidationError({"channel": [ErrorDetail("No such channel.", code="does_not_exist")]})
        instance = None
        if data.validated_data.get("instance"):
            instance = instance_get(tenant=tenant, instance_id=data.validated_data["instance"])
            if instance is None:
                raise ValidationError({"instance": [ErrorDetail("No such instance.", code="does_not_exist")]})
        sub = services.subscription_set(
            tenant=tenant,
            actor=request.user,
            channel=channel,
            event_type=data.validated_data["event_type"],
            level=data.validated_data["level"],
            instance=instance,
        )
        return Response(SubscriptionOutput(sub).data)


class DeliveryListApi(TenantScopedMixin, generics.ListAPIView):
    queryset = Delivery.objects.none()  # for the schema; get_queryset scopes to the tenant
    serializer_class = DeliveryOutput

    def get_queryset(self) -> Any:
        return selectors.delivery_list(
            tenant=self.request.tenant,  # type: ignore[attr-defined]
            channel_id=self.request.query_params.get("channel"),
            event_id=self.request.query_params.get("event"),
        )

    @extend_schema(
        tags=TAG,
        parameters=[
            OpenApiParameter("channel", OpenApiTypes.UUID, required=False),
            OpenApiParameter("event", OpenApiTypes.INT, required=False),
        ],
        summary="The delivery log: one row per attempt (sent / skipped with reason / failed with error)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class InboxApi(TenantScopedMixin, generics.ListAPIView):
    queryset = NotificationEvent.objects.none()  # for the schema; get_queryset scopes to the tenant
    serializer_class = EventOutput

    def get_queryset(self) -> Any:
        unread = self.request.query_params.get("unread") in ("1", "true", "yes")
        return selectors.inbox_list(tenant=self.request.tenant, unread=unread)  # type: ignore[attr-defined]

    @extend_schema(
        tags=TAG,
        parameters=[OpenApiParameter("unread", OpenApiTypes.BOOL, required=False)],
        summary="The in-app inbox (the same events pushed over ws/tenant/ as kind=notification)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class InboxReadApi(TenantScopedApi):
    permission_classes = [permissions.IsAuthenticated, IsTenantMember]

    @extend_schema(
        tags=TAG, request=MarkReadInput, responses={200: OpenApiTypes.OBJECT}, summary="Mark inbox items read"
    )
    def post(self, request: Request) -> Response:
        data = MarkReadInput(data=request.data)
        data.is_valid(raise_exception=True)
        count = services.inbox_mark_read(tenant=request.tenant, event_ids=data.validated_data.get("ids"))  # type: ignore[attr-defined]
        return Response({"marked": count})


class SettingsApi(TenantScopedApi):
    permission_classes = [permissions.IsAuthenticated, IsTenantOwnerOrReadOnly]

    @extend_schema(tags=TAG, responses={200: SettingsIO}, summary="Locale, quiet hours and channel limits")
    def get(self, request: Request) -> Response:
        return Response(SettingsIO(services.settings_for(request.tenant)).data)  # type: ignore[attr-defined]

    @extend_schema(
        tags=TAG,
        request=SettingsIO,
        responses={200: SettingsIO},
        summary="Change locale, quiet hours, limits",
    )
    def patch(self, request: Request) -> Response:
        data = SettingsIO(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        found = services.settings_update(tenant=request.tenant, actor=request.user, **data.validated_data)  # type: ignore[attr-defined]
        return Response(SettingsIO(found).data)
