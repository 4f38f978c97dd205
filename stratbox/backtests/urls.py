"""API v1 routes of backtests (mounted under /api/v1/)."""

from django.urls import path

from stratbox.backtests import apis

urlpatterns = [
    path("backtests/", apis.BacktestListCreateApi.as_view(), name="backtest-list"),
    path("backtests/datasets/", apis.BarDatasetListCreateApi.as_view(), name="backtest-dataset-list"),
    path(
        "backtests/datasets/<uuid:dataset_id>/",
        apis.BarDatasetDetailApi.as_view(),
        name="backtest-dataset-detail",
    ),
    path("backtests/compare/", apis.BacktestCompareApi.as_view(), name="backtest-compare"),
    path("backtests/<uuid:backtest_id>/", apis.BacktestDetailApi.as_view(), name="backtest-detail"),
    path("backtests/<uuid:backtest_id>/trades/", apis.BacktestTradesApi.as_view(), name="backtest-trades"),
    path("backtests/<uuid:backtest_id>/equity/", apis.BacktestEquityApi.as_view(), name="backtest-equity"),
    path("backtests/<uuid:backtest_id>/cancel/", apis.BacktestCancelApi.as_view(), name="backtest-cancel"),
]
