import os
import time

import psycopg
import pytest


def test_the_database_is_this_workers_own(db):
    name = db.execute("SELECT current_database()").fetchone()[0]
    assert name.endswith("_" + os.environ["PARTEST_WORKER"])


def test_migrations_ran_once_before_the_clone(db):
    names = [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == ["001_accounts.sql", "002_orders.sql"]


@pytest.mark.parametrize("n", range(8))
def test_signup_with_the_same_email_on_every_worker(db, n):
    # On a shared database, workers signing up the same email at the same
    # time would hit the UNIQUE constraint; here each has its own.
    db.execute("INSERT INTO accounts (email) VALUES ('alice@example.com')")
    time.sleep(0.2)
    count = db.execute("SELECT count(*) FROM accounts WHERE email = 'alice@example.com'").fetchone()[0]
    db.execute("DELETE FROM accounts WHERE email = 'alice@example.com'")
    assert count == 1


def test_emails_are_unique(db):
    db.execute("INSERT INTO accounts (email) VALUES ('bob@example.com')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO accounts (email) VALUES ('bob@example.com')")
    db.execute("DELETE FROM accounts WHERE email = 'bob@example.com'")
