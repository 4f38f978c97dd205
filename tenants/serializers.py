"""Input and output shapes of the tenants API. No rules here: those live in services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from tenants.models import ApiToken, AuditEvent, Invitation, Membership, Role, Tenant
from tenants.scopes import TokenScope

# --- tenant ---------------------------------------------------------------------------------


class TenantOutput(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = ["id", "name", "role", "capital_limit", "killed_at", "created_at"]
        read_only_fields = fields

    def get_role(self, tenant: Tenant) -> str:
        return str(self.context["role"])


class RejectReadOnlyFieldsMixin:
    """Reject fields the caller may see but not change, naming each one, instead of silently ignoring it.

    A client that PATCHes `capital_limit` and gets a 200 would believe the limit changed.
    """

    read_only_messages: dict[str, str] = {}

    def to_internal_value(self, data: Any) -> Any:
        read_only = (
            {
                field: [ErrorDetail(msg, code="read_only")]
                for field, msg in self.read_only_messages.items()
                if field in data
            }
            if isinstance(data, Mapping)
            else {}
        )
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except serializers.ValidationError as exc:
            if read_only and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **read_only}) from exc
            raise
        if read_only:
            raise serializers.ValidationError(read_only)
        return value


class TenantUpdateInput(RejectReadOnlyFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=120, trim_whitespace=True)

    read_only_messages = {
        "capital_limit": "The capital limit is set by Stratbox staff; it cannot be changed through the API.",
        "killed_at": "The kill switch is not changed through this endpoint.",
        "id": "This field is read-only.",
        "role": "Roles are changed through /api/v1/members/.",
        "created_at": "This field is read-only.",
    }


class TenantSwitchInput(serializers.Serializer):
    tenant_id = serializers.UUIDField()


# --- tokens ---------------------------------------------------------------------------------


class TokenOutput(serializers.ModelSerializer):
    """A token as listed: never the digest, never the plaintext."""

    user_email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "user_email", "scopes", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields

    scopes = serializers.ListField(child=serializers.ChoiceField(choices=TokenScope.choices), read_only=True)


class TokenCreatedOutput(TokenOutput):
    """The creation response: the only time the plaintext token is ever sent."""

    token = serializers.CharField(
        read_only=True, help_text="Shown once. Send as `Authorization: Bearer <token>`."
    )

    class Meta(TokenOutput.Meta):
        fields = [*TokenOutput.Meta.fields, "token"]
        read_only_fields = fields


class TokenCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=80, trim_whitespace=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=TokenScope.choices),
        required=False,
        allow_empty=True,
        help_text="What the token may do; `read` is always included and is the default.",
    )


# --- members --------------------------------------------------------------------------------


class MembershipOutput(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateInput(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class InvitationOutput(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "created_at", "expires_at"]
        read_only_fields = fields

    def get_status(self, invitation: Invitation) -> str:
        return "accepted" if invitation.accepted_at else "invited"


class InvitationAcceptInput(serializers.Serializer):
    token = serializers.CharField(max_length=200, help_text="the token of the emailed link")


class MembershipUpdateInput(RejectReadOnlyFieldsMixin, serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)

    read_only_messages = {"email": "A membership's user cannot be changed; remove it and add the other user."}


# --- audit ----------------------------------------------------------------------------------


class AuditEventOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor_label", "action", "target_type", "target_id", "before", "after"]
        read_only_fields = fields
