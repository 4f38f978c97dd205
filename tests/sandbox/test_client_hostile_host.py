"""The worker against a host it cannot trust: forged huge replies and stalled replies.

The hostile host is a breach-probe host (raw Python, every layer applied) in the same client as a
legitimate tenant, so these are the worker's own client objects under attack.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from breach_probe import ProbeClient, legit_tick

from sandbox import Limits


def _vm(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) * 1024


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[ProbeClient, Path]]:
    raw = tmp_path / "raw.py"
    client = ProbeClient({"evil": (str(raw), [])}, limits=Limits(), max_hosts=4, prespawn=False)
    yield client, raw
    client.close()


FORGED_HUGE = """
import os, struct
chunk = b"[" * (1 << 20)
os.write(REPLY_FD, struct.pack(">I", 32 << 20))  # a 32 MiB reply to a ping...
REPLIED = True
try:
    for _ in range(32):
        os.write(REPLY_FD, chunk)  # ...sent as fast as the pipe takes it
except OSError:
    pass
"""


def test_a_forged_huge_reply_is_refused_from_its_header(hostile: tuple[ProbeClient, Path]) -> None:
    client, raw = hostile
    raw.write_text(FORGED_HUGE)
    client.host_info("evil")
    Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS (VmHWM)
    baseline = _vm("VmRSS")
    outcome = client.breach("evil")
    grown = _vm("VmHWM") - baseline
    assert outcome == {
        "client_error": "OUTPUT_LIMIT",
        "message": "host reply of 33554432 bytes exceeds the call's limit of 4194304 bytes",
    }
    assert grown < 4 << 20, f"the worker grew by {grown / 2**20:.1f} MiB reading a refused reply"
    assert "evil" not in client._pool  # noqa: SLF001 - the host was stopped
    assert legit_tick(client, "evil") == 1  # the same tenant's next call: a fresh, production host
    assert legit_tick(client, "good") == 1


def test_a_reply_over_the_call_cap_is_refused_even_when_well_formed(
    hostile: tuple[ProbeClient, Path],
) -> None:
    client, raw = hostile
    raw.write_text("""
import os, struct, json
body = json.dumps({"ok": True, "fatal": False, "result": {"breach": {"outcome": "ok", "pad": "x" * (5 << 20)}}}).encode()
REPLIED = True
frame = memoryview(struct.pack(">I", len(body)) + body)
while frame:  # blocks once the pipe is full, until the client has refused it and stopped the host
    frame = frame[os.write(REPLY_FD, frame):]
""")
    outcome = client.breach("evil")
    assert (
        outcome["client_error"] == "OUTPUT_LIMIT"
        and "exceeds the call's limit of 4194304 bytes" in outcome["message"]
    )
    assert legit_tick(client, "evil") == 1 and legit_tick(client, "good") == 1


def test_a_stalled_host_does_not_hold_up_another_tenant(hostile: tuple[ProbeClient, Path]) -> None:
    client, raw = hostile
    raw.write_text("""
import os, struct
REPLIED = True
os.write(REPLY_FD, struct.pack(">I", 1000) + b'{"ok"')  # a reply begun...
os.read(REQUEST_FD, 1)  # ...never finished: nothing more will come from the client
""")
    legit_tick(client, "good")  # the other tenant is loaded and warm
    events: list[str] = []
    outcome: dict = {}

    def attack() -> None:
        outcome.update(client.breach("evil", timeout=60.0))
        events.append("evil answered")

    thread = threading.Thread(target=attack)
    thread.start()
    assert client.sent.wait(30), "the probe's request never reached its host"
    for n in range(2, 12):  # while the evil call waits for the rest of its reply, the good tenant works
        assert legit_tick(client, "good") == n
    events.append("good ticked ten times")
    assert thread.is_alive() and events == ["good ticked ten times"]
    client._pool["evil"].kill()  # noqa: SLF001 - end the attack now instead of at its 60 s deadline
    thread.join(30)
    assert events == ["good ticked ten times", "evil answered"]
    assert outcome["client_error"] == "HOST_GONE"
    assert legit_tick(client, "evil") == 1 and legit_tick(client, "good") == 12


def test_a_forged_huge_reply_while_the_next_request_is_sent_is_refused_from_its_header(
    hostile: tuple[ProbeClient, Path],
) -> None:
    """The pipelined send (backtest chunks one ahead) takes in the reply to the request before
    while it writes the next one: the same header check, before a byte of the body is read."""
    from sandbox import ErrorCode, SandboxError

    client, raw = hostile
    raw.write_text(FORGED_HUGE.replace("32 << 20", "1 << 30"))  # above even a backtest chunk's cap
    host = client._host_for("evil")  # noqa: SLF001
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _vm("VmRSS")
    big = {"cmd": "ping", "budget": 5.0, "pad": b"x" * (3 << 20)}  # more than the pipe holds
    with pytest.raises(SandboxError) as err:
        list(host.pipelined(iter([{"cmd": "ping", "budget": 5.0}, big]), 5.0, "probe"))
    grown = _vm("VmHWM") - baseline
    assert err.value.code == ErrorCode.OUTPUT_LIMIT
    assert err.value.message == "host reply of 1073741824 bytes exceeds the call's limit of 67108864 bytes"
    assert grown < 12 << 20, f"the worker grew by {grown / 2**20:.1f} MiB reading a refused reply"
    assert not host.alive()
    client._discard("evil")  # noqa: SLF001
    assert legit_tick(client, "evil") == 1 and legit_tick(client, "good") == 1
