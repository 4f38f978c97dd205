"""Input and output shapes of the strategy store API (no business rules: those live in services)."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import serializers

from strategies_store.models import StrategyDefinition, StrategyStyle, StrategyVersion
from strategies_store.validation import MAX_THESIS_CHARS

# --- input ---------------------------------------------------------------------------------------


class StrategyMetaInput(serializers.Serializer):
    """The non-code fields of `POST /strategies/` (the code fields are read by the API itself)."""

    key = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    style = serializers.ChoiceField(choices=StrategyStyle.choices, required=False)
    thesis = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=MAX_THESIS_CHARS, trim_whitespace=True
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class VersionMetaInput(serializers.Serializer):
    thesis = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, default=None, max_length=MAX_THESIS_CHARS
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class StrategyUpdateInput(serializers.Serializer):
    """PATCH: only these three fields; code changes are new versions, identity never changes."""

    name = serializers.CharField(max_length=120, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    thesis = serializers.CharField(required=False, allow_blank=True, max_length=MAX_THESIS_CHARS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        read_only = sorted(set(self.initial_data) - set(self.fields))
        if read_only:
            raise serializers.ValidationError(
                {
                    name: serializers.ErrorDetail(
                        f"'{name}' cannot be changed here (only name, description and thesis; "
                        "upload a new version to change the code).",
                        code="read_only",
                    )
                    for name in read_only
                }
            )
        if not attrs:
            raise serializers.ValidationError("Send at least one of name, description, thesis.")
        return attrs


class UploadErrorItem(serializers.Serializer):
    code = serializers.CharField(
        help_text="e.g. COMPILE_ERROR, FORBIDDEN_IMPORT, TOO_LARGE, BAD_FILE_TYPE, required"
    )
    detail = serializers.CharField()
    attr = serializers.CharField(
        allow_null=True, help_text="The field the client sent: file, source, entry, ..."
    )
    line = serializers.IntegerField(allow_null=True, required=False, help_text="1-based; null when not code")
    col = serializers.IntegerField(allow_null=True, required=False)


class UploadErrorResponse(serializers.Serializer):
    """The standard validation error body of an upload; code positions add `line` and `col`."""

    type = serializers.ChoiceField(choices=["validation_error", "client_error"])
    errors = UploadErrorItem(many=True)


class UploadDocInput(serializers.Serializer):
    """Documentation-only: every field an upload may carry (tick: `file`/`source`; bundle: the rest)."""

    key = serializers.SlugField(help_text="Slug, unique within your tenant (POST /strategies/ only).")
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False)
    style = serializers.ChoiceField(
        choices=StrategyStyle.choices, required=False, help_text="Inferred from the files when omitted."
    )
    thesis = serializers.CharField(
        required=False, help_text="Required for a signal bundle (or in config.json)."
    )
    notes = serializers.CharField(required=False)
    file = serializers.FileField(required=False, help_text="Tick style, multipart: the strategy .py file.")
    source = serializers.CharField(required=False, help_text="Tick style, JSON: the strategy source.")
    entry = serializers.FileField(required=False, help_text="Bundle, multipart: entry.py.")
    exit = serializers.FileField(required=False, help_text="Bundle, multipart: exit.py.")
    config = serializers.JSONField(
        required=False, help_text="Bundle: config.json (a file in multipart, an object in JSON)."
    )
    entry_source = serializers.CharField(required=False, help_text="Bundle, JSON: entry.py source.")
    exit_source = serializers.CharField(required=False, help_text="Bundle, JSON: exit.py source.")


# --- output --------------------------------------------------------------------------------------


class VersionSummaryOutput(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = StrategyVersion
        fields = ["id", "number", "sha256", "config_schema", "notes", "created_by", "created_at"]

    def get_created_by(self, obj: StrategyVersion) -> str | None:
        return obj.created_by.get_username() if obj.created_by else None


class VersionOutput(VersionSummaryOutput):
    """One version with its files, schema and the sandbox's validation report."""

    strategy = serializers.UUIDField(source="definition_id", read_only=True)
    style = serializers.CharField(source="definition.style", read_only=True)
    config = serializers.JSONField(source="bundle_config", read_only=True)
    files = serializers.SerializerMethodField()

    class Meta(VersionSummaryOutput.Meta):
        fields = [
            *VersionSummaryOutput.Meta.fields,
            "strategy",
            "style",
            "source",
            "exit_source",
            "config",
            "files",
            "validation_report",
        ]

    def get_files(self, obj: StrategyVersion) -> dict[str, str]:
        return version_files(obj)


class VersionUploadOutput(VersionOutput):
    duplicate = serializers.SerializerMethodField()

    class Meta(VersionOutput.Meta):
        fields = [*VersionOutput.Meta.fields, "duplicate"]

    def get_duplicate(self, obj: StrategyVersion) -> bool:
        return bool(self.context.get("duplicate", False))


class StrategyOutput(serializers.ModelSerializer):
    builtin = serializers.BooleanField(source="is_builtin", read_only=True)
    latest_version = serializers.SerializerMethodField()
    version_count = serializers.SerializerMethodField()

    class Meta:
        model = StrategyDefinition
        fields = [
            "id",
            "key",
            "name",
            "description",
            "style",
            "thesis",
            "builtin",
            "latest_version",
            "version_count",
            "created_at",
            "updated_at",
        ]

    def get_latest_version(self, obj: StrategyDefinition) -> dict[str, Any] | None:
        latest = obj.versions.order_by("-number").first()
        return VersionSummaryOutput(latest).data if latest else None

    def get_version_count(self, obj: StrategyDefinition) -> int:
        count = getattr(obj, "version_count", None)
        return count if count is not None else obj.versions.count()


class FileDiffOutput(serializers.Serializer):
    file = serializers.CharField()
    diff = serializers.CharField()
    changed = serializers.BooleanField()


class VersionDiffOutput(serializers.Serializer):
    strategy = serializers.UUIDField()
    from_number = serializers.IntegerField(allow_null=True)
    to_number = serializers.IntegerField()
    files = FileDiffOutput(many=True)


class AllowedModuleOutput(serializers.Serializer):
    module = serializers.CharField()
    names = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField(allow_blank=True)


class AllowedImportsOutput(serializers.Serializer):
    modules = AllowedModuleOutput(many=True)
    max_source_bytes = serializers.IntegerField()


def version_files(version: StrategyVersion) -> dict[str, str]:
    """A version's files as a user would see them on disk (config.json pretty-printed, sorted)."""
    if version.definition.style == StrategyStyle.SIGNAL_BUNDLE:
        return {
            "entry.py": version.source,
            "exit.py": version.exit_source,
            "config.json": json.dumps(version.bundle_config, indent=2, sort_keys=True, ensure_ascii=False)
            + "\n",
        }
    return {"strategy.py": version.source}
