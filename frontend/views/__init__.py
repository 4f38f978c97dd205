"""Web UI views: thin — parse a form, call one service or selector, render a template."""

from frontend.views.backtests import (
    backtest_cancel_view,
    backtest_compare,
    backtest_detail,
    backtest_index,
    backtest_new,
)
from frontend.views.governance import (
    instance_live_request,
    staff_live_request_decide,
    staff_live_request_detail,
    staff_live_requests,
)
from frontend.views.instances import (
    instance_create,
    instance_detail,
    instance_list,
    instance_mode,
    instance_performance_fragment,
    instance_position_close,
    instance_test_run,
)
from frontend.views.instances import instance_pause_view as instance_pause
from frontend.views.instances import instance_resume_view as instance_resume
from frontend.views.instances import instance_runs_fragment as instance_runs
from frontend.views.pages import (
    home,
    kill_switch,
    live_account_add,
    member_add,
    member_remove,
    member_role,
    tenant_settings,
    token_add,
    token_remove,
)
from frontend.views.strategies import (
    strategy_detail,
    strategy_list,
    strategy_upload,
    strategy_version,
    strategy_version_upload,
)

__all__ = [
    "backtest_cancel_view",
    "backtest_compare",
    "backtest_detail",
    "backtest_index",
    "backtest_new",
    "home",
    "kill_switch",
    "live_account_add",
    "member_add",
    "member_remove",
    "member_role",
    "token_add",
    "token_remove",
    "instance_create",
    "instance_detail",
    "instance_list",
    "instance_live_request",
    "instance_mode",
    "instance_performance_fragment",
    "instance_position_close",
    "instance_pause",
    "instance_resume",
    "instance_runs",
    "instance_test_run",
    "staff_live_request_decide",
    "staff_live_request_detail",
    "staff_live_requests",
    "strategy_detail",
    "strategy_list",
    "strategy_upload",
    "strategy_version",
    "strategy_version_upload",
    "tenant_settings",
]
