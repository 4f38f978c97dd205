"""Local MCP clients: `python -m stratbox.mcp --token sbx_…` speaks MCP over stdio.

The process acts with that one token (its tenant, user and scopes), re-checked on every call, so
revoking the token stops it. It reads the same settings (DATABASE_URL, REDIS_URL, ...) as the
web app; with `make run`'s embedded stores it finds them under var/. stdout is the protocol:
logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stratbox.mcp", description=__doc__.splitlines()[0])
    parser.add_argument("--token", default=os.environ.get("STRATBOX_TOKEN"), help="an API token (sbx_…)")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("--token (or STRATBOX_TOKEN) is required")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    # Django is set up only after the command line is parsed; the app modules import after that.
    import django

    django.setup()
    from stratbox.mcp.principal import principal_for, use_stdio_token  # now that the registry is ready
    from stratbox.mcp.server import build_server  # (likewise)

    if principal_for(args.token) is None:
        print("The token is unknown, revoked, or its user is no longer a member.", file=sys.stderr)
        return 2
    use_stdio_token(args.token)
    build_server(http=False).run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
