"""Run a loopback venue app on 127.0.0.1 in a background thread (tests) or in the foreground (demo).

`serve_in_thread(app)` starts uvicorn on a free port and returns once it accepts connections;
`python -m venuesim alpaca|binance --port N` runs one in the foreground with demo instruments.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn


@dataclass
class RunningServer:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_in_thread(app: Any, *, port: int = 0) -> RunningServer:
    port = port or _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"venuesim:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the loopback venue did not start on port {port}")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}", port, server, thread)
