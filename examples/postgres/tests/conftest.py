import os

import psycopg
import pytest


@pytest.fixture
def db():
    """A connection to this worker's own database; what a test writes stays
    there (other workers cannot see it), so no cleanup between workers."""
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        yield conn
