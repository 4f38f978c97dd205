"""Web UI routes (the API lives under /api/v1/, allauth under /accounts/)."""

from django.urls import path

from frontend import views
from frontend.views import assistants, notifications, upgrades, venues
from frontend.views.invitations import invitation_accept_page

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
    path("instances/<uuid:instance_id>/upgrade/", upgrades.instance_upgrade_view, name="instance_upgrade"),
    path("instances/<uuid:instance_id>/pause/", views.instance_pause, name="instance_pause"),
    path("instances/<uuid:instance_id>/resume/", views.instance_resume, name="instance_resume"),
    path("instances/<uuid:instance_id>/test-run/", views.instance_test_run, name="instance_test_run"),
    path("instances/<uuid:instance_id>/runs/", views.instance_runs, name="instance_runs"),
    path(
        "instances/<uuid:instance_id>/positions/<uuid:position_id>/close/",
        views.instance_position_close,
        name="instance_position_close",
    ),
    path(
        "instances/<uuid:instance_id>/performance/",
        views.instance_performance_fragment,
        name="instance_performance",
    ),
    path(
        "instances/<uuid:instance_id>/live-request/",
        views.instance_live_request,
        name="instance_live_request",
    ),
    path("backtests/", views.backtest_index, name="backtest_list"),
    path("backtests/new/", views.backtest_new, name="backtest_new"),
    path("backtests/compare/", views.backtest_compare, name="backtest_compare"),
    path("backtests/<uuid:backtest_id>/", views.backtest_detail, name="backtest_detail"),
    path("backtests/<uuid:backtest_id>/cancel/", views.backtest_cancel_view, name="backtest_cancel"),
    path("settings/", views.tenant_settings, name="settings"),
    path("invitations/<str:token>/", invitation_accept_page, name="invitation_accept"),
    path("settings/members/", views.member_add, name="member_add"),
    path("settings/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("settings/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("settings/tokens/", views.token_add, name="token_add"),
    path("settings/live-accounts/", views.live_account_add, name="live_account_add"),
    path("settings/live-accounts/<uuid:account_id>/", venues.live_account_detail, name="live_account_detail"),
    path(
        "settings/live-accounts/<uuid:account_id>/reconcile/",
        venues.live_account_reconcile,
        name="live_account_reconcile",
    ),
    path("settings/tokens/<uuid:token_id>/revoke/", views.token_remove, name="token_revoke"),
    path("settings/kill-switch/", views.kill_switch, name="kill_switch"),
    path("settings/assistants/", assistants.assistants, name="assistants"),
    path("settings/assistants/tokens/", assistants.assistant_token_add, name="assistant_token_add"),
    path(
        "instances/<uuid:instance_id>/plugins/upload/",
        notifications.instance_plugin_upload,
        name="instance_plugin_upload",
    ),
    path("notifications/", notifications.notifications_page, name="notifications"),
    path("notifications/channels/", notifications.channel_add, name="notification_channel_add"),
    path(
        "notifications/channels/<uuid:channel_id>/test/",
        notifications.channel_test,
        name="notification_channel_test",
    ),
    path(
        "notifications/channels/<uuid:channel_id>/toggle/",
        notifications.channel_toggle,
        name="notification_channel_toggle",
    ),
    path(
        "notifications/subscriptions/", notifications.subscription_add, name="notification_subscription_add"
    ),
    path("notifications/settings/", notifications.notification_settings, name="notification_settings"),
    path("notifications/inbox/read/", notifications.inbox_read, name="notification_inbox_read"),
    path("staff/live-requests/", views.staff_live_requests, name="staff_live_requests"),
    path(
        "staff/live-requests/<uuid:request_id>/",
        views.staff_live_request_detail,
        name="staff_live_request_detail",
    ),
    path(
        "staff/live-requests/<uuid:request_id>/<str:action>/",
        views.staff_live_request_decide,
        name="staff_live_request_decide",
    ),
]
