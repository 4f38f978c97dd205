"""API shapes for live-trading requests (tenant and staff views) and staff decisions."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from stratbox.governance.models import LiveApprovalRequest, RequestStatus
from stratbox.governance.selectors import backtests_for, live_approval_is_current
from stratbox.governance.services import instance_graduation


class LiveRequestInput(serializers.Serializer):
    live_account = serializers.UUIDField(help_text="one of the tenant's live accounts")
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DecisionInput(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class LiveRequestOutput(serializers.ModelSerializer):
    """What the tenant sees: the status of its request, the decision's reason and the live instance."""

    live_account_name = serializers.CharField(source="live_account.name", read_only=True)
    strategy_key = serializers.CharField(source="version.definition.key", read_only=True)
    version_number = serializers.IntegerField(source="version.number", read_only=True)
    approval_current = serializers.SerializerMethodField()
    # A plain string (documented values) so the schema's shared "status" enum names stay unambiguous.
    status = serializers.CharField(read_only=True, help_text="pending | approved | rejected | revoked")

    class Meta:
        model = LiveApprovalRequest
        fields = [
            "id",
            "instance",
            "instance_name",
            "live_account",
            "live_account_name",
            "version",
            "strategy_key",
            "version_number",
            "config",
            "config_hash",
            "track_record",
            "criteria",
            "note",
            "status",
            "requested_at",
            "decided_at",
            "decision_reason",
            "live_instance",
            "approval_current",
            "revoked_at",
            "revoke_reason",
        ]
        read_only_fields = fields

    def get_approval_current(self, obj: LiveApprovalRequest) -> bool:
        """True while the live instance still matches the approved version + config (and not revoked)."""
        if obj.status != RequestStatus.APPROVED or obj.live_instance is None:
            return False
        return live_approval_is_current(obj.live_instance)


class StaffLiveRequestOutput(LiveRequestOutput):
    tenant_name = serializers.CharField(source="tenant.name", read_only=True)
    requested_by = serializers.SerializerMethodField()
    decided_by = serializers.SerializerMethodField()

    class Meta(LiveRequestOutput.Meta):
        fields = [*LiveRequestOutput.Meta.fields, "tenant", "tenant_name", "requested_by", "decided_by"]
        read_only_fields = fields

    def get_requested_by(self, obj: LiveApprovalRequest) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by else None

    def get_decided_by(self, obj: LiveApprovalRequest) -> str | None:
        return obj.decided_by.get_username() if obj.decided_by else None


class BacktestSummary(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    status = serializers.CharField()
    market_code = serializers.CharField()
    num_trades = serializers.IntegerField(allow_null=True)
    win_rate = serializers.FloatField(allow_null=True)
    pnl = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    max_drawdown = serializers.FloatField(allow_null=True)
    created_at = serializers.DateTimeField()


class StaffLiveRequestDetailOutput(StaffLiveRequestOutput):
    """The reviewer's page: the request's snapshots plus the code and today's evidence."""

    source_sha256 = serializers.CharField(source="version.sha256", read_only=True)
    source = serializers.CharField(source="version.source", read_only=True)
    current = serializers.SerializerMethodField()
    backtests = serializers.SerializerMethodField()

    class Meta(StaffLiveRequestOutput.Meta):
        fields = [*StaffLiveRequestOutput.Meta.fields, "source_sha256", "source", "current", "backtests"]
        read_only_fields = fields

    def get_current(self, obj: LiveApprovalRequest) -> dict[str, Any] | None:
        """The paper instance's graduation as of now (it may have traded since the request)."""
        if obj.instance is None:
            return None
        return instance_graduation(obj.instance)

    def get_backtests(self, obj: LiveApprovalRequest) -> list[dict[str, Any]]:
        return BacktestSummary(backtests_for(obj), many=True).data  # type: ignore[return-value]
