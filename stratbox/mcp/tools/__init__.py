"""The MCP server's tools, resources and prompt, by concern; `server.build_server` registers them in this order."""
