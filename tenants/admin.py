"""Django admin for tenants: staff set capital limits; tokens and the audit log are read-only.

Every change made here goes through the same services as the API, so it is audited the same way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from tenants.models import ApiToken, AuditEvent, Membership, Role, Tenant
from tenants.services import (
    membership_create,
    membership_delete,
    membership_is_last_owner,
    membership_set_role,
    tenant_set_capital_limit,
    tenant_update,
    token_revoke,
)


class TenantAdminForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "capital_limit"]

    def clean_capital_limit(self) -> Decimal:
        # Mirrors tenant_set_capital_limit so the admin shows the message instead of a 500.
        value = self.cleaned_data["capital_limit"]
        if value is not None and value < 0:
            raise ValidationError("The capital limit cannot be negative.")
        return value


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["name", "capital_limit", "killed_at", "created_at"]
    list_filter = [("killed_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "id"]
    fields = ["id", "name", "capital_limit", "killed_at", "created_at"]
    # The kill switch is shown here but operated through the engine, which also pauses instances.
    readonly_fields = ["id", "killed_at", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tenants are created at signup, with an owner

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the audit log references tenants (PROTECT): they are never deleted

    def save_model(self, request: HttpRequest, obj: Tenant, form: ModelForm, change: bool) -> None:
        if "name" in form.changed_data:
            tenant_update(tenant=obj, actor=request.user, name=obj.name)
        if "capital_limit" in form.changed_data:
            tenant_set_capital_limit(tenant=obj, actor=request.user, capital_limit=obj.capital_limit)


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["tenant", "user", "role"]

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        # Refuse in the form so the admin shows the message instead of a 500 from the service.
        if self.instance.pk and role != Role.OWNER:
            current = Membership.objects.select_related("tenant").get(pk=self.instance.pk)
            if membership_is_last_owner(membership=current):
                raise ValidationError("The last owner cannot be demoted: make another member an owner first.")
        return role


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__name"]
    raw_id_fields = ["user", "tenant"]
    list_select_related = ["user", "tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["user", "tenant", "created_at"] if obj is not None else ["created_at"]

    form = MembershipAdminForm

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # bulk delete would bypass the last-owner rule
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and membership_is_last_owner(membership=obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Membership, form: ModelForm, change: bool) -> None:
        if change:
            membership_set_role(membership=obj, actor=request.user, role=obj.role)
        else:
            created = membership_create(
                tenant=obj.tenant, actor=request.user, email=obj.user.email, role=obj.role
            )
            obj.pk = created.pk

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        membership_delete(membership=obj, actor=request.user)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "tenant", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__email", "tenant__name"]
    list_select_related = ["user", "tenant"]
    # The digest is deliberately absent: it is a credential equivalent for offline guessing.
    fields = ["id", "name", "prefix", "user", "tenant", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are created by their user, who must see the plaintext once

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: a revoked token keeps its audit trail

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("tenants.change_apitoken")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        tokens = list(queryset.select_related("tenant").filter(revoked_at__isnull=True))
        for token in tokens:
            token_revoke(token=token, actor=request.user)
        self.message_user(request, f"Revoked {len(tokens)} token(s).", level=messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Strictly read-only: the log is append-only (PostgreSQL also rejects UPDATE/DELETE)."""

    list_display = ["at", "tenant", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action", "target_type"]
    search_fields = ["action", "target_id", "actor_label", "tenant__name"]
    date_hierarchy = "at"
    list_select_related = ["tenant"]
    fields = ["at", "tenant", "actor", "actor_label", "action", "target_type", "target_id", "before", "after"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
