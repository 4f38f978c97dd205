"""Live-account credentials, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from `settings.STRATBOX_CREDENTIALS_KEYS` (a list of urlsafe-base64 Fernet keys): the
first one encrypts, all of them decrypt (`MultiFernet`), so a key is rotated by putting the new
key first, running `credentials_rotate()` and then dropping the old key. Without a key the
platform refuses to store credentials at all — it never falls back to plaintext.

Credentials are write-only: they are decrypted only by a live broker adapter inside the trusted
worker (`credentials_decrypt`), never returned by the API (which shows `has_credentials` and a
masked hint) and never put into a sandbox snapshot.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

MAX_FIELDS = 10
MAX_VALUE_CHARS = 1024


class CredentialsUnavailable(Exception):
    """No encryption key is configured, or stored credentials cannot be decrypted with the keys."""


def _fernet() -> MultiFernet:
    keys = [k for k in (getattr(settings, "STRATBOX_CREDENTIALS_KEYS", None) or []) if k]
    if not keys:
        raise CredentialsUnavailable(
            "No credentials encryption key is configured (STRATBOX_CREDENTIALS_KEYS); "
            "refusing to store exchange credentials."
        )
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise CredentialsUnavailable(f"STRATBOX_CREDENTIALS_KEYS holds an invalid Fernet key: {exc}") from exc


FIELD_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def credentials_validate(value: Any) -> dict[str, str]:
    """A flat {name: secret} mapping of non-empty strings, or ValueError saying what is wrong."""
    if not isinstance(value, dict) or not value:
        raise ValueError("must be a non-empty object of name -> secret strings.")
    if len(value) > MAX_FIELDS:
        raise ValueError(f"at most {MAX_FIELDS} fields.")
    clean: dict[str, str] = {}
    for key, secret in value.items():
        # Names are shown (masked hint) and audited: plain identifiers only (no NUL, no control bytes).
        if type(key) is not str or not FIELD_NAME.fullmatch(key):
            raise ValueError("field names must be 1 to 64 letters, digits, '_', '-' or '.'.")
        if type(secret) is not str or not secret or len(secret) > MAX_VALUE_CHARS:
            raise ValueError(f"'{key}' must be a non-empty string of at most {MAX_VALUE_CHARS} characters.")
        clean[key] = secret
    return clean


def credentials_encrypt(credentials: dict[str, str]) -> str:
    payload = json.dumps(credentials, sort_keys=True, separators=(",", ":")).encode()
    return _fernet().encrypt(payload).decode()


def credentials_decrypt(ciphertext: str) -> dict[str, str]:
    """For a live broker adapter only (trusted worker side); never for an API response or a host."""
    try:
        return json.loads(_fernet().decrypt(ciphertext.encode()))
    except InvalidToken as exc:
        raise CredentialsUnavailable(
            "stored credentials cannot be decrypted with the configured keys"
        ) from exc


def credentials_hint(credentials: dict[str, str]) -> str:
    """What the UI may show: field names and, for long enough values, the last 4 characters."""
    parts = []
    for key in sorted(credentials):
        secret = credentials[key]
        tail = secret[-4:] if len(secret) >= 12 else ""
        parts.append(f"{key}: ••••{tail}")
    return ", ".join(parts)[:200]


def credentials_rotate(ciphertext: str) -> str:
    """Re-encrypt under the first (newest) key; raises CredentialsUnavailable if no key decrypts it."""
    try:
        return _fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise CredentialsUnavailable(
            "stored credentials cannot be decrypted with the configured keys"
        ) from exc
