"""The README's examples run as written, against the real stack.

The code blocks are read from README.md itself (a change to the README is a change to this test):

- the tick-style example and the signal-style bundle (config.json + entry.py + exit.py) upload
  through the API, go observe -> active on the demo market (SIM:BTC/USDT at ~60,000, as `make
  run` installs it) with the default capital allocation, and get paper fills — none denied;
- "A session in five calls" runs in bash with curl against the live ASGI server, a Celery worker,
  the feed and the dispatcher; it prints shadow orders at step 4 and filled paper orders at step 5.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_DIR

README = BASE_DIR / "README.md"
FILL_TIMEOUT = 90.0


def _section(heading: str) -> str:
    text = README.read_text()
    start = text.index(f"\n### {heading}\n")
    end = text.find("\n## ", start + 1)
    nxt = text.find("\n### ", start + 1)
    end = min(e for e in (end, nxt) if e != -1)
    return text[start:end]


def _blocks(heading: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(heading), flags=re.S)


def _labelled_blocks(heading: str) -> dict[str, str]:
    """`name`:\\n```lang ... ``` pairs of a section (the bundle's files)."""
    return {
        name: body
        for name, body in re.findall(r"`([\w.]+)`:\n```\w+\n(.*?)```", _section(heading), flags=re.S)
    }


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base.rstrip("/") + "/api/v1"
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path} -> {exc.code}: {exc.read().decode()[:2000]}") from exc


@pytest.fixture
def demo_setup(asgi_server: Any, feed_and_dispatcher: None) -> dict[str, Any]:
    """The demo's market and a fresh tenant with its paper account and an API token."""
    from stratbox.engine.bootstrap import markets_install
    from tenants.services import token_create
    from tests.factories import make_tenant, make_user

    markets_install()
    user = make_user("readme@example.test")
    tenant = make_tenant("Readme", owner=user)
    # The scopes "A session in five calls" asks for: upload, create, switch modes.
    issued = token_create(
        tenant=tenant,
        user=user,
        name="readme",
        scopes=["strategies:write", "instances:write", "instances:control"],
    )
    from stratbox.trading.models import Account

    if not Account.objects.filter(tenant=tenant, kind="paper").exists():
        Account.objects.create(tenant=tenant, name="Paper", kind="paper")
    return {"tenant": tenant, "token": issued.plaintext, "url": asgi_server.url}


def _demo_market_and_account(api: Api) -> tuple[int, str]:
    market = next(m for m in api.call("GET", "/markets/")["results"] if m["code"] == "SIM:BTC/USDT")
    account = next(a for a in api.call("GET", "/accounts/")["results"] if a["kind"] == "paper")
    return market["id"], account["id"]


def _wait_for_fill(api: Api, instance_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + FILL_TIMEOUT
    while time.monotonic() < deadline:
        orders = api.call("GET", f"/orders/?instance={instance_id}&is_shadow=false")["results"]
        if any(o["status"] == "filled" for o in orders):
            return orders
        time.sleep(1.0)
    raise AssertionError(f"no paper fill within {FILL_TIMEOUT} s: {orders}")


def _observe_then_activate(api: Api, instance_id: str) -> list[dict[str, Any]]:
    assert api.call("POST", f"/instances/{instance_id}/mode/", {"mode": "observe"})["mode"] == "observe"
    assert api.call("POST", f"/instances/{instance_id}/mode/", {"mode": "active"})["mode"] == "active"
    return _wait_for_fill(api, instance_id)


@pytest.mark.worker
def test_readme_tick_example_trades_on_the_demo_market(demo_setup: dict[str, Any]) -> None:
    (source,) = _blocks("Example: tick style", "python")
    api = Api(demo_setup["url"], demo_setup["token"])
    market, account = _demo_market_and_account(api)
    strategy = api.call("POST", "/strategies/", {"key": "momentum", "name": "Momentum", "source": source})
    assert strategy["style"] == "tick"
    instance = api.call(
        "POST",
        "/instances/",
        # The example's own defaults but a short window; the capital allocation is the default.
        {
            "name": "README tick",
            "strategy": "momentum",
            "account": account,
            "market": market,
            "config": {"window": 3},
            "frequency_seconds": 1,
        },
    )
    assert instance["capital_per_trade"] == "100.00"
    orders = _observe_then_activate(api, instance["id"])
    assert not [o for o in orders if o["deny_code"]], orders
    filled = [o for o in orders if o["status"] == "filled"]
    # ~50 of BTC at ~60,000, floored to the 0.0001 lot: a real, affordable size.
    assert all(0 < float(o["qty"]) * float(o["fill_price"]) <= 100 for o in filled), filled


@pytest.mark.worker
def test_readme_signal_bundle_uploads_and_trades_on_the_demo_market(demo_setup: dict[str, Any]) -> None:
    files = _labelled_blocks("Example: signal style (bundle)")
    assert set(files) == {"config.json", "entry.py", "exit.py"}
    config = json.loads(files["config.json"])
    api = Api(demo_setup["url"], demo_setup["token"])
    market, account = _demo_market_and_account(api)
    strategy = api.call(
        "POST",
        "/strategies/",
        {
            "key": "momentum-entries",
            "style": "signal_bundle",
            "entry_source": files["entry.py"],
            "exit_source": files["exit.py"],
            "config": config,
        },
    )
    assert strategy["name"] == config["name"] and strategy["thesis"] == config["thesis"]
    # One place for the schema: the one the instance is validated against is config.json's.
    assert strategy["latest_version"]["config_schema"] == config["config_schema"]
    instance = api.call(
        "POST",
        "/instances/",
        {
            "name": "README bundle",
            "strategy": "momentum-entries",
            "account": account,
            "market": market,
            "frequency_seconds": 1,
        },
    )
    assert instance["config"] == {k: v["default"] for k, v in config["config_schema"].items()}
    orders = _observe_then_activate(api, instance["id"])
    assert not [o for o in orders if o["deny_code"]], orders
    entry = next(o for o in orders if o["status"] == "filled")
    assert entry["side"] == "buy" and entry["tag"].startswith("entry:momentum +")  # the signal's reason


def test_a_bundle_entry_defining_config_schema_is_refused_at_its_line(api_client: Any) -> None:
    files = _labelled_blocks("Example: signal style (bundle)")
    entry = files["entry.py"].replace(
        "\n\ndef should_enter",
        '\n\nCONFIG_SCHEMA = {"lookback": {"type": "int", "default": 5}}\n\n\ndef should_enter',
    )
    line = entry.splitlines().index('CONFIG_SCHEMA = {"lookback": {"type": "int", "default": 5}}') + 1
    response = api_client.post(
        "/api/v1/strategies/",
        {
            "key": "twice",
            "style": "signal_bundle",
            "entry_source": entry,
            "exit_source": files["exit.py"],
            "config": json.loads(files["config.json"]),
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    (error,) = [e for e in response.json()["errors"] if e["code"] == "SCHEMA_IN_ENTRY"]
    assert error["attr"] == "entry_source" and error["line"] == line
    assert "config.json" in error["detail"]


@pytest.mark.worker
def test_readme_session_in_five_calls_runs_as_written(demo_setup: dict[str, Any], tmp_path: Path) -> None:
    (tick_source,) = _blocks("Example: tick style", "python")
    (session,) = _blocks("A session in five calls", "bash")
    (tmp_path / "momentum.py").write_text(tick_source)
    env = {**os.environ, "TOKEN": demo_setup["token"], "STRATBOX_URL": demo_setup["url"]}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", session],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, f"{out}\n{result.stderr}"
    lines = out.splitlines()
    assert lines[0] == "uploaded momentum v 1"
    assert lines[1] == "mode observe"
    active_at = lines.index("mode active")
    shadow = [line.split() for line in lines[2:active_at]]
    paper = [line.split() for line in lines[active_at + 1 :]]
    # Step 4: what it would have done (shadow orders); step 5: real paper fills, none denied.
    assert shadow and all(row[3] == "shadow" for row in shadow), out
    assert paper and all(row[3] == "filled" for row in paper), out
    assert all(len(row) == 5 for row in paper), out  # no deny code; a fill price
