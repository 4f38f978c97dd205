"""The host side of the breach probe (see breach_probe.py): imported only by a probe host's boot line.

It imports nothing but what production hosts import, so the raw code meets the same process.
"""

from __future__ import annotations

import json
from typing import Any


def host_main(namespaces: tuple[bool, str], raw_path: str, args: list[str]) -> None:
    """Runs in the host process (from the probe's boot line), before and after confinement."""
    with open(raw_path, encoding="utf-8") as f:  # noqa: PTH123 - the host has no pathlib loaded
        code = compile(f.read(), raw_path, "exec")
    from sandbox.host import main

    def hook(host: Any, rfd: int, wfd: int) -> None:
        from sandbox.protocol import FrameReader, write_frame

        FrameReader(rfd).read(
            1 << 20
        )  # the client's go (a ping); the client sends nothing more until answered
        env: dict[str, Any] = {
            "__name__": "__breach__",
            "REPLY_FD": wfd,
            "REQUEST_FD": rfd,
            "ARGS": list(args),
            "RESULT": {},
            "REPLIED": False,
        }
        out: dict[str, Any]
        try:
            exec(code, env)  # noqa: S102 - the point of the probe
            out = {"outcome": "ok"}
        except BaseException as exc:  # noqa: BLE001 - reported, whatever it is
            out = {
                "outcome": "raised",
                "exception": type(exc).__name__,
                "errno": getattr(exc, "errno", None),
                "message": str(exc)[:500],
            }
        out["result"] = env.get("RESULT")
        if env.get("REPLIED") is not True:
            write_frame(
                wfd,
                json.dumps({"ok": True, "fatal": False, "result": {"breach": out}}, default=repr).encode(),
            )

    main(namespaces, hook=hook)
