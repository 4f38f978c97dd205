"""API v1 routes of the engine (mounted under /api/v1/)."""

from django.urls import path

from stratbox.engine import apis, venue_apis

urlpatterns = [
    path("instances/<str:instance_id>/runtime/", apis.InstanceRuntimeApi.as_view(), name="instance-runtime"),
    path("instances/<str:instance_id>/pause/", apis.InstancePauseApi.as_view(), name="instance-pause"),
    path("instances/<str:instance_id>/resume/", apis.InstanceResumeApi.as_view(), name="instance-resume"),
    path(
        "instances/<str:instance_id>/test-run/", apis.InstanceTestRunApi.as_view(), name="instance-test-run"
    ),
    path("instances/<str:instance_id>/render/", apis.InstanceRenderApi.as_view(), name="instance-render"),
    path("runs/", apis.RunListApi.as_view(), name="run-list"),
    path("runs/<str:run_id>/", apis.RunDetailApi.as_view(), name="run-detail"),
    path("tenant/kill-switch/", apis.KillSwitchApi.as_view(), name="tenant-kill-switch"),
    path("venue-discrepancies/", venue_apis.VenueDiscrepancyListApi.as_view(), name="venue-discrepancy-list"),
    path(
        "accounts/<str:account_id>/reconcile/",
        venue_apis.AccountReconcileApi.as_view(),
        name="account-reconcile",
    ),
    path("accounts/<str:account_id>/venue/", venue_apis.AccountVenueApi.as_view(), name="account-venue"),
]
