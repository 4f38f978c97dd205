"""The MCP server for AI assistants: Stratbox's services as tools, scoped to an API token's tenant.

It sits at the top of the layering beside `frontend` (it calls the services of every app; nothing
imports it but the project's ASGI wiring). `server.py` declares the tools, resources and prompt;
`calls.py` is the one wrapper every tool goes through (token, scope, idempotency, metering, audit);
`asgi.py` mounts it at /mcp beside Django; `__main__.py` is the stdio entry point.
"""
