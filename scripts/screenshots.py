"""`make screenshots`: regenerate the screenshots under docs/ from a real `make run`.

Starts the launcher on a private port with embedded stores in a temporary directory (the demo
tenant, its SMA crossover trading on paper), waits until the demo has traded, queues a backtest
through the web form, and photographs the main pages in Debian's Chromium (never a downloaded
browser). Then stops the launcher. The test suite never writes these files.

    .venv/bin/python scripts/screenshots.py [--out docs] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DEMO = ("demo@stratbox.local", "stratbox-demo")
VIEWPORT = {"width": 1280, "height": 860}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the launcher exited before the web server answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _log_in(page, email: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def _shoot(page, path: Path, *, full_page: bool = False) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(800)  # charts paint on the next frames
    page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path.relative_to(BASE_DIR)}")


def capture(base_url: str, out: Path, chromium: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as manager:
        browser = manager.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
            ],
        )
        context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())

        page.goto("/")
        _shoot(page, out / "landing.png")

        _log_in(page, *DEMO)
        expect(page.get_by_role("heading", name="Instances")).to_be_visible()
        # The demo's first paper trades (its SMA crosses within a minute or two).
        row = page.locator("#instances tbody tr").first
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            page.goto("/instances/")
            if re.search(r"[+−]\d", row.locator("td.num").last.text_content() or ""):
                break
            page.wait_for_timeout(5000)
        _shoot(page, out / "instances.png")

        row.get_by_role("link").nth(1).click()
        expect(page.locator("#widgets .widget").first).to_be_visible()
        # A few closed trades, so that the track record and Performance have something to show.
        expect(page.locator('#track-record-rows [data-record="trades"]')).to_have_text(
            re.compile(r"^\s*[2-9]|^\s*\d\d"), timeout=300_000
        )
        page.wait_for_timeout(3000)  # a few live frames
        page.set_viewport_size({"width": VIEWPORT["width"], "height": 1500})
        _shoot(page, out / "instance-detail.png")
        page.set_viewport_size(VIEWPORT)
        page.get_by_role("tab", name=re.compile("Execution history")).click()
        _shoot(page, out / "instance-history.png")

        page.goto("/backtests/new/")
        page.get_by_label("…or a strategy version (default config)").select_option(label="sma_crossover v1")
        page.get_by_role("button", name="Run backtest").click()
        expect(page.locator("#bt-status")).to_have_text("succeeded", timeout=180_000)
        page.reload()
        _shoot(page, out / "backtest-detail.png")

        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(BASE_DIR / "docs"))
    parser.add_argument("--chromium", default=os.environ.get("STRATBOX_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    var = Path(tempfile.mkdtemp(prefix="sbx-shots-"))  # short: unix socket paths are limited
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(STRATBOX_VAR_DIR=str(var), STRATBOX_PORT=str(port), PYTHONUNBUFFERED="1")
    log = (var / "run.log").open("wb")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "stratbox.launcher"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_http(f"{base_url}/accounts/login/", launcher, 300)
        capture(base_url, out, args.chromium)
    finally:
        launcher.send_signal(signal.SIGTERM)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
