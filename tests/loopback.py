"""Loopback servers for delivery tests: a real SMTP server (aiosmtpd) and a recording HTTP server.

Both listen on 127.0.0.1 at a free port and record what they receive; apprise talks to them with
its own real clients (smtplib, requests).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)

    def url(self, to: str = "ops@acme.test", sender: str = "stratbox@acme.test") -> str:
        return f"mailto://{self.host}:{self.port}?to={to}&from={sender}&mode=insecure"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpSink:
    port: int
    requests: list[Recorded] = field(default_factory=list)
    status: int = 200
    response: bytes = b'{"ok": true, "result": {"message_id": 1}}'

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            sink.requests.append(
                Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            self.send_response(sink.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(sink.response)))
            self.end_headers()
            self.wfile.write(sink.response)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", sink.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
