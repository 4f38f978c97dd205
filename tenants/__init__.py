"""Tenants: organisations, memberships and roles, API tokens, capital limits and the audit log."""
