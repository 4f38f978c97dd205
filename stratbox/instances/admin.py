"""Django admin for strategy instances: identity read-only; every change goes through the services.

So an edit here is validated against the pinned version's CONFIG_SCHEMA, bumps config_revision
when a reload is needed, obeys the mode rules, is audited with the staff member as actor, and
is announced to the engine after commit — exactly like the API.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.instances.services import (
    ACTIVATION_WHILE_OFF,
    ALLOCATION_FIELDS,
    ALLOWED_TRANSITIONS,
    instance_config_changes,
    instance_set_mode,
    instance_update_config,
)
from tenants.errors import ApplicationError, form_add_error

IDENTITY_READONLY = ["id", "tenant", "strategy", "version", "account", "market"]
EDITABLE = ["name", "config", *ALLOCATION_FIELDS]


class StrategyInstanceAdminForm(forms.ModelForm):
    class Meta:
        model = StrategyInstance
        fields = [*EDITABLE, "mode"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        current = StrategyInstance.objects.select_related("version", "tenant").get(pk=self.instance.pk)
        values = {field: cleaned.get(field) for field in EDITABLE if field in self.changed_data}
        try:
            self.changes = instance_config_changes(instance=current, replace_config=True, **values)
        except ApplicationError as exc:
            form_add_error(self, exc)
        mode = cleaned.get("mode")
        if mode and mode != current.mode and (Mode(current.mode), Mode(mode)) not in ALLOWED_TRANSITIONS:
            self.add_error("mode", ACTIVATION_WHILE_OFF)
        return cleaned


@admin.register(StrategyInstance)
class StrategyInstanceAdmin(admin.ModelAdmin):
    form = StrategyInstanceAdminForm
    list_display = ["name", "tenant", "strategy", "version", "market", "account", "mode", "config_revision"]
    list_filter = ["mode", "sizing_method", "market"]
    search_fields = ["name", "id", "strategy__key", "tenant__name"]
    list_select_related = ["tenant", "strategy", "version", "market", "account"]
    readonly_fields = [*IDENTITY_READONLY, "config_revision", "created_by", "created_at", "updated_at"]
    fields = [
        *IDENTITY_READONLY,
        *EDITABLE,
        "mode",
        "config_revision",
        "created_by",
        "created_at",
        "updated_at",
    ]
    actions = ["power_off"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Instances are created through the API/UI, where strategy, account and market are resolved
        # within the tenant; the admin's raw foreign-key pickers could cross tenants.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deletion is a tenant decision (API, only while off)

    def save_model(self, request: HttpRequest, obj: StrategyInstance, form: Any, change: bool) -> None:
        # Never obj.save(): the form's values reach the row only through the services.
        if any(field in form.changed_data for field in EDITABLE):
            values = {field: form.cleaned_data[field] for field in EDITABLE if field in form.changed_data}
            instance_update_config(instance=obj, actor=request.user, replace_config=True, **values)
        if "mode" in form.changed_data:
            instance_set_mode(instance=obj, actor=request.user, mode=form.cleaned_data["mode"])
        obj.refresh_from_db()

    @admin.action(description="Power off (emergency stop)")
    def power_off(self, request: HttpRequest, queryset: QuerySet[StrategyInstance]) -> None:
        stopped = 0
        for instance in queryset:
            try:
                if instance_set_mode(instance=instance, actor=request.user, mode=Mode.OFF).mode == Mode.OFF:
                    stopped += 1
            except ApplicationError as exc:
                self.message_user(request, f"{instance}: {exc.message}", level=messages.ERROR)
        self.message_user(request, f"{stopped} instance(s) are off.", level=messages.SUCCESS)
