"""Websocket routes (Channels); the consumers and their close codes are documented in `frontend.consumers`."""

from django.urls import path

from frontend.consumers import BacktestConsumer, InstanceConsumer, TenantConsumer

websocket_urlpatterns = [
    path("ws/instances/<uuid:instance_id>/", InstanceConsumer.as_asgi()),
    path("ws/tenant/", TenantConsumer.as_asgi()),
    path("ws/backtests/<uuid:backtest_id>/", BacktestConsumer.as_asgi()),
]
