"""Django admin for governance: the live-trading approval queue and per-tenant graduation policies.

A request's page shows what staff approve — the code version (key, number, sha256, source), the
config + allocation, the paper and shadow track records, the criteria and the tenant's backtests
of that version — and a decision form (approve / reject / revoke with a reason) that goes
through the same services as the staff API: audited, bound to version + config hash.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from stratbox.governance import services
from stratbox.governance.models import GraduationPolicy, LiveApprovalRequest, RequestStatus
from stratbox.governance.selectors import backtests_for, live_approval_is_current
from tenants.errors import ApplicationError
from tenants.services import audit_record

DECISIONS = {
    "approve": RequestStatus.PENDING,
    "reject": RequestStatus.PENDING,
    "revoke": RequestStatus.APPROVED,
}


class DecisionForm(forms.ModelForm):
    decision = forms.ChoiceField(
        choices=[("", "— no decision —"), ("approve", "Approve"), ("reject", "Reject"), ("revoke", "Revoke")],
        required=False,
    )
    reason = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 3}))

    class Meta:
        model = LiveApprovalRequest
        fields: list[str] = []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        decision = cleaned.get("decision")
        if not decision:
            return cleaned
        if self.instance.status != DECISIONS[decision]:
            raise forms.ValidationError(f"Cannot {decision} a request that is {self.instance.status}.")
        if decision in ("reject", "revoke") and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "A reason is required to reject or revoke.")
        return cleaned


def _pre(value: Any) -> str:
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(value, indent=2, default=str))


@admin.register(LiveApprovalRequest)
class LiveApprovalRequestAdmin(admin.ModelAdmin):
    form = DecisionForm
    list_display = [
        "instance_name",
        "tenant",
        "live_account",
        "status",
        "requested_at",
        "decided_at",
        "decided_by",
    ]
    list_filter = ["status"]
    search_fields = ["instance_name", "tenant__name"]
    list_select_related = ["tenant", "live_account", "decided_by"]
    ordering = ["status", "-requested_at"]
    readonly_fields = [
        "id",
        "tenant",
        "instance",
        "live_account",
        "code_version",
        "config_display",
        "config_hash",
        "track_record_display",
        "criteria_display",
        "backtests_display",
        "note",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_reason",
        "live_instance",
        "approval_current",
        "revoked_by",
        "revoked_at",
        "revoke_reason",
    ]
    fieldsets = [
        (None, {"fields": ["id", "tenant", "instance", "live_account", "status", "note"]}),
        ("What is approved", {"fields": ["code_version", "config_display", "config_hash"]}),
        ("Evidence", {"fields": ["track_record_display", "criteria_display", "backtests_display"]}),
        (
            "Decision",
            {
                "fields": [
                    "decision",
                    "reason",
                    "requested_by",
                    "requested_at",
                    "decided_by",
                    "decided_at",
                    "decision_reason",
                    "live_instance",
                    "approval_current",
                    "revoked_by",
                    "revoked_at",
                    "revoke_reason",
                ]
            },
        ),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # requests come from tenants, through the graduation check

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # part of the audit trail

    @admin.display(description="code version")
    def code_version(self, obj: LiveApprovalRequest) -> str:
        v = obj.version
        return f"{v.definition.key} v{v.number} (sha256 {v.sha256[:16]}…)"

    @admin.display(description="config + allocation + frequency")
    def config_display(self, obj: LiveApprovalRequest) -> str:
        return _pre(obj.config)

    @admin.display(description="track record at request time")
    def track_record_display(self, obj: LiveApprovalRequest) -> str:
        record = dict(obj.track_record or {})
        paper = dict(record.get("paper") or {})
        paper.pop("equity_curve", None)
        return _pre({"paper": paper, "shadow (observe mode)": record.get("shadow")})

    @admin.display(description="graduation criteria")
    def criteria_display(self, obj: LiveApprovalRequest) -> str:
        return _pre(obj.criteria)

    @admin.display(description="backtests of this version")
    def backtests_display(self, obj: LiveApprovalRequest) -> str:
        rows = backtests_for(obj)
        if not rows:
            return "none"
        return format_html(
            "<table><tr><th>name</th><th>status</th><th>market</th><th>trades</th><th>win rate</th>"
            "<th>P&amp;L</th><th>max DD</th><th>created</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        b.name or str(b.pk)[:8],
                        b.status,
                        b.market_code,
                        b.num_trades,
                        b.win_rate,
                        b.pnl,
                        b.max_drawdown,
                        b.created_at,
                    )
                    for b in rows
                ),
            ),
        )

    @admin.display(boolean=True, description="approval current")
    def approval_current(self, obj: LiveApprovalRequest) -> bool:
        return bool(
            obj.status == RequestStatus.APPROVED
            and obj.live_instance
            and live_approval_is_current(obj.live_instance)
        )

    def save_model(self, request: HttpRequest, obj: LiveApprovalRequest, form: Any, change: bool) -> None:
        decision, reason = form.cleaned_data.get("decision"), form.cleaned_data.get("reason") or ""
        if not decision:
            return
        try:
            if decision == "approve":
                services.live_request_approve(request=obj, actor=request.user, reason=reason)
            elif decision == "reject":
                services.live_request_reject(request=obj, actor=request.user, reason=reason)
            else:
                outcome = services.live_request_revoke(request=obj, actor=request.user, reason=reason)
                if outcome.demoted:
                    messages.warning(
                        request, "The engine was not running it: the instance was moved to observe."
                    )
        except ApplicationError as exc:
            messages.error(request, f"{decision} refused: {exc}")


@admin.register(GraduationPolicy)
class GraduationPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "tenant",
        "min_trades",
        "min_win_rate",
        "min_pnl",
        "max_drawdown",
        "updated_by",
        "updated_at",
    ]
    search_fields = ["tenant__name"]
    readonly_fields = ["updated_by", "updated_at"]
    autocomplete_fields: list[str] = []

    def save_model(self, request: HttpRequest, obj: GraduationPolicy, form: Any, change: bool) -> None:
        fields = ["min_trades", "min_win_rate", "min_pnl", "max_drawdown"]
        before = (
            {f: str(getattr(GraduationPolicy.objects.get(pk=obj.pk), f)) for f in fields} if change else None
        )
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
        audit_record(
            tenant=obj.tenant,
            actor=request.user,  # type: ignore[arg-type]
            action="graduation_policy." + ("update" if change else "create"),
            target=obj,
            before=before,
            after={f: str(getattr(obj, f)) for f in fields},
        )
