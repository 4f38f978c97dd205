"""API v1 routes of this app (mounted under /api/v1/)."""

from django.urls import path

from stratbox.markets import apis

urlpatterns = [
    path("markets/", apis.MarketListApi.as_view(), name="market-list"),
    path("markets/<int:market_id>/", apis.MarketDetailApi.as_view(), name="market-detail"),
]
