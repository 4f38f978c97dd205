"""`make run`'s demo: a live account on the simulated venue for the demo tenant, made once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.fernet import Fernet

from stratbox.engine.bootstrap import demo_bootstrap
from stratbox.trading.models import Account

pytestmark = pytest.mark.django_db


def test_the_demo_gets_a_live_account_on_a_simulated_venue_once(settings: Any, tmp_path: Any) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    keys = {"api_key_id": "PKSIMTEST", "api_secret_key": "simulated-secret-0001"}
    path = tmp_path / "sim-venue.json"
    path.write_text(json.dumps(keys))
    settings.STRATBOX_VENUES = {
        "alpaca:sim": {
            "adapter": "alpaca",
            "simulated": True,
            "label": "Alpaca (simulated venue)",
            "demo_credentials_file": str(path),
            # Not started yet when the demo is installed: a credentials check here would be refused.
            "trading_url": "http://127.0.0.1:9",
        }
    }
    lines = demo_bootstrap()
    assert "simulated venue alpaca:sim: live account for the demo tenant" in lines
    demo_bootstrap()
    [account] = Account.objects.filter(kind="live", broker="alpaca:sim")
    assert account.name == "Alpaca (simulated venue)" and account.has_credentials
    assert keys["api_secret_key"] not in account.credentials_ciphertext
