"""API v1 routes of the plugins app (mounted under /api/v1/)."""

from django.urls import path

from stratbox.plugins.apis import (
    ArtifactDetailApi,
    ArtifactListApi,
    DefinitionListApi,
    InstanceArtifactsApi,
    InstanceMountsApi,
    InstancePluginStatusApi,
    TargetsApi,
)

urlpatterns = [
    path("plugins/definitions/", DefinitionListApi.as_view(), name="plugin-definitions"),
    path("plugins/targets/", TargetsApi.as_view(), name="plugin-targets"),
    path("plugins/artifacts/", ArtifactListApi.as_view(), name="plugin-artifacts"),
    path("plugins/artifacts/<str:artifact_id>/", ArtifactDetailApi.as_view(), name="plugin-artifact-detail"),
    path("instances/<str:instance_id>/plugins/", InstanceMountsApi.as_view(), name="instance-plugins"),
    path(
        "instances/<str:instance_id>/plugins/status/",
        InstancePluginStatusApi.as_view(),
        name="instance-plugin-status",
    ),
    path(
        "instances/<str:instance_id>/plugins/artifacts/",
        InstanceArtifactsApi.as_view(),
        name="instance-plugin-artifacts",
    ),
]
