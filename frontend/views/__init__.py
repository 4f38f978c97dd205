"""Web UI views: thin — parse a form, call one service or selector, render a template."""

from frontend.views.instances import instance_create, instance_detail, instance_list, instance_mode
from frontend.views.pages import home, tenant_settings
from frontend.views.strategies import (
    strategy_detail,
    strategy_list,
    strategy_upload,
    strategy_version,
    strategy_version_upload,
)

__all__ = [
    "home",
    "instance_create",
    "instance_detail",
    "instance_list",
    "instance_mode",
    "strategy_detail",
    "strategy_list",
    "strategy_upload",
    "strategy_version",
    "strategy_version_upload",
    "tenant_settings",
]
