"""API v1 routes of this app (mounted under /api/v1/)."""

from django.urls import path

from strategies_store import apis

app_name = "strategies_store"

urlpatterns = [
    path("strategies/", apis.StrategyListCreateApi.as_view(), name="strategy-list"),
    path("strategies/<str:strategy_id>/", apis.StrategyDetailApi.as_view(), name="strategy-detail"),
    path(
        "strategies/<str:strategy_id>/versions/",
        apis.VersionListCreateApi.as_view(),
        name="version-list",
    ),
    path(
        "strategies/<str:strategy_id>/versions/<int:number>/",
        apis.VersionDetailApi.as_view(),
        name="version-detail",
    ),
    path(
        "strategies/<str:strategy_id>/versions/<int:number>/diff/",
        apis.VersionDiffApi.as_view(),
        name="version-diff",
    ),
    path("sandbox/allowed-imports/", apis.AllowedImportsApi.as_view(), name="allowed-imports"),
]
