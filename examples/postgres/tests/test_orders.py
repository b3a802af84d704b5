import time

import psycopg
import pytest


def house(db):
    return db.execute("SELECT id FROM accounts WHERE email = 'house@example.com'").fetchone()[0]


@pytest.mark.parametrize("n", range(6))
def test_an_order_belongs_to_an_account(db, n):
    order = db.execute(
        "INSERT INTO orders (account_id, total) VALUES (%s, 9.99) RETURNING id", (house(db),)
    ).fetchone()[0]
    time.sleep(0.2)
    assert str(db.execute("SELECT total FROM orders WHERE id = %s", (order,)).fetchone()[0]) == "9.99"
    db.execute("DELETE FROM orders WHERE id = %s", (order,))


def test_an_order_needs_a_real_account(db):
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("INSERT INTO orders (account_id, total) VALUES (-1, 1)")


def test_the_reference_data_was_cloned(db):
    assert db.execute("SELECT credit FROM accounts WHERE email = 'house@example.com'").fetchone()[0] == 1000
