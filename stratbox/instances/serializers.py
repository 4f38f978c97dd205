"""Request parsing and response shapes of the instances API. Rules live in services, not here.

Input serializers only parse types; they also refuse keys they do not know, so a typo or an
attempt to change identity or mode through PATCH is a 400 naming the field — never silently
ignored.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from stratbox.instances.models import IDENTITY_FIELDS, Mode, SizingMethod, StrategyInstance, TickTrigger

MONEY = {"max_digits": 18, "decimal_places": 2, "min_value": 0}

# Keys that appear in the response but are never accepted in a write, with the reason shown.
READ_ONLY_REASONS = {
    "identity": "Identity cannot be changed; create a new instance instead.",
    "version": "Change the version with POST /api/v1/instances/{id}/upgrade/.",
    "mode": "Change the mode with POST /api/v1/instances/{id}/mode/.",
    "config_revision": "Read-only: bumped by the server when a change needs a reload.",
    "created_at": "Read-only.",
    "updated_at": "Read-only.",
    "tenant": "Read-only.",
    "created_by": "Read-only.",
}


def identity_error(field: str) -> str:
    return f"Identity field '{field}' cannot be changed."


class _StrictInput(serializers.Serializer):
    """Refuses keys that are not fields of the serializer (identity and read-only ones with a reason)."""

    immutable: tuple[str, ...] = ()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) or hasattr(data, "keys"):
            errors: dict[str, list[serializers.ErrorDetail]] = {}
            for key in data.keys():
                if key in self.fields:
                    continue
                if key in self.immutable:
                    errors[key] = [serializers.ErrorDetail(identity_error(key), code="immutable")]
                elif key in READ_ONLY_REASONS:
                    errors[key] = [serializers.ErrorDetail(READ_ONLY_REASONS[key], code="read_only")]
                else:
                    errors[str(key)[:64]] = [serializers.ErrorDetail("Unknown field.", code="unknown_field")]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class _AllocationFields(serializers.Serializer):
    total_capital = serializers.DecimalField(**MONEY, help_text="Capital allocated to the instance (> 0).")
    capital_per_trade = serializers.DecimalField(**MONEY, help_text="At most total_capital.")
    max_positions = serializers.IntegerField(min_value=1)
    max_position_size = serializers.DecimalField(**MONEY, help_text="At most total_capital.")
    max_daily_loss = serializers.DecimalField(**MONEY)
    sizing_method = serializers.ChoiceField(choices=SizingMethod.choices)
    frequency_seconds = serializers.IntegerField(min_value=1, help_text="Execution frequency in seconds.")
    trigger = serializers.ChoiceField(
        choices=TickTrigger.choices,
        required=False,  # also for PUT: clients written before it existed keep working
        help_text="interval (default): tick every frequency_seconds; quote: tick on every quote of the "
        "market (coalesced: one tick in flight at most, the newest quote wins). Omitted: unchanged.",
    )


class InstanceCreateInput(_StrictInput, _AllocationFields):
    immutable = ()  # nothing exists yet; `id` is refused as read-only below
    name = serializers.CharField(max_length=120)
    strategy = serializers.CharField(
        max_length=200, help_text="Strategy key: the tenant's own definition first, then the catalog."
    )
    version = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Version number to pin; the latest if omitted.",
    )
    account = serializers.UUIDField(help_text="Id of one of the tenant's accounts.")
    market = serializers.IntegerField(help_text="Id of an active market.")
    config = serializers.DictField(
        required=False,
        help_text="Values for the version's CONFIG_SCHEMA; omitted fields take their defaults.",
    )
    mode = serializers.ChoiceField(
        # The full Mode choice set (one shared enum in OpenAPI); the service refuses `active` with a 400.
        choices=Mode.choices,
        required=False,
        default=Mode.OFF,
        help_text="Initial mode: off (default) or observe. `active` is refused: activate afterwards.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in _AllocationFields._declared_fields:
            self.fields[field].required = False

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "keys") and "id" in data.keys():
            raise serializers.ValidationError(
                {
                    "id": [
                        serializers.ErrorDetail(
                            "Read-only: ids are assigned by the server.", code="read_only"
                        )
                    ]
                }
            )
        return super().to_internal_value(data)


class InstanceUpdateInput(_StrictInput, _AllocationFields):
    """PATCH: any subset. PUT: every field (a full replacement of the mutable part; config too)."""

    immutable = IDENTITY_FIELDS
    name = serializers.CharField(max_length=120)
    config = serializers.DictField(
        help_text="PATCH merges into the current config (null resets a field to its default); "
        "PUT replaces it (omitted fields take their defaults)."
    )


class UpgradeInput(_StrictInput):
    version = serializers.IntegerField(
        min_value=1, help_text="The version number of the instance's strategy to run (lower = roll back)."
    )
    keep_state = serializers.BooleanField(
        default=False,
        help_text="Hand the saved state to the new code's on_load instead of resetting it (init()).",
    )
    config = serializers.DictField(
        required=False,
        help_text="Patch applied to the carried config before it is validated against the new schema "
        "(null resets a field to its default).",
    )


class ModeInput(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Mode.choices)


class PowerInput(serializers.Serializer):
    on = serializers.BooleanField(help_text="true: off -> observe (no-op if on); false: any mode -> off.")


class ActivateInput(serializers.Serializer):
    active = serializers.BooleanField(
        help_text="true: observe -> active (409 while off); false: active -> observe (no-op otherwise)."
    )


# --- output -------------------------------------------------------------------------------


class StrategyRef(serializers.Serializer):
    id = serializers.UUIDField()
    key = serializers.CharField()
    name = serializers.CharField()
    style = serializers.CharField()
    builtin = serializers.BooleanField(source="is_builtin")


class VersionRef(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.IntegerField()
    sha256 = serializers.CharField()


class AccountRef(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.CharField()
    currency = serializers.CharField()


class MarketRef(serializers.Serializer):
    id = serializers.IntegerField()
    venue = serializers.CharField()
    symbol = serializers.CharField()
    code = serializers.CharField()


class IdentityOutput(serializers.Serializer):
    """What never changes after creation (`version` mirrors the deployed version for older clients;
    an upgrade changes it)."""

    id = serializers.UUIDField()
    strategy = StrategyRef()
    version = VersionRef()
    account = AccountRef()
    market = MarketRef()


class InstanceOutput(serializers.ModelSerializer):
    identity = IdentityOutput(source="*", read_only=True)
    config = serializers.DictField(read_only=True)

    class Meta:
        model = StrategyInstance
        fields = [
            "id",
            "name",
            "identity",
            "config",
            "total_capital",
            "capital_per_trade",
            "max_positions",
            "max_position_size",
            "max_daily_loss",
            "sizing_method",
            "frequency_seconds",
            "trigger",
            "mode",
            "config_revision",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class UpgradeConfigReport(serializers.Serializer):
    kept = serializers.DictField(help_text="Fields carried over, with their values.")
    added = serializers.DictField(help_text="Fields new in this version, with their (default) values.")
    removed = serializers.DictField(help_text="Fields the new version no longer has, with their last values.")


class UpgradeReportOutput(serializers.Serializer):
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    config = UpgradeConfigReport()
    keep_state = serializers.BooleanField()
    live_trading_paused = serializers.BooleanField(
        help_text="A live instance went from active to observe: its approval covered the old version."
    )


class UpgradeOutput(serializers.Serializer):
    instance = InstanceOutput()
    report = UpgradeReportOutput()


class ConflictError(serializers.Serializer):
    code = serializers.CharField(help_text="UPPER_SNAKE reason, e.g. ACTIVATION_WHILE_OFF, INSTANCE_NOT_OFF.")
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ConflictErrorResponse(serializers.Serializer):
    type = serializers.CharField(help_text="client_error")
    errors = ConflictError(many=True)
