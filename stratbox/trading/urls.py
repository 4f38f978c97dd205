"""API v1 routes of this app (mounted under /api/v1/)."""

from django.urls import path

from stratbox.trading import apis

urlpatterns = [
    path("accounts/", apis.AccountListCreateApi.as_view(), name="account-list"),
    path("accounts/<str:account_id>/", apis.AccountDetailApi.as_view(), name="account-detail"),
    path("live-accounts/", apis.LiveAccountCreateApi.as_view(), name="live-account-create"),
    path("orders/", apis.OrderListApi.as_view(), name="order-list"),
    path("orders/<str:order_id>/", apis.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:order_id>/events/", apis.OrderEventListApi.as_view(), name="order-events"),
    path("fills/", apis.FillListApi.as_view(), name="fill-list"),
    path("positions/", apis.PositionListApi.as_view(), name="position-list"),
]
