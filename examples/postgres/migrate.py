"""Applies migrations/*.sql in order, once per partest run (a [setup] command).

partest runs it with DATABASE_URL pointing at the run's template database;
every worker then gets a clone, so no test ever migrates again. The
`schema_migrations` table doubles as a record of how often this ran.
"""
import os
import pathlib

import psycopg

url = os.environ["DATABASE_URL"]
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz DEFAULT now())")
    done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
    for path in sorted(pathlib.Path(__file__).parent.joinpath("migrations").glob("*.sql")):
        if path.name in done:
            continue
        with conn.transaction():
            conn.execute(path.read_text())
            conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
        print(f"applied {path.name} to {conn.info.dbname}")
