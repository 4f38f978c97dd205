"""OpenAPI (drf-spectacular) description of the Bearer token authentication.

Registered on import; `TenantsConfig.ready()` imports this module so every schema run sees it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(
            header_name="Authorization",
            token_prefix="Bearer",  # noqa: S106 - the auth scheme keyword, not a secret
            bearer_format="sbx_<prefix>_<secret>",
        )


DYNAMIC_ITEM = "ValidationErrorItem"


def relax_validation_error_items(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Let every validation-error item list accept an item with any `attr` (spectacular postprocessing hook).

    drf-standardized-errors documents one component per input field (`attr` enum + its codes),
    discriminated by `attr`. Some attrs are only known at run time: a strict input names the
    unknown key it refused, config errors are `config.<field>` of the pinned version's own
    schema, upload errors name the part sent (`file`, `entry`, ...) and add `line`/`col`. A
    discriminator rejects such items, so a generated client would fail on a correct 400. The
    per-field components stay (they document the known cases); the list becomes `anyOf` them
    and a generic item (`attr`, `code`, `detail`, extra keys allowed).
    """
    schemas = result.get("components", {}).get("schemas", {})
    touched = False
    for component in schemas.values():
        discriminator = component.get("discriminator", {})
        if discriminator.get("propertyName") != "attr" or "oneOf" not in component:
            continue
        component["anyOf"] = [*component.pop("oneOf"), {"$ref": f"#/components/schemas/{DYNAMIC_ITEM}"}]
        del component["discriminator"]
        touched = True
    if touched:
        schemas[DYNAMIC_ITEM] = {
            "type": "object",
            "description": "A validation error about an input known only at run time "
            "(an unknown key, a `config.<field>`, an uploaded file); upload errors add `line` and `col`.",
            "properties": {
                "code": {"type": "string"},
                "detail": {"type": "string"},
                "attr": {"type": "string", "nullable": True},
                "line": {"type": "integer", "nullable": True},
                "col": {"type": "integer", "nullable": True},
            },
            "required": ["code", "detail", "attr"],
        }
    return result
