import os
from urllib.parse import urlparse

import pytest
from django.db import connection

from shop.orders.models import Customer, Order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("n", range(12))
def test_orders_of_one_customer(n):
    # The same unique email in every test: each test's rows roll back, and
    # other workers write to databases of their own.
    customer = Customer.objects.create(email="ada@example.com")
    for cents in range(n):
        Order.objects.create(customer=customer, total_cents=cents)
    assert customer.orders.count() == n
    assert Customer.objects.count() == 1


def test_the_test_database_is_the_slots_clone():
    name = connection.settings_dict["NAME"]
    expected = urlparse(os.environ["DATABASE_URL"]).path.lstrip("/")
    if os.environ.get("PARTEST_WORKER"):
        assert name == expected, "pytest-django made a database of its own"
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations WHERE app = 'orders'")
        assert cursor.fetchone()[0] == 1, "the clone carries the template's migrations"
