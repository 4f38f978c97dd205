"""Fairness suites: the real ASGI server (uvicorn) and real workers, shared with the browser tests."""

from tests.frontend.conftest import _live_server_process, asgi_server, live_worker  # noqa: F401

CSV = "ts,open,high,low,close,volume\n" + "".join(
    f"{1767225600 + 60 * i},{100 + i % 7},110,95,{100 + i % 5},1\n" for i in range(300)
)
