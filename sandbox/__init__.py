"""Stratbox's sandbox: run untrusted tenant strategies safely (pure Python, never Django).

Defence in depth: a RestrictedPython language layer (:mod:`sandbox.policy`) inside an OS layer
(:mod:`sandbox.host` confined by :mod:`sandbox.confine`), behind a trusted engine that re-checks
every intent. Entry points: :func:`validate_source` at upload, :class:`SandboxClient` at run time,
:func:`validate_config_schema`/:func:`apply_config` for configs; user code imports :mod:`sandbox.sdk`.
"""

from sandbox.client import Limits, SandboxClient
from sandbox.errors import ErrorCode, SandboxError
from sandbox.policy import ALLOWED_IMPORTS
from sandbox.schema import ConfigErrors, apply_config, contains_nul, validate_config_schema
from sandbox.validate import Issue, ValidationReport, validate_source

__all__ = [
    "ALLOWED_IMPORTS",
    "ConfigErrors",
    "ErrorCode",
    "Issue",
    "Limits",
    "SandboxClient",
    "SandboxError",
    "ValidationReport",
    "apply_config",
    "contains_nul",
    "validate_config_schema",
    "validate_source",
]
