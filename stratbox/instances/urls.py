"""API v1 routes of this app (mounted under /api/v1/)."""

from django.urls import path

from stratbox.instances.apis import (
    InstanceActivateApi,
    InstanceDetailApi,
    InstanceListCreateApi,
    InstanceModeApi,
    InstancePowerApi,
    InstanceUpgradeApi,
)

urlpatterns = [
    path("instances/", InstanceListCreateApi.as_view(), name="instance-list"),
    # <str:>, not <uuid:>: a malformed id must get the API's JSON 404, not Django's HTML one.
    path("instances/<str:instance_id>/", InstanceDetailApi.as_view(), name="instance-detail"),
    path("instances/<str:instance_id>/mode/", InstanceModeApi.as_view(), name="instance-mode"),
    path("instances/<str:instance_id>/power/", InstancePowerApi.as_view(), name="instance-power"),
    path("instances/<str:instance_id>/activate/", InstanceActivateApi.as_view(), name="instance-activate"),
    path("instances/<str:instance_id>/upgrade/", InstanceUpgradeApi.as_view(), name="instance-upgrade"),
]
