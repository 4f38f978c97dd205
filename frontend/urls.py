"""Web UI routes (the API lives under /api/v1/, allauth under /accounts/)."""

from django.urls import path

from frontend import views

app_name = "frontend"

urlpatterns = [
    path("", views.home, name="home"),
    path("strategies/", views.strategy_list, name="strategy_list"),
    path("strategies/upload/", views.strategy_upload, name="strategy_upload"),
    path("strategies/<uuid:strategy_id>/", views.strategy_detail, name="strategy_detail"),
    path(
        "strategies/<uuid:strategy_id>/upload/", views.strategy_version_upload, name="strategy_version_upload"
    ),
    path("strategies/<uuid:strategy_id>/v<int:number>/", views.strategy_version, name="strategy_version"),
    path("instances/", views.instance_list, name="instance_list"),
    path("instances/new/", views.instance_create, name="instance_create"),
    path("instances/<uuid:instance_id>/", views.instance_detail, name="instance_detail"),
    path("instances/<uuid:instance_id>/mode/", views.instance_mode, name="instance_mode"),
    path("settings/", views.tenant_settings, name="settings"),
]
