"""Create the PostgreSQL database named by a URL if it does not exist (benchmarks use their own)."""

import sys
from urllib.parse import urlsplit

import psycopg

url = urlsplit(sys.argv[1])
name = url.path.lstrip("/")
admin = url._replace(path="/postgres").geturl()
with psycopg.connect(admin, autocommit=True) as conn:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
        conn.execute(f'CREATE DATABASE "{name}"')
        print(f"created database {name}")
