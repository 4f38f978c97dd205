"""PostgreSQL parses and plans the engine's hot statements once per connection, not per call."""

from __future__ import annotations

from django.db import connection


def _prepared(cursor, text: str) -> int:
    cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [text])
    return cursor.fetchone()[0]


def test_a_statement_run_repeatedly_is_prepared_with_server_side_parameters(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::int + 1", [1])
        assert cursor.fetchone() == (2,)
        assert _prepared(cursor, "SELECT $1::int + 1") == 0  # parameters are bound by the server ($1)
        for n in range(10):
            cursor.execute("SELECT %s::int + 1", [n])
            assert cursor.fetchone() == (n + 1,)
        assert _prepared(cursor, "SELECT $1::int + 1") == 1
