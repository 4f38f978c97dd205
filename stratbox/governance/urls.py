"""API v1 routes of governance (mounted under /api/v1/). Ids are <str:>: a malformed one is a JSON 404."""

from django.urls import path

from stratbox.governance import apis

urlpatterns = [
    path(
        "instances/<str:instance_id>/live-request/",
        apis.InstanceLiveRequestApi.as_view(),
        name="live-request-create",
    ),
    path(
        "instances/<str:instance_id>/governance/",
        apis.InstanceGovernanceApi.as_view(),
        name="instance-governance",
    ),
    path("live-requests/", apis.LiveRequestListApi.as_view(), name="live-request-list"),
    path("live-requests/<str:request_id>/", apis.LiveRequestDetailApi.as_view(), name="live-request-detail"),
    path("staff/live-requests/", apis.StaffLiveRequestListApi.as_view(), name="staff-live-request-list"),
    path(
        "staff/live-requests/<str:request_id>/",
        apis.StaffLiveRequestDetailApi.as_view(),
        name="staff-live-request-detail",
    ),
    path(
        "staff/live-requests/<str:request_id>/approve/",
        apis.StaffApproveApi.as_view(),
        name="staff-live-request-approve",
    ),
    path(
        "staff/live-requests/<str:request_id>/reject/",
        apis.StaffRejectApi.as_view(),
        name="staff-live-request-reject",
    ),
    path(
        "staff/live-requests/<str:request_id>/revoke/",
        apis.StaffRevokeApi.as_view(),
        name="staff-live-request-revoke",
    ),
]
