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
