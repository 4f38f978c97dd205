"""Django admin for the strategy store: definitions editable (name/description/thesis) through the
same service as the API; versions are immutable, so their admin is read-only.

Uploads are not possible here: code only enters through the API/web form, which validate it in
the sandbox.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from strategies_store.models import StrategyDefinition, StrategyVersion
from strategies_store.services import EDITABLE_FIELDS, strategy_delete, strategy_update
from strategies_store.validation import UploadInvalid
from tenants.errors import ApplicationError


class VersionInline(admin.TabularInline):
    model = StrategyVersion
    fields = ["number", "sha256", "notes", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-number"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StrategyDefinition)
class StrategyDefinitionAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "tenant", "style", "created_at"]
    list_filter = ["style", ("tenant", admin.EmptyFieldListFilter)]
    search_fields = ["key", "name", "tenant__name"]
    list_select_related = ["tenant"]
    fields = ["id", "tenant", "key", "style", "name", "description", "thesis", "created_by", "created_at"]
    inlines = [VersionInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        identity = ["id", "tenant", "key", "style", "created_by", "created_at"]
        if obj is not None and obj.is_builtin:
            # The catalog is owned by catalog/manifest.json; an admin edit would be overwritten anyway.
            return [*identity, *EDITABLE_FIELDS]
        return identity

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Django's model permission first: a staff user without `delete_strategydefinition` may not.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.is_builtin)

    def save_model(
        self, request: HttpRequest, obj: StrategyDefinition, form: ModelForm, change: bool
    ) -> None:
        changes = {f: form.cleaned_data[f] for f in EDITABLE_FIELDS if f in form.changed_data}
        if changes:
            try:
                strategy_update(definition=obj, actor=request.user, **changes)
            except (ApplicationError, UploadInvalid) as exc:
                messages.error(request, str(exc))

    def delete_model(self, request: HttpRequest, obj: StrategyDefinition) -> None:
        try:
            strategy_delete(definition=obj, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[StrategyDefinition]) -> None:
        for definition in queryset:
            self.delete_model(request, definition)


@admin.register(StrategyVersion)
class StrategyVersionAdmin(admin.ModelAdmin):
    list_display = ["definition", "number", "sha256", "created_by", "created_at"]
    list_filter = ["definition__style"]
    search_fields = ["definition__key", "sha256"]
    list_select_related = ["definition", "created_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # immutable: staff with view permission see it read-only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
