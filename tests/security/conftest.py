"""The security suites' world: tenant A with one of everything, tenant B with its own, and probes.

Every name, email and secret of tenant A carries the marker `zqamark`, so a leak of any of A's text
shows up as that marker in a response; A's UUIDs are collected from every model with a `tenant`
foreign key, so a model added later is covered without touching this file. The fingerprint is of
the *whole* database (every row of every model) and of Redis (apart from the cache and the channel
layer): B's failed attempts may change nothing at all.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.factories import add_member, client_for, make_tenant, make_user

# Long enough that no random token (a CSRF token is 64 letters and digits) contains it by chance.
MARKER = "zqamark"
A_SECRET = {"api_key": "ZQAMARK-LIVE-KEY-0000111122223333", "api_secret": "zqamark-very-secret-9f8e7d6c5b4a"}
B_SECRET = {"api_key": "B-LIVE-KEY-4444555566667777", "api_secret": "b-secret-aaaabbbbccccdddd"}
CREDENTIALS_KEY = Fernet.generate_key().decode()
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _security_settings(settings: Any) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = [CREDENTIALS_KEY]
    settings.STRATBOX_PAPER_SLIPPAGE_BPS = 0
    settings.STRATBOX_PAPER_FEE_BPS = 0
    # The matrix sends hundreds of writes as B; the budgets are tested in tests/api/test_throttling.py.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "uploads": None,
            "token_create": None,
        },
    }


@dataclass
class Side:
    """One tenant's objects, by kind; `ids` are the values a path parameter may take."""

    tenant: Any
    owner: Any
    client: Any
    objects: dict[str, Any] = field(default_factory=dict)


def _strategy(tenant: Any, user: Any, label: str) -> tuple[Any, Any]:
    from strategies_store.models import StrategyDefinition, StrategyVersion

    definition = StrategyDefinition.objects.create(
        tenant=tenant,
        key=f"{label}-strategy",
        name=f"{label} strategy",
        description=f"{label} description",
        thesis=f"{label} thesis",
        created_by=user,
    )
    version = StrategyVersion.objects.create(
        definition=definition,
        number=1,
        source=f"# {label} source\nx = 1\n",
        sha256=uuid.uuid4().hex + uuid.uuid4().hex,
        config_schema={"window": {"type": "int", "default": 20, "min": 2, "max": 500}},
        notes=f"{label} notes",
        created_by=user,
    )
    return definition, version


def _instance(
    tenant: Any, user: Any, label: str, account: Any, market: Any, version: Any, **extra: Any
) -> Any:
    from stratbox.instances.models import StrategyInstance

    values: dict[str, Any] = {
        "name": f"{label} instance",
        "mode": "observe",
        "config": {"window": 20},
        "total_capital": Decimal("1000"),
        "capital_per_trade": Decimal("1000"),
        "max_positions": 5,
        "max_position_size": Decimal("1000"),
        "max_daily_loss": Decimal("100"),
    }
    values.update(extra)
    return StrategyInstance.objects.create(
        tenant=tenant,
        strategy=version.definition,
        version=version,
        account=account,
        market=market,
        created_by=user,
        **values,
    )


def _quote(market: Any, price: float) -> dict[str, Any]:
    return {
        "market": market.code,
        "price": price,
        "bid": price,
        "ask": price,
        "volume": 1.0,
        "ts": NOW.timestamp(),
    }


def _order(instance: Any, market: Any, n: int, *, side: str, qty: float, mode: str, label: str) -> Any:
    from stratbox.trading.services.orders import order_place

    intent = {
        "kind": "order",
        "client_order_id": f"{instance.pk}-1-{n}",
        "side": side,
        "qty": qty,
        "type": "market",
        "price": None,
        "tag": f"{label}-tag",
    }
    return order_place(instance=instance, intent=intent, quote=_quote(market, 100), mode=mode, now=NOW).order


def _plugins_and_notifications(tenant: Any, owner: Any, instance: Any, label: str) -> dict[str, Any]:
    """A plugin mount with a stored artifact, a target mount, a channel, a subscription, an inbox
    event and its delivery row (written directly: the matrix checks access, not the services)."""
    import hashlib
    import json

    from stratbox.notifications.models import Delivery, NotificationEvent
    from stratbox.notifications.services import channel_create, subscription_set
    from stratbox.plugins.models import PluginArtifact, PluginDefinition, PluginMount, PluginTargetMount

    # get_or_create: transactional tests flush the seeded registry.
    definition, _ = PluginDefinition.objects.get_or_create(
        plugin="market_regime_control",
        defaults={
            "supported_modes": ["shadow"],
            "supported_schema_versions": ["market_regime_control.v1"],
            "default_schema_version": "market_regime_control.v1",
        },
    )
    PluginMount.objects.create(tenant=tenant, instance=instance, definition=definition)
    PluginTargetMount.objects.create(
        tenant=tenant, notification_target="market_regime_notification", definition=definition
    )
    doc = {"plugin": "market_regime_control", "strategy": instance.strategy.key, "note": f"{label} artifact"}
    raw = json.dumps(doc)
    artifact = PluginArtifact.objects.create(
        tenant=tenant,
        instance=instance,
        target_type="strategy",
        target=instance.strategy.key,
        plugin="market_regime_control",
        schema_version="market_regime_control.v1",
        as_of="2026-03-01",
        canonical_route="watch",
        suggested_action="watch_only",
        sha256=hashlib.sha256(raw.encode()).hexdigest(),
        raw=raw,
        payload=doc,
    )
    channel, _ = channel_create(
        tenant=tenant, actor=owner, name=f"{label} hook", url=f"json://127.0.0.1:9/{label}-secret-path"
    )
    subscription_set(
        tenant=tenant, actor=owner, channel=channel, event_type="plugin_alert", level="on", instance=instance
    )
    event = NotificationEvent.objects.create(
        tenant=tenant,
        instance=instance,
        event_type="plugin_alert",
        dedup_key=f"{label}-key",
        title=f"{label} alert",
        body=f"{label} body",
    )
    Delivery.objects.create(
        tenant=tenant,
        event=event,
        channel=channel,
        status="failed",
        error=f"{label} error",
        target_redacted=channel.url_redacted,
    )
    return {"artifact": artifact, "channel": channel, "notification": event}


def build_side(label: str, market: Any) -> Side:
    """A tenant with one of everything (label `zqamark` for A, `bravo` for B)."""
    from stratbox.backtests.models import Backtest, BacktestTrade
    from stratbox.engine.models import InstanceRuntime, InstanceStats, Run
    from stratbox.governance.models import GraduationPolicy, LiveApprovalRequest
    from stratbox.trading.models import Account
    from stratbox.trading.services.accounts import account_create
    from tenants.models import AuditEvent, Membership
    from tenants.services import token_create

    owner = make_user(f"owner.{label}@{label}.test")
    tenant = make_tenant(f"Tenant {label}", owner=owner)
    member = add_member(tenant, role="member", user=make_user(f"member.{label}@{label}.test"))
    viewer = add_member(tenant, role="viewer", user=make_user(f"viewer.{label}@{label}.test"))
    member_token = token_create(tenant=tenant, user=member, name=f"{label} token").token
    from tenants.invitations import invitation_create

    invitation = invitation_create(
        tenant=tenant, actor=owner, email=f"invitee.{label}@{label}.test", role="member"
    )
    paper = account_create(
        tenant=tenant, actor=owner, name=f"{label} paper", starting_balance=Decimal("10000")
    )
    live = account_create(
        tenant=tenant,
        actor=owner,
        name=f"{label} live",
        starting_balance=Decimal("5000"),
        kind="live",
        broker="ccxt:test",
        credentials=A_SECRET if label == MARKER else B_SECRET,
    )
    definition, version = _strategy(tenant, owner, label)
    instance = _instance(tenant, owner, label, paper, market, version)
    active = _instance(tenant, owner, f"{label} active", paper, market, version, mode="active")
    shadow = _order(instance, market, 1, side="buy", qty=1.0, mode="observe", label=label)
    filled = _order(active, market, 1, side="buy", qty=1.0, mode="active", label=label)
    rejected = _order(
        active, market, 2, side="buy", qty=1000.0, mode="active", label=label
    )  # over the capital limits
    assert (shadow.status, filled.status, rejected.status) == ("shadow", "filled", "rejected")
    run = Run.objects.create(
        tenant=tenant,
        instance=instance,
        trigger="manual",
        status="ok",
        started_at=NOW,
        finished_at=NOW + timedelta(milliseconds=5),
        version=version,
        config_snapshot={"window": 20},
        mode="observe",
        logs=[{"level": "info", "msg": f"{label} log line"}],
    )
    InstanceStats.objects.create(instance=instance, runs=1, ok=1, last_run_at=NOW)
    InstanceRuntime.objects.create(
        instance=instance, state={"note": f"{label} state"}, state_rev=3, tick_seq=7
    )
    backtest = Backtest.objects.create(
        tenant=tenant,
        name=f"{label} backtest",
        version=version,
        version_sha256=version.sha256,
        strategy_key=definition.key,
        style="tick",
        config={"window": 20},
        instance=instance,
        source="bars",
        market=market,
        market_code=market.code,
        start=NOW - timedelta(days=1),
        end=NOW,
        status="running",  # cancellable: a cancel that got through would change it
        bars_total=100,
        created_by=owner,
    )
    BacktestTrade.objects.create(
        backtest=backtest, seq=1, side="long", qty=1.0, entry_ts=1.0, entry_price=100.0
    )
    done = Backtest.objects.create(
        tenant=tenant,
        name=f"{label} finished backtest",
        version=version,
        version_sha256=version.sha256,
        strategy_key=definition.key,
        style="tick",
        source="bars",
        market=market,
        status="succeeded",
        pnl=Decimal("12.50"),
        num_trades=1,
        equity_curve=[[1.0, 10000.0], [2.0, 10012.5]],
        created_by=owner,
    )
    dataset = _dataset(tenant, owner, label)
    GraduationPolicy.objects.create(tenant=tenant, min_trades=1, note=f"{label} policy")
    request = LiveApprovalRequest.objects.create(
        tenant=tenant,
        instance=instance,
        instance_name=instance.name,
        live_account=live,
        version=version,
        config={"window": 20},
        config_hash="0" * 64,
        track_record={"trades": 0},
        criteria={"ok": False},
        note=f"{label} request note",
        requested_by=owner,
    )
    plugin_objects = _plugins_and_notifications(tenant, owner, instance, label)
    side = Side(tenant=tenant, owner=owner, client=client_for(owner, tenant))
    side.objects = {
        "tenant": tenant,
        "owner": Membership.objects.get(tenant=tenant, user=owner),
        "member": Membership.objects.get(tenant=tenant, user=member),
        "viewer": Membership.objects.get(tenant=tenant, user=viewer),
        "viewer_user": viewer,
        "member_token": member_token,
        "invitation_token": invitation.token,
        "paper": paper,
        "live": Account.objects.get(pk=live.pk),
        "strategy": definition,
        "version": version,
        "instance": instance,
        "active": active,
        "shadow_order": shadow,
        "filled_order": filled,
        "rejected_order": rejected,
        "fill": filled.fills.get(),
        "position": filled.fills.get().position,
        "run": run,
        "backtest": backtest,
        "finished_backtest": done,
        "dataset": dataset,
        "live_request": request,
        "event": AuditEvent.objects.filter(tenant=tenant).order_by("pk").first(),
        **plugin_objects,
    }
    return side


def _dataset(tenant: Any, owner: Any, label: str) -> Any:
    """A stored bar dataset (an imported CSV) of the tenant, named after the side."""
    import numpy as np

    from stratbox.backtests.csvbars import BarColumns
    from stratbox.backtests.datasets import dataset_store

    ts = np.arange(5, dtype=np.float64) * 60 + 1_700_000_000
    close = np.full(5, 100.0)
    dataset, _ = dataset_store(
        tenant=tenant,
        actor=owner,
        cols=BarColumns(ts, close, close, close, close, np.ones(5)),
        sha256=label.ljust(64, "0")[:64],
        filename=f"{label} dataset.csv",
    )
    return dataset


@pytest.fixture
def side_a(market: Any) -> Side:
    return build_side(MARKER, market)


@pytest.fixture
def side_b(market: Any, side_a: Side) -> Side:
    return build_side("bravo", market)


# --- what A owns: identifiers, and the fingerprint of everything ----------------------------------


def a_identifiers(side: Side) -> set[str]:
    """Every UUID of a row of A (each model with a `tenant` FK, plus versions), emails and secrets."""
    from django.apps import apps
    from django.db import models

    found: set[str] = {str(side.tenant.pk)}
    for model in apps.get_models():
        names = {f.name for f in model._meta.get_fields()}
        if "tenant" in names and isinstance(model._meta.pk, models.UUIDField):
            found |= {
                str(pk)
                for pk in model._default_manager.filter(tenant=side.tenant).values_list("pk", flat=True)
            }
    from strategies_store.models import StrategyVersion

    found |= {
        str(pk)
        for pk in StrategyVersion.objects.filter(definition__tenant=side.tenant).values_list("pk", flat=True)
    }
    found |= {m.user.email for m in side.tenant.memberships.select_related("user")}
    found |= set(A_SECRET.values())
    found.add(side.objects["member_token"].prefix)
    found |= set(side.tenant.invitations.values_list("email", flat=True))
    found.add(side.objects["invitation_token"])
    found.add(side.objects["version"].sha256)
    return found


def leaks(text: str, identifiers: set[str]) -> list[str]:
    lowered = text.lower()
    hits = [value for value in identifiers if value.lower() in lowered]
    if MARKER in lowered:
        hits.append(f"marker {MARKER!r}")
    return hits


IGNORED_COLUMNS = {("tenants", "apitoken", "last_used_at")}  # B's own token is stamped on every call


def db_fingerprint() -> dict[str, Any]:
    """Every row of every model (B's failed attempts may change nothing, anywhere)."""
    from django.apps import apps

    snapshot: dict[str, Any] = {}
    for model in apps.get_models(include_auto_created=True):
        if not model._meta.managed or model._meta.proxy:
            continue
        label = (model._meta.app_label, model._meta.model_name)
        rows = []
        for row in model._default_manager.order_by("pk").values():
            for column in list(row):
                if (*label, column) in IGNORED_COLUMNS:
                    row.pop(column)
                elif isinstance(row[column], memoryview):
                    row[column] = bytes(row[column])
            rows.append(row)
        snapshot[f"{label[0]}.{label[1]}"] = rows
    return snapshot


def redis_fingerprint() -> dict[bytes, bytes | None]:
    """Redis apart from Django's cache (throttle counters, `:1:`) and the channel layer (`asgi`)."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    cache_prefix = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:1:".encode()
    try:
        return {
            key: client.dump(key)
            for key in sorted(client.scan_iter(count=1000))
            if not key.startswith((b":1:", cache_prefix, b"asgi"))
        }
    finally:
        client.close()


def fingerprint() -> tuple[dict[str, Any], dict[bytes, bytes | None]]:
    return db_fingerprint(), redis_fingerprint()


def fingerprint_diff(before: Any, after: Any) -> list[str]:
    """The tables (or Redis keys) that changed, for a readable failure."""
    changed = [table for table in before[0] if before[0][table] != after[0].get(table)]
    redis_keys = set(before[1]) | set(after[1])
    changed += [f"redis:{key!r}" for key in redis_keys if before[1].get(key) != after[1].get(key)]
    return changed


def body_text(response: Any) -> str:
    content = getattr(response, "content", b"")
    if not content and hasattr(response, "streaming_content"):
        content = b"".join(response.streaming_content)
    return content.decode("utf-8", "replace")


def json_or_none(response: Any) -> Any:
    try:
        return json.loads(body_text(response))
    except ValueError:
        return None
