"""One name per concept: every deny code and pause reason the code uses is in its enum, with a label
the UI shows (and live.js shows the same pause labels)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from django.template import Context, Template

from stratbox.engine.control import PAUSE_LABELS, PauseReason
from stratbox.trading.risk import Deny, deny_label

ROOT = Path(__file__).resolve().parents[2]


def _sources() -> list[tuple[Path, str]]:
    return [
        (p, p.read_text()) for p in sorted((ROOT / "stratbox").rglob("*.py")) if "migrations" not in p.parts
    ]


def test_every_deny_code_written_as_a_literal_is_a_deny_member_with_a_label() -> None:
    literals = {
        code
        for _, text in _sources()
        for code in re.findall(r"""["']deny_code["']\s*(?::|==)\s*["']([A-Z_]+)["']""", text)
    }
    assert {
        "UNKNOWN_POSITION",
        "SIZE_ZERO",
        "ENGINE_ERROR",
        "INVALID_ORDER",
    } <= literals  # the scan sees them
    assert literals <= set(Deny)
    assert all(member.label for member in Deny)
    assert deny_label("SIZE_ZERO") == "the signal sized to zero"
    assert deny_label("NOT_A_CODE") == ""


def test_every_pause_reason_used_is_a_member_with_a_label() -> None:
    used = {
        code
        for _, text in _sources()
        for code in re.findall(r"""(?:PauseReason\.|PAUSE_REASON = ["'])([A-Z_]+)""", text)
    }
    assert "APPROVAL_REVOKED" in used and used <= set(PauseReason)
    assert set(PAUSE_LABELS) == set(PauseReason) and all(PAUSE_LABELS.values())
    literal_pauses = [
        (path.name, code)
        for path, text in _sources()
        for code in re.findall(r"""pause_runtime\([^,()]+,\s*["']([A-Z_]+)["']""", text)
    ]
    assert literal_pauses == []  # reasons are passed as PauseReason members, never as bare strings


def test_live_js_shows_the_same_pause_labels() -> None:
    js = (ROOT / "frontend/static/src/live.js").read_text()
    block = re.search(r"const PAUSE_REASONS = \{(.*?)\};", js, re.S)
    assert block is not None
    assert dict(re.findall(r'(\w+): "([^"]*)"', block.group(1))) == {r.value: r.label for r in PauseReason}


def test_the_status_pill_names_a_revoked_approval() -> None:
    html = Template("{% load stratbox_ui %}{% run_status runtime mode %}").render(
        Context(
            {
                "runtime": {"loaded": True, "paused": True, "pause_reason": "APPROVAL_REVOKED"},
                "mode": "active",
            }
        )
    )
    assert "staff revoked the live-trading approval" in html and "APPROVAL_REVOKED" in html


def test_lua_scripts_are_files_with_their_contract_at_the_top() -> None:
    scripts = sorted((ROOT / "stratbox/engine/lua").glob("*.lua"))
    assert len(scripts) >= 10
    for script in scripts:
        lines = script.read_text().splitlines()
        header = list(itertools.takewhile(lambda line: line.startswith("--"), lines))
        assert len(lines) > len(header) > 2, script.name
        assert any("KEYS" in line for line in header) and any("Returns" in line for line in header), (
            script.name
        )
    embedded = [p.name for p, text in _sources() if "redis.call(" in text]
    assert embedded == []  # no Python module carries a script inline
