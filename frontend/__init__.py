"""The web UI: views, templates, Channels consumers and routing, static sources."""
