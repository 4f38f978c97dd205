"""Sidecar strategy plugins (seed 003): definitions, mounts per instance, artifacts, escalation."""
