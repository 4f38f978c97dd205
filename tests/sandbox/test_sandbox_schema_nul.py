"""Configs and schemas are stored as JSON in PostgreSQL, which cannot hold NUL: refuse it up front."""

from sandbox.schema import apply_config, validate_config_schema

NOTE = {"note": {"type": "str", "default": ""}}


def test_a_str_value_with_nul_is_a_field_error() -> None:
    assert apply_config(NOTE, {"note": "a\x00b"}) == ({}, {"note": "must not contain NUL characters"})
    assert apply_config(NOTE, {"note": "ab"}) == ({"note": "ab"}, {})


def test_a_schema_with_nul_anywhere_is_refused() -> None:
    for schema in (
        {"n\x00": {"type": "str", "default": ""}},
        {"n": {"type": "str", "default": "\x00"}},
        {"n": {"type": "choice", "choices": ["a", "b\x00"], "default": "a"}},
        {"n": {"type": "int", "default": 1, "description": "x\x00"}},
    ):
        assert validate_config_schema(schema) == {"__all__": "CONFIG_SCHEMA must not contain NUL characters"}
