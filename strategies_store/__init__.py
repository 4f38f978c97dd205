"""Uploaded strategy definitions, their immutable versions, upload validation and the catalog."""
