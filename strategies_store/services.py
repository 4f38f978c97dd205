"""Writes for the strategy store: uploads (definition + numbered, immutable versions), edits, deletes
and the built-in catalog install.

Upload flow: `validation.validate_upload` first (sandbox compile in a host process — slow, and
never while holding a row lock), then one transaction that locks the definition row, compares the
content digest with the latest version and either creates version N+1 or raises `DuplicateVersion`
carrying the existing latest version. Only a re-upload identical to the *latest* version is a
duplicate: re-uploading an older version's content is a revert and gets a new number.

Catalog definitions (tenant NULL) are written only by `catalog_install`; every tenant-facing
service refuses them with `CatalogReadOnly`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from strategies_store.models import StrategyDefinition, StrategyStyle, StrategyVersion
from strategies_store.validation import (
    THESIS,
    UploadInvalid,
    UploadIssue,
    ValidatedUpload,
    clean_thesis,
    validate_upload,
)
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
EDITABLE_FIELDS = ("name", "description", "thesis")


class StoreError(ApplicationError):
    """A refused write with a stable UPPER_SNAKE code (shown verbatim by the API)."""

    default_code = "STORE_ERROR"
    field_name: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message=message, field=self.field_name)


class DuplicateVersion(StoreError):
    """The upload is byte-identical (per file) to the latest version; nothing was created.

    The API answers it as a 200 with the existing version (`duplicate: true`), not as an error."""

    status = 409
    default_code = "DUPLICATE_VERSION"

    def __init__(self, existing: StrategyVersion) -> None:
        self.existing = existing
        super().__init__(
            f"Identical to the latest version (v{existing.number}, sha256 {existing.sha256[:12]}); "
            "no new version was created."
        )


class CatalogReadOnly(StoreError):
    status = 403
    default_code = "CATALOG_READ_ONLY"

    def __init__(self, definition: StrategyDefinition) -> None:
        super().__init__(f"'{definition.key}' is a built-in catalog strategy and cannot be changed.")


class StrategyInUse(StoreError):
    status = 409
    default_code = "STRATEGY_IN_USE"

    def __init__(self, definition: StrategyDefinition, count: int) -> None:
        self.count = count
        super().__init__(f"'{definition.key}' is used by {count} instance(s); delete those instances first.")


class KeyTaken(StoreError):
    default_code = "KEY_TAKEN"
    field_name = "key"

    def __init__(self, key: str) -> None:
        super().__init__(f"You already have a strategy with key '{key}'; upload a new version to it instead.")


class CatalogError(Exception):
    """The shipped catalog is broken (a missing file or a strategy the sandbox refuses)."""


def _version_summary(version: StrategyVersion) -> dict[str, Any]:
    return {"version_id": str(version.id), "number": version.number, "sha256": version.sha256}


def _resolve_thesis(*, style: str, given: str | None, validated: ValidatedUpload, current: str = "") -> str:
    """The form field wins, then config.json's thesis, then the definition's; bundles need one."""
    thesis = clean_thesis(given) or validated.thesis or current
    if style == StrategyStyle.SIGNAL_BUNDLE and not thesis:
        raise UploadInvalid(
            [
                UploadIssue(
                    THESIS,
                    "REQUIRED",
                    "A signal bundle needs a plain-English thesis (why this makes money): "
                    "send 'thesis' or put it in config.json.",
                )
            ]
        )
    return thesis


def _next_version(
    *, definition: StrategyDefinition, author: AbstractBaseUser | None, validated: ValidatedUpload, notes: str
) -> StrategyVersion:
    """Create version N+1 unless identical to the latest. Caller holds the definition's row lock."""
    latest = definition.versions.order_by("-number").first()
    if latest is not None and latest.sha256 == validated.sha256:
        raise DuplicateVersion(latest)
    return StrategyVersion.objects.create(
        definition=definition,
        number=(latest.number + 1) if latest else 1,
        source=validated.source,
        exit_source=validated.exit_source,
        bundle_config=validated.bundle_config,
        sha256=validated.sha256,
        config_schema=validated.config_schema,
        config_field_order=list(validated.config_schema),
        validation_report=validated.validation_report,
        notes=notes[:200],
        created_by=author if getattr(author, "is_authenticated", False) else None,
    )


def strategy_create(
    *,
    tenant: Tenant,
    author: AbstractBaseUser | None,
    key: str,
    name: str,
    description: str = "",
    style: str = StrategyStyle.TICK,
    thesis: str | None = None,
    source: str | bytes | None,
    exit_source: str | bytes | None = None,
    config: str | bytes | dict[str, Any] | None = None,
    notes: str = "",
) -> StrategyVersion:
    """Upload a new strategy: its definition and version 1. Raises UploadInvalid / KeyTaken.

    For a bundle, `source` is entry.py, `exit_source` exit.py and `config` config.json (raw bytes
    or text, or an already-decoded object); name/description default to config.json's.
    """
    if tenant is None:
        raise ValueError("strategy_create needs a tenant; the catalog is installed by catalog_install()")
    validated = validate_upload(style=style, source=source, exit_source=exit_source, config=config)
    final_thesis = _resolve_thesis(style=style, given=thesis, validated=validated)
    name = (name or str(validated.bundle_config.get("name", ""))).strip()
    description = description or str(validated.bundle_config.get("description", ""))
    if not name:
        raise UploadInvalid([UploadIssue("name", "REQUIRED", "A name is required.")])
    if StrategyDefinition.objects.filter(tenant=tenant, key=key).exists():
        raise KeyTaken(key)
    try:
        with transaction.atomic():
            definition = StrategyDefinition.objects.create(
                tenant=tenant,
                key=key,
                name=name[:120],
                description=description,
                style=style,
                thesis=final_thesis,
                created_by=author if getattr(author, "is_authenticated", False) else None,
            )
            version = _next_version(definition=definition, author=author, validated=validated, notes=notes)
            audit_record(
                tenant=tenant,
                actor=author,
                action="strategy.upload",
                target=version,
                after={"key": key, "style": style, **_version_summary(version)},
            )
    except IntegrityError as exc:
        # Two concurrent creates with the same key: the unique constraint decides, the loser is told.
        raise KeyTaken(key) from exc
    return version


def version_create(
    *,
    definition: StrategyDefinition,
    author: AbstractBaseUser | None,
    source: str | bytes | None,
    exit_source: str | bytes | None = None,
    config: str | bytes | dict[str, Any] | None = None,
    thesis: str | None = None,
    notes: str = "",
    allow_catalog: bool = False,
) -> StrategyVersion:
    """Upload the next version of `definition` (same style). Raises UploadInvalid, DuplicateVersion,
    CatalogReadOnly. A thesis given here (or in config.json) replaces the definition's thesis."""
    if definition.tenant_id is None and not allow_catalog:
        raise CatalogReadOnly(definition)
    validated = validate_upload(style=definition.style, source=source, exit_source=exit_source, config=config)
    with transaction.atomic():
        # The row lock serialises numbering and the duplicate check between concurrent uploads.
        locked = StrategyDefinition.objects.select_for_update().get(pk=definition.pk)
        final_thesis = _resolve_thesis(
            style=locked.style, given=thesis, validated=validated, current=locked.thesis
        )
        version = _next_version(definition=locked, author=author, validated=validated, notes=notes)
        if final_thesis != locked.thesis:
            locked.thesis = final_thesis
            locked.save(update_fields=["thesis", "updated_at"])
        else:
            locked.save(update_fields=["updated_at"])
        audit_record(
            tenant=locked.tenant,
            actor=author,
            action="strategy.upload",
            target=version,
            after={"key": locked.key, "style": locked.style, **_version_summary(version)},
        )
    definition.refresh_from_db()
    return version


@transaction.atomic
def strategy_update(
    *, definition: StrategyDefinition, actor: AbstractBaseUser | None, **changes: str
) -> StrategyDefinition:
    """Edit name / description / thesis (code changes are new versions, never edits)."""
    if definition.tenant_id is None:
        raise CatalogReadOnly(definition)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    locked = StrategyDefinition.objects.select_for_update().get(pk=definition.pk)
    if "thesis" in changes:
        changes["thesis"] = clean_thesis(changes["thesis"])
        if locked.style == StrategyStyle.SIGNAL_BUNDLE and not changes["thesis"]:
            raise UploadInvalid(
                [UploadIssue(THESIS, "REQUIRED", "A signal bundle's thesis cannot be empty.")]
            )
    if "name" in changes:
        changes["name"] = changes["name"].strip()
        if not changes["name"]:
            raise UploadInvalid([UploadIssue("name", "REQUIRED", "A name is required.")])
    before = {f: getattr(locked, f) for f in changes}
    after = {f: v for f, v in changes.items() if before[f] != v}
    if after:
        for field_name, value in after.items():
            setattr(locked, field_name, value)
        locked.save(update_fields=[*after, "updated_at"])
        audit_record(
            tenant=locked.tenant,
            actor=actor,
            action="strategy.update",
            target=locked,
            before={f: before[f] for f in after},
            after=after,
        )
    return locked


def strategy_delete(*, definition: StrategyDefinition, actor: AbstractBaseUser | None) -> None:
    """Delete a tenant's strategy and all its versions, refused while any instance uses it."""
    if definition.tenant_id is None:
        raise CatalogReadOnly(definition)
    try:
        with transaction.atomic():
            locked = StrategyDefinition.objects.select_for_update().get(pk=definition.pk)
            # `instances` is the reverse accessor of StrategyInstance.strategy (a higher layer; not imported).
            count = locked.instances.count()
            if count:
                raise StrategyInUse(locked, count)
            audit_record(
                tenant=locked.tenant,
                actor=actor,
                action="strategy.delete",
                target=locked,
                before={"key": locked.key, "versions": locked.versions.count()},
            )
            locked.delete()
    except (ProtectedError, IntegrityError) as exc:
        # An instance was created between the count and the delete: the FK still protects it.
        raise StrategyInUse(definition, 1) from exc


# --- the built-in catalog -------------------------------------------------------------------------


def _catalog_entries(manifest_path: Path) -> list[dict[str, Any]]:
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    entries = data.get("strategies", data.get("entries")) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise CatalogError(f"{manifest_path}: expected a list of strategies")
    return entries


def _catalog_files(entry: dict[str, Any], base: Path) -> dict[str, bytes]:
    """Map roles (source | entry | exit | config) to file bytes; `files` is a list or a role->path map."""
    files = entry.get("files")
    style = entry.get("style", StrategyStyle.TICK)
    if isinstance(files, str):
        files = [files]
    if isinstance(files, dict):
        pairs = list(files.items())
    elif isinstance(files, list):
        pairs = [(Path(f).name, f) for f in files]
    else:
        raise CatalogError(f"catalog entry {entry.get('key')!r}: 'files' must be a list or an object")
    roles: dict[str, bytes] = {}
    for label, rel in pairs:
        path = (base / rel).resolve()
        if not path.is_relative_to(base.resolve()) or not path.is_file():
            raise CatalogError(f"catalog entry {entry.get('key')!r}: missing file {rel}")
        label = str(label).lower()
        if style == StrategyStyle.SIGNAL_BUNDLE:
            role = next(
                (r for r in ("entry", "exit", "config") if label.startswith(r) or Path(rel).stem == r), None
            )
            if role is None:
                raise CatalogError(f"catalog entry {entry.get('key')!r}: unexpected bundle file {rel}")
        else:
            role = "source"
        roles[role] = path.read_bytes()
    return roles


def catalog_install(*, manifest_path: Path | None = None) -> list[StrategyDefinition]:
    """Install or update the built-in catalog idempotently and return its definitions.

    Reads `catalog/manifest.json`; every entry becomes a tenant-less definition. Same content as
    the latest version -> nothing new; a changed file -> a new version. Every file is validated
    through the sandbox like a tenant upload; a refused catalog file raises CatalogError, because
    shipping a strategy the platform cannot run is a bug to fix, not to hide.
    """
    manifest_path = manifest_path or CATALOG_DIR / "manifest.json"
    if not manifest_path.is_file():
        logger.warning("no catalog manifest at %s; nothing to install", manifest_path)
        return list(StrategyDefinition.objects.filter(tenant__isnull=True))
    base = manifest_path.parent
    installed: list[StrategyDefinition] = []
    for entry in _catalog_entries(manifest_path):
        key = str(entry.get("key", ""))
        style = str(entry.get("style", StrategyStyle.TICK))
        if style == "signal":
            style = StrategyStyle.SIGNAL_BUNDLE
        if not key or style not in StrategyStyle.values:
            raise CatalogError(f"catalog entry {entry!r}: needs a key and a style of {StrategyStyle.values}")
        files = _catalog_files(entry, base)
        try:
            validated = validate_upload(
                style=style,
                source=files.get("source", files.get("entry")),
                exit_source=files.get("exit"),
                config=files.get("config"),
            )
        except UploadInvalid as exc:
            raise CatalogError(f"catalog strategy {key!r} is invalid: {exc}") from exc
        thesis = str(entry.get("thesis") or validated.thesis or "").strip()
        if style == StrategyStyle.SIGNAL_BUNDLE and not thesis:
            raise CatalogError(f"catalog strategy {key!r} is a signal bundle without a thesis")
        meta = {
            "name": str(entry.get("name") or validated.bundle_config.get("name") or key)[:120],
            "description": str(entry.get("description") or validated.bundle_config.get("description") or ""),
            "thesis": thesis,
        }
        with transaction.atomic():
            definition, created = StrategyDefinition.objects.get_or_create(
                tenant=None, key=key, defaults={"style": style, **meta}
            )
            definition = StrategyDefinition.objects.select_for_update().get(pk=definition.pk)
            if definition.style != style:
                raise CatalogError(f"catalog strategy {key!r} changed style; give it a new key")
            changed = {f: v for f, v in meta.items() if getattr(definition, f) != v}
            if changed:
                for field_name, value in changed.items():
                    setattr(definition, field_name, value)
                definition.save(update_fields=[*changed, "updated_at"])
            try:
                version = _next_version(
                    definition=definition, author=None, validated=validated, notes="catalog"
                )
            except DuplicateVersion:
                pass
            else:
                audit_record(
                    tenant=None,
                    actor=None,
                    actor_label="catalog",
                    action="strategy.upload",
                    target=version,
                    after={"key": key, "style": style, "catalog": True, **_version_summary(version)},
                )
        installed.append(definition)
    return installed
