"""API v1 routes of the tenants app (mounted under /api/v1/)."""

from django.urls import path

from tenants import apis

urlpatterns = [
    path("tenant/", apis.TenantApi.as_view(), name="tenant"),
    path("tenant/switch/", apis.TenantSwitchApi.as_view(), name="tenant-switch"),
    path("tokens/", apis.TokenListCreateApi.as_view(), name="token-list"),
    path("tokens/<uuid:token_id>/", apis.TokenDetailApi.as_view(), name="token-detail"),
    path("tokens/<uuid:token_id>/revoke/", apis.TokenRevokeApi.as_view(), name="token-revoke"),
    path("members/", apis.MembershipListCreateApi.as_view(), name="member-list"),
    path("members/<int:membership_id>/", apis.MembershipDetailApi.as_view(), name="member-detail"),
    path("invitations/", apis.InvitationListApi.as_view(), name="invitation-list"),
    path("invitations/accept/", apis.InvitationAcceptApi.as_view(), name="invitation-accept"),
    path("audit-events/", apis.AuditEventListApi.as_view(), name="audit-event-list"),
    path("audit-events/<int:event_id>/", apis.AuditEventDetailApi.as_view(), name="audit-event-detail"),
]
