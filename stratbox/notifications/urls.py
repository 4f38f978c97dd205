"""API v1 routes of the notifications app (mounted under /api/v1/)."""

from django.urls import path

from stratbox.notifications.apis import (
    ChannelDetailApi,
    ChannelListApi,
    ChannelTestApi,
    DeliveryListApi,
    InboxApi,
    InboxReadApi,
    SettingsApi,
    SubscriptionListApi,
)

urlpatterns = [
    path("notifications/channels/", ChannelListApi.as_view(), name="notification-channels"),
    path("notifications/channels/<str:channel_id>/", ChannelDetailApi.as_view(), name="notification-channel"),
    path(
        "notifications/channels/<str:channel_id>/test/",
        ChannelTestApi.as_view(),
        name="notification-channel-test",
    ),
    path("notifications/subscriptions/", SubscriptionListApi.as_view(), name="notification-subscriptions"),
    path("notifications/deliveries/", DeliveryListApi.as_view(), name="notification-deliveries"),
    path("notifications/inbox/", InboxApi.as_view(), name="notification-inbox"),
    path("notifications/inbox/read/", InboxReadApi.as_view(), name="notification-inbox-read"),
    path("notifications/settings/", SettingsApi.as_view(), name="notification-settings"),
]
