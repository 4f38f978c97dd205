"""Websocket routes (Channels); the consumers and their close codes are documented in `frontend.consumers`."""

from django.urls import path, re_path

from frontend.consumers import BacktestConsumer, InstanceConsumer, NotFoundConsumer, TenantConsumer

websocket_urlpatterns = [
    path("ws/instances/<uuid:instance_id>/", InstanceConsumer.as_asgi()),
    path("ws/tenant/", TenantConsumer.as_asgi()),
    path("ws/backtests/<uuid:backtest_id>/", BacktestConsumer.as_asgi()),
    # Anything else: accepted and closed 4404 "not found" (URLRouter alone raised, a 500).
    re_path(r"", NotFoundConsumer.as_asgi()),
]
