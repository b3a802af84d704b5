import os
import pathlib

import pytest

from shortener import Shortener

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Without partest every worker shares these: one SQLite file, one Redis DB.
os.environ.setdefault("DATABASE_URL", f"sqlite://{ROOT / 'shortener-test.db'}")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def app():
    """A clean app, the way real suites do it: recreate the tables and
    FLUSHDB before every test."""
    s = Shortener()
    s.create_schema()
    s.r.flushdb()
    yield s
    s.db.close()
