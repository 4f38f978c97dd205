"""Top-level URL configuration: API v1, OpenAPI, admin, accounts, health and the web UI."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from stratbox.health import healthz

api_v1 = [
    path("", include("tenants.urls")),
    path("", include("strategies_store.urls")),
    path("", include("stratbox.markets.urls")),
    path("", include("stratbox.instances.urls")),
    path("", include("stratbox.trading.urls")),
    path("", include("stratbox.engine.urls")),
    path("", include("stratbox.backtests.urls")),
    path("", include("stratbox.governance.urls")),
    path("", include("stratbox.plugins.urls")),
    path("", include("stratbox.notifications.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Staff sign in through the same login as everyone (allauth): its failed-login rate limit locks
    # out password guessing, which the admin's own login form did not.
    path("admin/login/", RedirectView.as_view(pattern_name="account_login", query_string=True)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("", include("frontend.urls")),
]

# JSON error bodies for /api/ paths that never reach a DRF view; Django's pages elsewhere.
handler404 = "tenants.errors.handler404"
handler500 = "tenants.errors.handler500"
